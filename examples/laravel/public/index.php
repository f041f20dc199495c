<?php

/*
 * The usual Laravel front controller: serves one request per process (php-fpm, php -S, or askrd
 * without --worker-script). In worker mode, ../../laravel-worker.php does the same in a loop.
 */

define('LARAVEL_START', microtime(true));

$app = require __DIR__ . '/../bootstrap/app.php';

$kernel = $app->make(Illuminate\Contracts\Http\Kernel::class);

$response = $kernel->handle(
    $request = Illuminate\Http\Request::capture()
)->send();

$kernel->terminate($request, $response);
