<?php
/*
 * askr's Laravel console runner, shared by laravel-queue.php and laravel-scheduler.php (installed
 * beside them, in /usr/share/askr/workers): runs one artisan command in a [queue] or [scheduler]
 * process and returns its exit status.
 *
 * In CoW mode (--cow) such a process is a fork of the template that booted the app with
 * laravel.php: the app is there already, in the worker script's globals ($GLOBALS['app']), with
 * its database connections closed (each process opens its own). Outside CoW mode it is php-cli,
 * and the app at ASKR_APP_BASE is booted here as artisan would boot it. The command's output goes
 * to STDOUT, which askrd logs tagged with the process's pid.
 */

declare(strict_types=1);

namespace Askr\Workers\Console;

use Illuminate\Contracts\Console\Kernel;
use Illuminate\Foundation\Application;
use Symfony\Component\Console\Exception\CommandNotFoundException;
use Symfony\Component\Console\Output\StreamOutput;

/** Runs artisan $command with $parameters (as Artisan::call() takes them) and returns its exit status. */
function call(string $command, array $parameters): int
{
    $app = app();
    // Laravel asks runningInConsole() (SAPI cli) to render an uncaught exception for a console
    // rather than as an HTTP response, among others; a CoW fork runs php-cgi, where the app has
    // answered false already and cached it.
    putenv('APP_RUNNING_IN_CONSOLE=true');
    $_ENV['APP_RUNNING_IN_CONSOLE'] = $_SERVER['APP_RUNNING_IN_CONSOLE'] = 'true';
    if (property_exists($app, 'isRunningInConsole')) {
        (fn () => $this->isRunningInConsole = true)->call($app);
    }
    // What artisan's argv would be: runningConsoleCommand('queue:work') (Telescope, Sentry, app
    // code) reads $_SERVER['argv'][1].
    $_SERVER['argv'] = $GLOBALS['argv'] = ['artisan', $command];
    $_SERVER['argc'] = $GLOBALS['argc'] = 2;
    if (!$app->bound(Kernel::class)) {
        // An app without a console kernel of its own (app/Console/Kernel.php) has Laravel's.
        $app->singleton(Kernel::class, \Illuminate\Foundation\Console\Kernel::class);
    }
    $kernel = $app->make(Kernel::class);
    $kernel->bootstrap(); // a booted app (CoW mode) only loads its deferred providers and commands
    try {
        return $kernel->call($command, $parameters, new StreamOutput(\STDOUT));
    } catch (CommandNotFoundException $e) {
        fail("artisan has no $command command: the app's providers must include Laravel's "
            . 'ConsoleSupportServiceProvider (or ArtisanServiceProvider) and, for queue:work, QueueServiceProvider');
    }
}

/** The booted app of the CoW template, or the app at ASKR_APP_BASE, booted here. */
function app(): Application
{
    $app = $GLOBALS['app'] ?? null;
    if ($app instanceof Application) {
        return $app; // laravel.php's: the worker script's global $app
    }
    $base = getenv('ASKR_APP_BASE');
    if ($base === false || $base === '') {
        fail('ASKR_APP_BASE is not set: set [worker] app_base to the Laravel app\'s directory');
    }
    $bootstrap = rtrim($base, '/') . '/bootstrap/app.php';
    if (!is_file($bootstrap)) {
        fail("$bootstrap not found: app_base (ASKR_APP_BASE) must be a Laravel app's base directory");
    }
    defined('LARAVEL_START') || define('LARAVEL_START', microtime(true));
    if (is_file("$base/vendor/autoload.php")) {
        require_once "$base/vendor/autoload.php"; // an app without vendor/ loads its own (Debian's Laravel)
    }
    $app = require $bootstrap;
    if (!$app instanceof Application) {
        fail("$bootstrap returned " . get_debug_type($app) . ', not an Illuminate\Foundation\Application');
    }
    return $app;
}

/** Logs $msg as one line and ends the process (askrd restarts a queue worker, with back-off). */
function fail(string $msg): never
{
    fwrite(\STDERR, 'askr laravel ' . askr_worker_role() . ": $msg\n");
    exit(1);
}
