<?php

declare(strict_types=1);

namespace App;

use Symfony\Bundle\FrameworkBundle\FrameworkBundle;
use Symfony\Bundle\FrameworkBundle\Kernel\MicroKernelTrait;
use Symfony\Component\DependencyInjection\Loader\Configurator\ContainerConfigurator;
use Symfony\Component\HttpKernel\Kernel as BaseKernel;
use Symfony\Component\Routing\Loader\Configurator\RoutingConfigurator;

/**
 * The example's kernel: FrameworkBundle only, configured by the PHP files in config/. The compiled
 * container, caches and logs go to var/ under the app (APP_CACHE_DIR and APP_LOG_DIR move them).
 */
final class Kernel extends BaseKernel
{
    use MicroKernelTrait;

    public function registerBundles(): iterable
    {
        yield new FrameworkBundle();
    }

    /** The app's base directory; Symfony would otherwise look for a composer.json to find it. */
    public function getProjectDir(): string
    {
        return \dirname(__DIR__);
    }

    // Debian's MicroKernelTrait (5.4) imports only YAML from config/packages: name the PHP files.
    private function configureContainer(ContainerConfigurator $container): void
    {
        $container->import($this->getProjectDir() . '/config/framework.php');
        $container->import($this->getProjectDir() . '/config/services.php');
    }

    private function configureRoutes(RoutingConfigurator $routes): void
    {
        $routes->import($this->getProjectDir() . '/config/routes.php');
    }
}
