<?php

declare(strict_types=1);

use Symfony\Component\DependencyInjection\Loader\Configurator\ContainerConfigurator;

return static function (ContainerConfigurator $container): void {
    $container->extension('framework', [
        'secret' => 'askr-leak-test',
        'http_method_override' => false,
        'session' => [
            'storage_factory_id' => 'session.storage.factory.native',
            'handler_id' => 'session.handler.native_file',
            'save_path' => '%kernel.project_dir%/var/sessions',
            'name' => 'sf_leaks_session',
        ],
        'php_errors' => ['log' => true],
    ]);
    if ($container->env() === 'httpcache') { // TestSfHttpCache: framework.http_cache on, with its trace header
        $container->extension('framework', ['http_cache' => ['enabled' => true, 'debug' => true]]);
    }
};
