<?php

declare(strict_types=1);

namespace LeakTest;

use Symfony\Bundle\FrameworkBundle\FrameworkBundle;
use Symfony\Bundle\FrameworkBundle\Kernel\MicroKernelTrait;
use Symfony\Component\DependencyInjection\Loader\Configurator\ContainerConfigurator;
use Symfony\Component\HttpKernel\Kernel as BaseKernel;
use Symfony\Component\Routing\Loader\Configurator\RoutingConfigurator;

/** Not App\Kernel: the worker finds it through ASKR_SYMFONY_KERNEL. */
final class Kernel extends BaseKernel
{
    use MicroKernelTrait;

    public function registerBundles(): iterable
    {
        yield new FrameworkBundle();
    }

    /** Like many apps, opens its database connection while booting (in CoW mode: in the template). */
    public function boot(): void
    {
        $first = !$this->booted;
        parent::boot();
        if ($first) {
            $this->container->get('doctrine.dbal.default_connection')->connect();
        }
    }

    public function getProjectDir(): string
    {
        return \dirname(__DIR__);
    }

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
