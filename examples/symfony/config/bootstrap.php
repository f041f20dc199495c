<?php

/*
 * Stands in for Composer's vendor/autoload.php: Debian's php-symfony-* packages install Symfony
 * under /usr/share/php/Symfony with an autoload.php per package, each requiring those of the
 * packages it depends on (and including those it suggests, if installed). The FrameworkBundle's
 * brings in HttpKernel, HttpFoundation, Routing, DependencyInjection, Config, ErrorHandler,
 * EventDispatcher, Cache and Filesystem; HttpFoundation's adds Mime (MIME type guessing) when present.
 * Then a PSR-4 loader for the app's own App\ namespace (src/).
 */

declare(strict_types=1);

require_once '/usr/share/php/Symfony/Bundle/FrameworkBundle/autoload.php';

spl_autoload_register(static function (string $class): void {
    if (strncmp($class, 'App\\', 4) === 0) {
        $file = dirname(__DIR__) . '/src/' . str_replace('\\', '/', substr($class, 4)) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
