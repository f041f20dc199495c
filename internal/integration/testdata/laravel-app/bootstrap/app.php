<?php

/*
 * A Laravel app written for askr's tests of the generic Laravel worker (examples/laravel-worker.php):
 * each route sets, or reads back, one kind of state a request can leave behind in a worker
 * (routes/web.php). It is not the example app; it shares nothing with it.
 */

require_once __DIR__ . '/autoload.php';

$app = new Illuminate\Foundation\Application(dirname(__DIR__));

$app->singleton(Illuminate\Contracts\Http\Kernel::class, Leaks\Http\Kernel::class);
$app->singleton(Illuminate\Contracts\Debug\ExceptionHandler::class, Illuminate\Foundation\Exceptions\Handler::class);

return $app;
