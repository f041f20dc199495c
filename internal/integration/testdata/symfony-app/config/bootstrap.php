<?php

/*
 * The leak test app's autoloader (what vendor/autoload.php is to a Composer app): Debian's
 * packaged Symfony 5.4 (php-symfony-framework-bundle, under /usr/share/php/Symfony), then a PSR-4
 * loader for the app's LeakTest\ namespace (src/), and the Doctrine stand-ins in src/StandIn (and,
 * with LEAKTEST_RUNTIME=1, symfony/runtime's SymfonyRuntime class).
 */

declare(strict_types=1);

require_once '/usr/share/php/Symfony/Bundle/FrameworkBundle/autoload.php';

spl_autoload_register(static function (string $class): void {
    if (strncmp($class, 'LeakTest\\', 9) === 0) {
        $file = dirname(__DIR__) . '/src/' . str_replace('\\', '/', substr($class, 9)) . '.php';
        if (is_file($file)) {
            require $file;
        }
    } elseif ($class === 'Symfony\\Component\\Runtime\\SymfonyRuntime' && getenv('LEAKTEST_RUNTIME') === '1') {
        require dirname(__DIR__) . '/src/StandIn/SymfonyRuntime.php'; // an app with symfony/runtime installed
    } elseif ($class === 'Doctrine\\DBAL\\Connection' || $class === 'Doctrine\\Persistence\\ConnectionRegistry') {
        require dirname(__DIR__) . '/src/StandIn/' . substr($class, strrpos($class, '\\') + 1) . '.php';
    }
});
