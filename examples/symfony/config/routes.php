<?php

declare(strict_types=1);

use App\Controller\ApiController;
use App\Controller\PageController;
use Symfony\Component\Routing\Loader\Configurator\RoutingConfigurator;

return static function (RoutingConfigurator $routes): void {
    $routes->add('home', '/')->controller([PageController::class, 'home'])->methods(['GET', 'HEAD']);
    $routes->add('status', '/status/{code}')->controller([PageController::class, 'status'])
        ->requirements(['code' => '[1-5][0-9][0-9]']);
    $routes->add('exception', '/exception')->controller([PageController::class, 'exception']);

    $routes->add('json', '/json')->controller([ApiController::class, 'json'])->methods(['GET', 'HEAD']);
    $routes->add('echo', '/echo')->controller([ApiController::class, 'echo'])->methods(['POST']);
    $routes->add('upload', '/upload')->controller([ApiController::class, 'upload'])->methods(['POST']);
    $routes->add('session', '/session')->controller([ApiController::class, 'session'])->methods(['GET']);
    $routes->add('stream', '/stream')->controller([ApiController::class, 'stream'])->methods(['GET']);
};
