<?php

/* One request per process (askrd without a worker script); the leak test serves the app with askr's Symfony worker. */

declare(strict_types=1);

require dirname(__DIR__) . '/config/bootstrap.php';

$kernel = new LeakTest\Kernel($_SERVER['APP_ENV'] ?? 'prod', (bool) ($_SERVER['APP_DEBUG'] ?? false));
$request = Symfony\Component\HttpFoundation\Request::createFromGlobals();
$response = $kernel->handle($request);
$response->send();
$kernel->terminate($request, $response);
