<?php
/*
 * askr's Symfony worker: serves any Symfony 5.4+ app with no edits. Installed as
 * /usr/share/askr/workers/symfony.php; in the source tree it is examples/symfony-worker.php.
 *
 *   [worker]
 *   script = "/usr/share/askr/workers/symfony.php"
 *   app_base = "/srv/app"            # default: the parent of [server] root (…/public)
 *
 * Boot, once per worker:
 *   - the app is at ASKR_APP_BASE (askrd always exports it);
 *   - config/bootstrap.php if the app has one (Symfony ≤ 5.2 apps, apps on Debian's packaged
 *     Symfony, which has no vendor/), else vendor/autoload.php and, when symfony/dotenv is
 *     installed, the app's .env files loaded as the Runtime component does (Dotenv::bootEnv());
 *     the Runtime's public/index.php cannot be used: its vendor/autoload_runtime.php runs the app;
 *   - APP_ENV and APP_DEBUG from the environment or the .env files (prod and 0 only when
 *     neither sets them; the skeleton's .env sets APP_ENV=dev); APP_DEBUG=1 enables Symfony's
 *     debug error handler and class loader;
 *   - the kernel class App\Kernel, or the class named by ASKR_SYMFONY_KERNEL;
 *   - requests go through the http_cache service when the app enables framework.http_cache (its
 *     store's locks and per-request cache keys are dropped after each request).
 * After every response has gone (askr_defer()), the client not waiting: kernel.terminate, then
 * askrSymfonyReset below: open Doctrine transactions are rolled back, a session left open is
 * written and Symfony 5.x's shared session closed, the request stack must be empty, every service
 * tagged kernel.reset is reset (the session listener, loggers, cache pools, Doctrine's entity
 * managers …), and the default timezone and the locale are put back as PHP does at the end of a
 * request. A reset that fails ends the worker (askrd starts a new one, and hands a request it had
 * queued for this one to another): its state is unknown. Kept: the booted kernel, its container
 * and the services not tagged kernel.reset, compiled routes, OPcache, and ini settings (Symfony
 * sets some lazily, on first use; askr's paranoid mode reports a later change).
 * CoW mode: Doctrine DBAL connections opened while booting are closed before the fork; each
 * worker opens its own (other sockets a boot opens, e.g. a Redis client, are not closed).
 */

declare(strict_types=1);

use Symfony\Component\Dotenv\Dotenv;
use Symfony\Component\ErrorHandler\Debug;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\Session\SessionInterface;
use Symfony\Component\HttpKernel\HttpCache\HttpCache;
use Symfony\Component\HttpKernel\HttpCache\Store;
use Symfony\Component\HttpKernel\HttpKernelInterface;
use Symfony\Component\HttpKernel\KernelInterface;
use Symfony\Component\HttpKernel\TerminableInterface;

/** Logs one line to askrd's log and ends the worker: it cannot (or can no longer) serve. */
function askrSymfonyFail(string $msg): never
{
    error_log('askr symfony worker: ' . $msg);
    exit(1);
}

/** A throwable as one log line: class, message, where. */
function askrSymfonyDescribe(\Throwable $e): string
{
    return sprintf('%s: %s at %s:%d', $e::class, strtr($e->getMessage(), "\r\n", '  '), $e->getFile(), $e->getLine());
}

$base = getenv('ASKR_APP_BASE');
if (!is_string($base) || $base === '') {
    askrSymfonyFail('ASKR_APP_BASE is not set; set [worker] app_base to the Symfony app\'s directory');
}
if (!is_dir($base)) {
    askrSymfonyFail("ASKR_APP_BASE $base is not a directory");
}
$base = rtrim($base, '/') ?: '/';

if (is_file($base . '/config/bootstrap.php')) {
    require $base . '/config/bootstrap.php';
} elseif (is_file($base . '/vendor/autoload.php')) {
    require $base . '/vendor/autoload.php';
    // What the Runtime component does: .env, .env.local, .env.$APP_ENV(.local), or the
    // .env.local.php that `composer dump-env prod` writes. Variables already in the environment win.
    if (class_exists(Dotenv::class) && (is_file($base . '/.env') || is_file($base . '/.env.local.php'))) {
        (new Dotenv())->bootEnv($base . '/.env', 'prod');
    }
} else {
    askrSymfonyFail("$base has neither config/bootstrap.php nor vendor/autoload.php: not a Symfony app, or `composer install` has not run");
}

$env = $_SERVER['APP_ENV'] ?? $_ENV['APP_ENV'] ?? getenv('APP_ENV');
$env = is_string($env) && $env !== '' ? $env : 'prod';
// As Symfony's front controller: "0", "" and unset are false.
$debug = (bool) ($_SERVER['APP_DEBUG'] ?? $_ENV['APP_DEBUG'] ?? getenv('APP_DEBUG'));
$kernelClass = getenv('ASKR_SYMFONY_KERNEL') ?: 'App\\Kernel';
if (!class_exists($kernelClass)) {
    askrSymfonyFail("kernel class $kernelClass not found (autoloaded from $base); name another with ASKR_SYMFONY_KERNEL");
}
if (!is_subclass_of($kernelClass, KernelInterface::class)) {
    askrSymfonyFail("$kernelClass is not a Symfony kernel (" . KernelInterface::class . ')');
}

// Error handling: FrameworkBundle::boot() registers Symfony's ErrorHandler only when
// symfony/runtime is not installed; with it, it leaves that to the Runtime, which this worker
// replaces. So with APP_DEBUG, as the Runtime (and Symfony's earlier public/index.php) does before
// creating the kernel: the debug ErrorHandler and the DebugClassLoader. (Not the Runtime's
// umask(0000): files the worker writes keep askrd's umask.)
if ($debug && class_exists(Debug::class)) {
    Debug::enable();
}

// Boot once: the first worker to boot compiles the container into var/cache (the others wait on
// its lock and load it).
/** @var KernelInterface $kernel */
$kernel = new $kernelClass($env, $debug);
$kernel->boot();
// Kernel::handle() goes through the http_cache service (framework.http_cache) only while the
// kernel is not booted, and it is booted here: the worker handles and terminates through it.
$entry = $kernel->getContainer()->has('http_cache') ? $kernel->getContainer()->get('http_cache') : $kernel;
if (!$entry instanceof HttpKernelInterface) {
    askrSymfonyFail('the http_cache service is not an ' . HttpKernelInterface::class);
}
$terminable = $entry instanceof TerminableInterface;

/**
 * The service ids of the app's Doctrine DBAL connections: none without Doctrine. DoctrineBundle's
 * "doctrine" registry names them; creating the registry connects nothing.
 *
 * @return list<string>
 */
function askrSymfonyConnectionIds(KernelInterface $kernel): array
{
    $c = $kernel->getContainer();
    if (!interface_exists(\Doctrine\Persistence\ConnectionRegistry::class) || !$c->has('doctrine')) {
        return [];
    }
    $doctrine = $c->get('doctrine');
    return $doctrine instanceof \Doctrine\Persistence\ConnectionRegistry ? array_values($doctrine->getConnectionNames()) : [];
}

/**
 * The connections among $ids that exist (asking for another would create and connect it).
 *
 * @param list<string> $ids
 * @return list<\Doctrine\DBAL\Connection>
 */
function askrSymfonyConnections(KernelInterface $kernel, array $ids): array
{
    $c = $kernel->getContainer();
    $open = [];
    foreach ($ids as $id) {
        if ($c->initialized($id) && ($conn = $c->get($id)) instanceof \Doctrine\DBAL\Connection) {
            $open[] = $conn;
        }
    }
    return $open;
}

/** Closes every Doctrine connection: the next query reconnects. */
function askrSymfonyCloseConnections(KernelInterface $kernel, array $ids): void
{
    foreach (askrSymfonyConnections($kernel, $ids) as $conn) {
        $conn->close();
    }
}

$connectionIds = askrSymfonyConnectionIds($kernel);
$timezone = date_default_timezone_get();
$locale = setlocale(LC_ALL, '0');

/**
 * Puts back what a request may have left in this long-lived process, before the next one; run
 * after each response, after kernel.terminate (below). A step that throws ends the worker: its
 * state is unknown.
 */
$askrSymfonyReset = static function () use ($kernel, $entry, $connectionIds, $timezone, $locale): void {
    try {
        // A request that died mid-transaction must not leave it to the next one (DoctrineBundle's
        // kernel.reset clears the entity managers but leaves transactions open). Tested with
        // stand-ins for DBAL and the registry: Debian has no DoctrineBundle.
        foreach (askrSymfonyConnections($kernel, $connectionIds) as $conn) {
            for ($i = 0; $i < 100 && $conn->isTransactionActive(); $i++) {
                $conn->rollBack(); // one nesting level (savepoint) at a time
            }
        }
        $c = $kernel->getContainer();
        // A session still open is written, as PHP would at the request's end, before the session
        // listener's reset (below) aborts it: askr's runtime writes one the request left open
        // before the response goes; this catches one a kernel.terminate listener opened.
        if (session_status() === PHP_SESSION_ACTIVE) {
            session_write_close();
        }
        // Symfony 5.3 and 5.4 keep one Session object for the worker's life (the deprecated
        // "session" service, which the session listener hands every request). Symfony saves it at
        // kernel.response; one used after that (in a StreamedResponse, a kernel.terminate
        // listener) stays "started" with this visitor's data, and the next request, cookie or
        // not, would carry on with it. Written above; save() marks it closed.
        foreach (['.container.private.session', '.session.do-not-use'] as $id) {
            if ($c->initialized($id) && ($session = $c->get($id))->isStarted()) {
                $session->save();
            }
        }
        if ($c->initialized('request_stack') && $c->get('request_stack')->getCurrentRequest() !== null) {
            throw new \LogicException('a request is still on the request stack after the response');
        }
        // On a booted kernel with no request in flight, boot() resets the services tagged
        // kernel.reset (through the services_resetter) if a request ran, and marks them reset, so
        // Kernel::handle() does not do it again at the start of the next request.
        $kernel->boot();
        // The HTTP cache's store: the locks a request left (PHP frees them at the end of a request)
        // and its cache key per Request object, which would keep every request the worker served.
        if ($entry instanceof HttpCache && ($store = $entry->getStore()) instanceof Store) {
            $store->cleanup();
            \Closure::bind(fn () => $this->keyCache = new \SplObjectStorage(), $store, Store::class)();
        }
        // PHP's own end of a request puts these back; a worker's does not.
        if (date_default_timezone_get() !== $timezone) {
            date_default_timezone_set($timezone);
        }
        if ($locale !== false && setlocale(LC_ALL, '0') !== $locale) {
            setlocale(LC_ALL, $locale);
        }
    } catch (\Throwable $e) {
        askrSymfonyFail('reset after a request failed, the worker exits (askrd starts another): ' . askrSymfonyDescribe($e));
    }
};

// The runtime has set up $_SERVER, $_GET, $_POST, $_COOKIE, $_FILES and php://input as php-fpm
// would, so Request::createFromGlobals() works unchanged. The response is sent as
// Response::send() does, without the flush() that ends it there (under php-fpm send() calls
// fastcgi_finish_request() instead): askr's runtime sends the whole response in one write when
// the handler returns, with a Content-Length, where a flush() would stream it (a chunked answer
// and more writes). The app's own output buffers are ended then too, as send() would have; a
// StreamedResponse flushes as it streams. headers_sent() stays false, so every response's
// headers go out. The handler takes
// no parameter, so the runtime never reads a large request body into memory: Symfony reads
// php://input.
// kernel.terminate and the reset run after the response has gone (askr_defer(), after the End
// frame), as under php-fpm, where Response::send() calls fastcgi_finish_request() first: the
// client does not wait for them. The worker takes no other request before they are done. A reset
// that fails exits there, between requests; the runtime tells askrd (Bye), which gives a request
// it had already queued for this worker to another one. Kernel::handle() would otherwise reset at
// the start of the next request, so it costs no more time.
$handler = static function () use ($entry, $terminable, $askrSymfonyReset): void {
    $request = $response = null;
    $sent = false;
    try {
        $request = Request::createFromGlobals();
        $response = $entry->handle($request);
        $route = $request->attributes->get('_route');
        if (is_string($route) && function_exists('askr_paranoid_route')) {
            askr_paranoid_route($route); // the detector names and warms up routes by Symfony's route name
        }
        $response->sendHeaders();
        $response->sendContent();
        $sent = true;
    } finally {
        // Not terminated if send() threw, as under php-fpm (the exception ends the script there).
        $after = static function () use ($entry, $terminable, $askrSymfonyReset, $request, $response, $sent): void {
            try {
                if ($terminable && $sent) {
                    $entry->terminate($request, $response);
                }
            } finally {
                $askrSymfonyReset(); // also when a kernel.terminate listener threw (logged by the runtime)
            }
        };
        if (!askr_defer($after)) { // the request queued askr_defer()'s maximum already
            $after();
        }
    }
};

// Fork-aware: no database socket opened while booting crosses the fork (two processes talking on
// one connection corrupt it; a child closing its copy would end the template's session for all).
// The hook closes what other askr_on_worker_start() hooks, run before it, may have opened.
askrSymfonyCloseConnections($kernel, $connectionIds);
askr_on_worker_start(static function () use ($kernel, $connectionIds): void {
    askrSymfonyCloseConnections($kernel, $connectionIds);
});
// askr's state-bleed detector (askrd --paranoid; a no-op without it) also watches the services
// the container holds (one replaced during a request is reported with its route), and what a
// Symfony request must not leave behind: a session still started (PHP's, or a Session service
// holding attributes), a security token in the token storage, an open Doctrine transaction. Each
// key is always returned, "none" when clean, so the first leak is a change from the baseline.
if (function_exists('askr_paranoid_watch')) {
    $askrSymfonyInstances = static fn (): array => (fn (): array => $this->services + $this->privates)
        ->call($kernel->getContainer());
    askr_paranoid_watch('services', $askrSymfonyInstances);
    askr_paranoid_watch('sf-session', static function () use ($askrSymfonyInstances): array {
        $out = ['php session' => session_status() === PHP_SESSION_ACTIVE ? 'active' : 'none'];
        foreach ($askrSymfonyInstances() as $id => $s) {
            if ($s instanceof SessionInterface) { // isStarted() first: all() would start it
                $out["service $id"] = $s->isStarted() ? 'started, ' . count($s->all()) . ' attributes' : 'none';
            }
        }
        return $out;
    });
    askr_paranoid_watch('sf-auth', static function () use ($askrSymfonyInstances): array {
        $all = $askrSymfonyInstances();
        $out = [];
        // UsageTrackingTokenStorage (security.token_storage with SecurityBundle) would touch the
        // session: it reads the untracked storage, which is then looked at itself.
        foreach (['security.untracked_token_storage', 'security.token_storage'] as $id) {
            $storage = $all[$id] ?? null;
            if (!is_object($storage) || !method_exists($storage, 'getToken')
                || is_a($storage, 'Symfony\Component\Security\Core\Authentication\Token\Storage\UsageTrackingTokenStorage')) {
                continue;
            }
            $token = $storage->getToken();
            $out[$id] = $token === null ? 'none' : 'a token ' . get_class($token) . '#' . spl_object_id($token);
        }
        return $out;
    });
    askr_paranoid_watch('sf-transactions', static function () use ($kernel, $connectionIds): array {
        $out = [];
        foreach ($connectionIds as $id) {
            $conn = askrSymfonyConnections($kernel, [$id])[0] ?? null;
            $out["connection $id"] = $conn === null || !$conn->isTransactionActive() ? 'none'
                : 'level ' . (method_exists($conn, 'getTransactionNestingLevel') ? $conn->getTransactionNestingLevel() : '>0');
        }
        return $out;
    });
}
askr_cow_ready();

while (askr_handle_request($handler)) {
    // nothing between requests: the handler has reset what its request left
}
