<?php

/*
 * Creates the application. Used by public/index.php (one request per process, as under php-fpm),
 * by ../laravel-worker.php (booted once, many requests), by artisan and by askrd's [queue] and
 * [scheduler] scripts (../laravel-queue.php, ../laravel-scheduler.php).
 */

require_once __DIR__ . '/autoload.php';

$app = new Illuminate\Foundation\Application(dirname(__DIR__));

$app->singleton(Illuminate\Contracts\Http\Kernel::class, App\Http\Kernel::class);
$app->singleton(Illuminate\Contracts\Console\Kernel::class, App\Console\Kernel::class);
$app->singleton(Illuminate\Contracts\Debug\ExceptionHandler::class, App\Exceptions\Handler::class);

return $app;
