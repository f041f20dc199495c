<?php

declare(strict_types=1);

use LeakTest\Controller\DbController;
use LeakTest\Controller\LeakController;
use LeakTest\Controller\WorkerController;
use Symfony\Component\Routing\Loader\Configurator\RoutingConfigurator;

return static function (RoutingConfigurator $routes): void {
    $routes->add('session', '/session')->controller([LeakController::class, 'session'])->methods(['GET']);
    $routes->add('session_open', '/session/open')->controller([LeakController::class, 'sessionOpen'])->methods(['GET']);
    $routes->add('seen', '/seen')->controller([LeakController::class, 'seen'])->methods(['GET']);
    $routes->add('throw', '/throw')->controller([LeakController::class, 'throw'])->methods(['GET']);
    $routes->add('db', '/db')->controller([DbController::class, 'state'])->methods(['GET']);
    $routes->add('db_begin', '/db/begin')->controller([DbController::class, 'begin'])->methods(['GET']);
    $routes->add('reset_fails', '/reset-fails')->controller([LeakController::class, 'resetFails'])->methods(['GET']);
    $routes->add('cached', '/cached')->controller([WorkerController::class, 'cached'])->methods(['GET']);
    $routes->add('terminate', '/terminate')->controller([WorkerController::class, 'terminate'])->methods(['GET']);
    $routes->add('debug', '/debug')->controller([WorkerController::class, 'debug'])->methods(['GET']);
    $routes->add('leak', '/leak')->controller([WorkerController::class, 'leak'])->methods(['GET']);
    $routes->add('login', '/login')->controller([WorkerController::class, 'login'])->methods(['GET']);
    $routes->add('cache_keys', '/cache-keys')->controller([WorkerController::class, 'cacheKeys'])->methods(['GET']);
};
