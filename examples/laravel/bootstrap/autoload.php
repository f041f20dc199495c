<?php

/*
 * Stands in for Composer's vendor/autoload.php: Debian's php-laravel-framework installs Laravel
 * (and everything it needs) under /usr/share/php with autoloaders of its own, so the app loads
 * those and adds a PSR-4 loader for its own App\ namespace.
 */

require_once '/usr/share/php/Illuminate/autoload.php';

spl_autoload_register(static function (string $class): void {
    if (strncmp($class, 'App\\', 4) === 0) {
        $file = dirname(__DIR__) . '/app/' . str_replace('\\', '/', substr($class, 4)) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
