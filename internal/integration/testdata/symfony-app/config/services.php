<?php

declare(strict_types=1);

use Doctrine\DBAL\Connection;
use LeakTest\Registry;
use LeakTest\RequestLog;
use LeakTest\StandIn\TokenStorage;
use LeakTest\TerminateListener;
use LeakTest\WorkerTally;
use Symfony\Component\DependencyInjection\Loader\Configurator\ContainerConfigurator;

use function Symfony\Component\DependencyInjection\Loader\Configurator\service;

return static function (ContainerConfigurator $container): void {
    $services = $container->services()->defaults()->autowire()->autoconfigure();
    $services->load('LeakTest\\Controller\\', '../src/Controller/')->tag('controller.service_arguments');
    // Request-scoped state the framework must reset after each request: tagged by hand (the class
    // does not implement ResetInterface, so autoconfiguration would not tag it).
    $services->set(RequestLog::class)->tag('kernel.reset', ['method' => 'reset']);
    // Not tagged: lives as long as the worker (what the worker keeps).
    $services->set(WorkerTally::class);
    // Doctrine as DoctrineBundle names it (stand-ins: see src/StandIn): public "doctrine" and
    // connection services.
    $services->set('doctrine.dbal.default_connection', Connection::class)->public();
    $services->alias(Connection::class, 'doctrine.dbal.default_connection');
    $services->set('doctrine', Registry::class)->public()->args([service('service_container')]);
    // A kernel.terminate listener (event subscriber, autoconfigured): GET /terminate.
    $services->set(TerminateListener::class);
    // SecurityBundle's token storage as the detector finds it (stand-in, public), here NOT tagged
    // kernel.reset: GET /login leaves a token in it.
    $services->set('security.token_storage', TokenStorage::class)->public();
    $services->alias(TokenStorage::class, 'security.token_storage');
};
