<?php
/*
 * askr worker for the Laravel example: boots the app once, then serves requests in a loop.
 *   ASKR_APP_BASE=$PWD/examples/laravel askrd serve --root examples/laravel/public \
 *       --worker-script examples/laravel-worker.php
 * The same app runs one request per process through examples/laravel/public/index.php.
 */

$base = getenv('ASKR_APP_BASE') ?: __DIR__ . '/laravel';

// Laravel writes sessions, compiled views, cache, logs and its manifests here.
foreach (['storage/framework/sessions', 'storage/framework/views', 'storage/framework/cache',
    'storage/logs', 'bootstrap/cache'] as $dir) {
    if (!is_dir("$base/$dir") && !@mkdir("$base/$dir", 0775, true) && !is_dir("$base/$dir")) {
        throw new RuntimeException("cannot create $base/$dir");
    }
}

// Boot once: environment, config, providers, routes. Requests then only run the middleware and route.
$app = require $base . '/bootstrap/app.php';
$kernel = $app->make(Illuminate\Contracts\Http\Kernel::class);
$kernel->bootstrap();
$viewShared = $app['view']->getShared(); // what boot shares with every view ('app', '__env')
$locale = $app->getLocale();

// The database (config/database.php): an SQLite file with one table, created on first boot. Running
// the CREATE TABLE here opens a connection, so in CoW mode the template holds an open SQLite handle
// when it forks its workers.
$database = $app['config']['database.connections.sqlite.database'];
if (!is_file($database) && !@touch($database) && !is_file($database)) {
    throw new RuntimeException("cannot create $database");
}
// Workers booting at once race for a fresh file: SQLite answers "locked" at once (not after
// busy_timeout) when waiting could deadlock, e.g. while another process switches it to WAL.
for ($try = 1; ; $try++) {
    try {
        $app['db']->statement('CREATE TABLE IF NOT EXISTS visits (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            pid INTEGER NOT NULL,
            token TEXT NOT NULL,
            created_at TEXT NOT NULL
        )');
        break;
    } catch (Illuminate\Database\QueryException $e) {
        if ($try === 50 || !str_contains($e->getMessage(), 'database is locked')) {
            throw $e;
        }
        $app['db']->purge();
        usleep(20000 * $try);
    }
}

// A forked worker inherits the template's PDO, i.e. its sqlite3 handle: the same file descriptors,
// page cache and SQLite's in-memory record of the POSIX locks the template holds. fcntl() locks are
// not inherited across fork(), so a worker using that handle believes it holds locks it does not
// (see "Carrying an open database connection across a fork()" in sqlite.org/howtocorrupt.html).
// Then nothing stops one process from closing "the last" connection while others still write: it
// checkpoints and deletes the WAL under them, and their committed writes are lost (seen with the
// template killed under load and --max-requests). So each worker drops every connection right
// after the fork, before its first request; Laravel opens its own at the first query. (Outside
// CoW mode this runs once at askr_cow_ready() and costs one reconnect.)
askr_on_worker_start(static function () use ($app): void {
    foreach (array_keys($app['db']->getConnections()) as $name) {
        $app['db']->purge($name);
    }
});

// The runtime has set up $_SERVER, $_GET, $_POST, $_COOKIE, $_FILES and php://input as php-fpm
// would, so Request::capture() and Response::send() work unchanged.
$handler = static function () use ($kernel): void {
    $request = Illuminate\Http\Request::capture();
    $response = $kernel->handle($request); // binds $request as app('request') and rebinds its users
    $response->send();
    $kernel->terminate($request, $response);
};

// What a request leaves behind in the long-lived container and must not reach the next one.
$reset = static function () use ($app, $viewShared, $locale): void {
    // 'request' stays bound on purpose: Kernel::handle() replaces it, and because it is bound the
    // rebinding callbacks (URL generator, auth's user resolver) follow at once. After
    // forgetInstance('request') the kernel's first instance() call would not fire them, and global
    // middleware would see the previous request through url().

    // Sessions: StartSession reuses the manager's Store and merges what it reads into the
    // attributes the Store already holds, so a request without a session cookie would see the
    // previous visitor's data. Empty the Store in place, with a new id, rather than dropping the
    // driver: the Redirector and others keep a reference to this very object.
    if ($app->resolved('session')) {
        foreach ($app['session']->getDrivers() as $store) {
            $store->flush();
            $store->setId(null);
        }
    }
    // Cookie::queue(): AddQueuedCookiesToResponse copies queued cookies but never clears the jar.
    if ($app->resolved('cookie')) {
        $app['cookie']->flushQueuedCookies();
    }
    // Auth guards cache the user they resolved.
    if ($app->resolved('auth')) {
        $app['auth']->forgetGuards();
    }
    // Views: ShareErrorsFromSession shares this session's errors; View::share() may add more.
    // Restore what boot shared, and drop render state an exception may leave mid-render.
    if ($app->resolved('view')) {
        $view = $app['view'];
        $view->flushState();
        (fn () => $this->shared = $viewShared)->call($view);
    }
    // Log::withContext() and App::setLocale() last for the process otherwise.
    if ($app->resolved('log')) {
        foreach ($app['log']->getChannels() as $channel) {
            $channel->withoutContext();
        }
    }
    if ($app->getLocale() !== $locale) {
        $app->setLocale($locale);
    }
    // A transaction a request began and never ended would hold SQLite's write lock, and swallow
    // the next request's writes into it.
    if ($app->resolved('db')) {
        foreach ($app['db']->getConnections() as $connection) {
            if ($connection->transactionLevel() > 0) {
                $connection->rollBack(0);
            }
        }
    }
};

askr_cow_ready();
while (askr_handle_request($handler)) {
    $reset(); // runs after the response has gone out
}
