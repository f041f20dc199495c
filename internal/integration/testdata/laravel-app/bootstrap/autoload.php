<?php

/*
 * Stands in for Composer's vendor/autoload.php (which this app does not have): Debian's
 * php-laravel-framework installs Laravel under /usr/share/php with autoloaders of its own; this
 * adds a PSR-4 loader for the app's own Leaks\ namespace (app/).
 */

require_once '/usr/share/php/Illuminate/autoload.php';

spl_autoload_register(static function (string $class): void {
    if (strncmp($class, 'Leaks\\', 6) === 0) {
        $file = dirname(__DIR__) . '/app/' . str_replace('\\', '/', substr($class, 6)) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
