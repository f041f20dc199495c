<?php

/*
 * The usual Symfony front controller: serves one request per process (php-fpm, php -S, or askrd
 * without --worker-script). In worker mode, ../../symfony-worker.php does the same in a loop.
 * APP_ENV (default prod) and APP_DEBUG (default 0) come from the server's environment.
 */

declare(strict_types=1);

use App\Kernel;
use Symfony\Component\HttpFoundation\Request;

require dirname(__DIR__) . '/config/bootstrap.php';

$kernel = new Kernel($_SERVER['APP_ENV'] ?? 'prod', (bool) ($_SERVER['APP_DEBUG'] ?? false));
$request = Request::createFromGlobals();
$response = $kernel->handle($request);
$response->send();
$kernel->terminate($request, $response);
