<?php

declare(strict_types=1);

use Symfony\Component\DependencyInjection\Loader\Configurator\ContainerConfigurator;

return static function (ContainerConfigurator $container): void {
    // Used by signed URIs, CSRF and the like: set APP_SECRET in the environment of a real deployment.
    $container->parameters()->set('env(APP_SECRET)', 'askr-example-not-a-secret');

    $container->extension('framework', [
        'secret' => '%env(APP_SECRET)%',
        'http_method_override' => false,
        'router' => ['utf8' => true],
        'session' => [
            // PHP's own "files" save handler (with its file locks), in a directory of the app's.
            'storage_factory_id' => 'session.storage.factory.native',
            'handler_id' => 'session.handler.native_file',
            'save_path' => '%kernel.project_dir%/var/sessions/%kernel.environment%',
            'name' => 'askr_symfony_session',
            'cookie_secure' => 'auto',
            'cookie_samesite' => 'lax',
        ],
        'php_errors' => ['log' => true],
    ]);
};
