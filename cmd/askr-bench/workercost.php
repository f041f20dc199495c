<?php
/*
 * What the Laravel worker (examples/laravel-worker.php) costs per request beyond the app itself:
 * its handler (Request::capture(), Response::send(), askr_defer()) and its resets
 * (resetAfterRequest()), against Kernel::handle() + terminate() alone as inprocess.php times them.
 * It runs the real worker script, unchanged, in this one php-cgi: the askr_* functions below stand
 * in for askr's runtime (no askrd, no channel), and askr_handle_request() drives the worker's own
 * loop with the same GET over and over. From the repository root:
 *
 *     cd examples/laravel && ASKR_APP_BASE=$PWD ASKR_WORKERCOST_PATH=/api/json php-cgi -C \
 *         -d output_buffering=0 -d max_execution_time=0 ../../cmd/askr-bench/workercost.php
 *
 * (run from examples/laravel as askrd runs its workers; opcache on, as php-cgi has it. A file
 * changed in the last opcache.file_update_protection seconds, 2, is not cached: wait that long
 * after editing the worker.)
 *
 * Environment: ASKR_APP_BASE, ASKR_WORKERCOST_PATH (default /api/json), ASKR_WORKERCOST_WORKER
 * (default ../laravel-worker.php beside the app), ASKR_WORKERCOST_REQUESTS (per batch, default
 * 1000), ASKR_WORKERCOST_ROUNDS (default 9). After a warm-up, each round runs three batches in
 * turn, so that a busy machine slows them alike:
 *   worker:  the worker's loop: its handler, then resetAfterRequest(), as under askrd
 *   handler: the worker's handler alone, no resets between requests
 *   app:     Request::create(), Kernel::handle() + terminate() (inprocess.php's loop)
 * The first request goes without cookies; every later one sends the cookies that first answer set.
 *
 * Prints one JSON line: CPU time (user + system, getrusage) per request in µs of each batch kind
 * (median of the rounds' batches, and each), the worker's split into handler and reset, and
 * overhead_us, the median over rounds of worker - app: what the worker adds to each request
 * (handler_overhead_us: the same for the handler without resets), and min_overhead_us, the least
 * worker batch less the least app batch. CPU time, so that other processes do not count; but a
 * busy machine still slows this one (caches, frequency), more some batches than others: on a busy
 * machine min_ figures vary least (more rounds of fewer requests help). Repeat a run before you
 * believe a change of a few µs.
 */

declare(strict_types=1);

namespace Askr\Bench {

final class WorkerCost
{
    /** @var list<callable> */
    public static array $onStart = [];
    /** @var list<callable> */
    public static array $deferred = [];
    public static string $path = '/api/json';
    public static int $requests = 1000;
    public static int $rounds = 9;
    public static bool $swallow = true;
    /** @var array<string,string> cookies of the first answer, as a returning visitor sends them */
    public static array $cookies = [];
    /** @var array<string,string> */
    private static array $env = [];
    /** @var array<string,list<float>> per-request µs of each batch, by kind */
    public static array $batches = ['worker' => [], 'worker_handler' => [], 'worker_reset' => [], 'handler' => [], 'app' => []];

    /** Where the driver is: -1 before the first request; then the worker batch's request number. */
    private static int $n = -1;
    private static int $round = -1;
    private static float $resetFrom = 0;
    private static float $handlerUS = 0;
    private static float $resetUS = 0;

    public static function fail(string $msg): never
    {
        file_put_contents('php://stderr', "workercost.php: $msg\n"); // php-cgi has no STDERR constant
        exit(1);
    }

    /** This process's CPU time so far (user + system), in µs. */
    public static function cpu(): float
    {
        $r = getrusage();
        return ($r['ru_utime.tv_sec'] + $r['ru_stime.tv_sec']) * 1_000_000 + $r['ru_utime.tv_usec'] + $r['ru_stime.tv_usec'];
    }

    /** The superglobals of a GET of $path as the runtime sets them (askrd's CGI variables + environment). */
    private static function superglobals(): void
    {
        if (self::$env === []) {
            self::$env = getenv();
        }
        [$uri, $query] = explode('?', self::$path, 2) + [1 => ''];
        $public = getcwd() . '/public';
        $cgi = ['QUERY_STRING' => $query, 'REQUEST_METHOD' => 'GET', 'CONTENT_TYPE' => '', 'CONTENT_LENGTH' => '',
            'SCRIPT_NAME' => '/index.php', 'SCRIPT_FILENAME' => "$public/index.php", 'PATH_INFO' => '',
            'PHP_SELF' => '/index.php', 'REQUEST_URI' => self::$path, 'DOCUMENT_URI' => '/index.php',
            'DOCUMENT_ROOT' => $public, 'SERVER_PROTOCOL' => 'HTTP/1.1', 'REQUEST_SCHEME' => 'http',
            'GATEWAY_INTERFACE' => 'CGI/1.1', 'SERVER_SOFTWARE' => 'askr', 'REMOTE_ADDR' => '127.0.0.1',
            'REMOTE_PORT' => '40000', 'SERVER_ADDR' => '127.0.0.1', 'SERVER_PORT' => '8080',
            'SERVER_NAME' => 'localhost', 'REDIRECT_STATUS' => '200', 'HTTP_HOST' => '127.0.0.1:8080',
            'REQUEST_TIME' => time(), 'REQUEST_TIME_FLOAT' => microtime(true)];
        if (self::$cookies !== []) {
            $pairs = [];
            foreach (self::$cookies as $name => $value) {
                $pairs[] = "$name=" . rawurlencode($value);
            }
            $cgi['HTTP_COOKIE'] = implode('; ', $pairs);
        }
        $_SERVER = $cgi + self::$env;
        $_GET = [];
        parse_str($query, $_GET);
        $_COOKIE = self::$cookies;
        $_POST = $_FILES = $_REQUEST = [];
        header_remove();
        http_response_code(200);
    }

    /** One request through $handler (the worker's), as the runtime runs it: [µs, status]. */
    private static function serve(callable $handler): array
    {
        self::superglobals();
        self::$deferred = [];
        $t0 = self::cpu();
        $handler();
        foreach (self::$deferred as $fn) { // askr_defer(): after the response
            $fn();
        }
        $us = self::cpu() - $t0;
        return [$us, http_response_code()];
    }

    /** The worker calls this once per request; between two calls it has run resetAfterRequest(). */
    public static function next(callable $handler): bool
    {
        $now = self::cpu();
        if (self::$n === -1) {
            self::first($handler);
            self::$round = -1; // a warm-up round first
            self::$n = 0;
        } elseif (self::$n > 0) {
            self::$resetUS += $now - self::$resetFrom;
        }
        if (self::$n === self::$requests) {
            if (self::$round >= 0) {
                self::$batches['worker_handler'][] = round(self::$handlerUS / self::$requests, 1);
                self::$batches['worker_reset'][] = round(self::$resetUS / self::$requests, 1);
                self::$batches['worker'][] = round((self::$handlerUS + self::$resetUS) / self::$requests, 1);
            }
            self::others($handler);
            if (++self::$round === self::$rounds) {
                return false;
            }
            self::$n = 0;
            self::$handlerUS = self::$resetUS = 0;
        }
        [$us, $status] = self::serve($handler);
        if ($status !== 200) {
            self::fail('GET ' . self::$path . " answered $status");
        }
        self::$handlerUS += $us;
        self::$n++;
        self::$resetFrom = self::cpu();
        return true; // the worker resets, then calls again
    }

    /** The first visit, through the worker: the cookies it sets go with every later request. */
    private static function first(callable $handler): void
    {
        self::serve($handler);
        foreach (headers_list() as $line) {
            if (preg_match('/^Set-Cookie:\s*([^=;]+)=([^;]*)/i', $line, $m)) {
                self::$cookies[$m[1]] = rawurldecode($m[2]);
            }
        }
    }

    /** The two other batches of a round: the worker's handler without resets, then the app alone. */
    private static function others(callable $handler): void
    {
        $total = 0;
        for ($i = 0; $i < self::$requests; $i++) {
            $total += self::serve($handler)[0];
        }
        if (self::$round >= 0) {
            self::$batches['handler'][] = round($total / self::$requests, 1);
        }
        $kernel = $GLOBALS['kernel'];
        $total = 0;
        for ($i = 0; $i < self::$requests; $i++) {
            $t0 = self::cpu(); // Request::create() counts, as in inprocess.php
            $request = \Illuminate\Http\Request::create(self::$path, 'GET', [], self::$cookies);
            $response = $kernel->handle($request);
            $kernel->terminate($request, $response);
            $total += self::cpu() - $t0;
            if ($response->getStatusCode() !== 200) {
                self::fail('GET ' . self::$path . ' answered ' . $response->getStatusCode() . ' in process');
            }
        }
        if (self::$round >= 0) {
            self::$batches['app'][] = round($total / self::$requests, 1);
        }
    }

    public static function median(array $xs): float
    {
        sort($xs);
        return $xs[intdiv(count($xs) - 1, 2)];
    }
}

}

namespace {

// askr's runtime API as the worker script uses it (internal/phpruntime/runtime.php), without askrd.

function askr_on_worker_start(callable $fn): void
{
    \Askr\Bench\WorkerCost::$onStart[] = $fn;
}

function askr_cow_ready(): void
{
    foreach (\Askr\Bench\WorkerCost::$onStart as $fn) {
        $fn();
    }
}

function askr_defer(callable $fn): bool
{
    \Askr\Bench\WorkerCost::$deferred[] = $fn;
    return true;
}

function askr_handle_request(callable $handler): bool
{
    return \Askr\Bench\WorkerCost::next($handler);
}

use Askr\Bench\WorkerCost;

$base = getenv('ASKR_APP_BASE') ?: WorkerCost::fail('ASKR_APP_BASE is not set');
WorkerCost::$path = getenv('ASKR_WORKERCOST_PATH') ?: '/api/json';
WorkerCost::$requests = max(1, (int) (getenv('ASKR_WORKERCOST_REQUESTS') ?: 1000));
WorkerCost::$rounds = max(1, (int) (getenv('ASKR_WORKERCOST_ROUNDS') ?: 9));
$script = getenv('ASKR_WORKERCOST_WORKER') ?: dirname(realpath($base)) . '/laravel-worker.php';
is_file($script) || WorkerCost::fail("$script not found (ASKR_WORKERCOST_WORKER)");

// Everything the worker and the app print is swallowed, as askr's runtime captures it; the buffer
// cannot be removed (Response::send() ends the removable ones).
ob_start(static fn (string $buffer): string => WorkerCost::$swallow ? '' : $buffer, 0,
    PHP_OUTPUT_HANDLER_STDFLAGS ^ PHP_OUTPUT_HANDLER_REMOVABLE);
require $script; // boots the app, then runs its loop until askr_handle_request() says false
ob_clean();
WorkerCost::$swallow = false;

$status = function_exists('opcache_get_status') ? opcache_get_status(false) : false;
$files = [$script, (new ReflectionClass($kernel))->getFileName(), (new ReflectionClass(Illuminate\Http\Request::class))->getFileName()];
$b = WorkerCost::$batches;
$m = array_map([WorkerCost::class, 'median'], $b);
header_remove();
echo json_encode([
    'path' => WorkerCost::$path,
    'requests' => WorkerCost::$requests,
    'rounds' => WorkerCost::$rounds,
    'overhead_us' => WorkerCost::median(array_map(static fn ($w, $a) => round($w - $a, 1), $b['worker'], $b['app'])),
    'handler_overhead_us' => WorkerCost::median(array_map(static fn ($h, $a) => round($h - $a, 1), $b['handler'], $b['app'])),
    // The least of each kind: on a busy machine the batch least slowed by others.
    'min_overhead_us' => round(min($b['worker']) - min($b['app']), 1),
    'min_us' => array_map('min', $b),
    'worker_us' => $m['worker'],
    'worker_handler_us' => $m['worker_handler'],
    'worker_reset_us' => $m['worker_reset'],
    'handler_us' => $m['handler'],
    'app_us' => $m['app'],
    'batches_us' => $b,
    'opcache' => is_array($status) && $status['opcache_enabled'],
    'opcache_cached' => array_values(array_filter($files, static fn ($f) => !function_exists('opcache_is_script_cached') || !opcache_is_script_cached($f))) === [],
    'cookies' => array_keys(WorkerCost::$cookies),
    'memory_mb' => round(memory_get_usage() / 1048576, 1),
    'php' => PHP_VERSION,
]), "\n";
}
