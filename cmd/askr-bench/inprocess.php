<?php
/*
 * The in-process limit of one route of the Laravel example (cmd/askr-bench, issue 19): boots the
 * app once, as a worker does, then times Kernel::handle() + terminate() of the same GET over and
 * over in this one process, with nothing around it (no server, no socket, no reset between
 * requests). askr-bench runs it with php-cgi from examples/laravel, as askrd runs its workers:
 *
 *     ASKR_APP_BASE=examples/laravel ASKR_INPROCESS_PATH=/api/json php-cgi -C \
 *         -d output_buffering=0 -d max_execution_time=0 cmd/askr-bench/inprocess.php
 *
 * Environment: ASKR_APP_BASE (the app), ASKR_INPROCESS_PATH (the route, default /),
 * ASKR_INPROCESS_BATCHES (default 5) and ASKR_INPROCESS_BATCH_MS (default 1000): after a warm-up
 * of one batch's length, that many batches of that length, each as many requests as fit in it.
 * The first request goes without cookies; every later one sends the cookies that first answer set
 * (a returning visitor, as askr-bench's load: a route with a session reads and writes one session).
 *
 * Prints one JSON line: requests timed; this process's CPU time (user + system, getrusage) per
 * request in µs, the mean over all batches, the median batch's and each batch's (CPU time, not
 * wall time, so that other processes on the machine do not count; on an idle machine the two
 * agree); the mean wall time per request; whether OPcache served the app's and Laravel's files;
 * and the session's check.
 */

declare(strict_types=1);

use Illuminate\Contracts\Http\Kernel;
use Illuminate\Http\Request;

function inprocess_fail(string $msg): never
{
    file_put_contents('php://stderr', "inprocess.php: $msg\n"); // php-cgi has no STDERR constant
    exit(1);
}

$base = getenv('ASKR_APP_BASE') ?: inprocess_fail('ASKR_APP_BASE is not set');
$path = getenv('ASKR_INPROCESS_PATH') ?: '/';
$batches = max(1, (int) (getenv('ASKR_INPROCESS_BATCHES') ?: 5));
$batchNS = max(1, (int) (getenv('ASKR_INPROCESS_BATCH_MS') ?: 1000)) * 1_000_000;

if (is_file("$base/vendor/autoload.php")) {
    require_once "$base/vendor/autoload.php";
}
$app = require "$base/bootstrap/app.php";
$kernel = $app->make(Kernel::class);

$cookies = [];
/** One request through the app as a worker serves it; its answer must be a 200. */
$serve = static function () use ($kernel, $path, &$cookies): void {
    $request = Request::create($path, 'GET', [], $cookies);
    $response = $kernel->handle($request);
    $kernel->terminate($request, $response);
    if ($response->getStatusCode() !== 200) {
        inprocess_fail("GET $path answered " . $response->getStatusCode() . ': ' . preg_replace('/\s+/', ' ', substr((string) $response->getContent(), 0, 300)));
    }
};

// The first visit: its cookies (already encrypted, as a browser holds them) go with every later
// request.
$request = Request::create($path, 'GET');
$response = $kernel->handle($request);
$kernel->terminate($request, $response);
foreach ($response->headers->getCookies() as $cookie) {
    $cookies[$cookie->getName()] = $cookie->getValue();
}
// A route with a session: the visitor's id, which must stay the same (the cookie was honoured).
$session = static fn (): ?string => isset($cookies[$app['config']['session.cookie']]) ? $app['session']->driver()->getId() : null;
$serve();
$visitor = $session();

/** This process's CPU time so far (user + system), in µs. */
$cpu = static function (): int {
    $r = getrusage();
    return ($r['ru_utime.tv_sec'] + $r['ru_stime.tv_sec']) * 1_000_000 + $r['ru_utime.tv_usec'] + $r['ru_stime.tv_usec'];
};
/** As many requests as fit in $ns: [requests, wall ns, CPU µs]. */
$run = static function (int $ns) use ($serve, $cpu): array {
    $n = 0;
    $start = hrtime(true);
    $cpu0 = $cpu();
    do {
        $serve();
        $n++;
        $elapsed = hrtime(true) - $start;
    } while ($elapsed < $ns);
    return [$n, $elapsed, $cpu() - $cpu0];
};
$run($batchNS); // warm-up
$each = [];
$total = $totalNS = $totalCPU = 0;
for ($i = 0; $i < $batches; $i++) {
    [$n, $ns, $us] = $run($batchNS);
    $each[] = round($us / $n, 1);
    $total += $n;
    $totalNS += $ns;
    $totalCPU += $us;
}
$sorted = $each;
sort($sorted);

// OPcache: on, and serving the app's kernel and Laravel's own files (a file changed
// in the last opcache.file_update_protection seconds is not cached).
$status = function_exists('opcache_get_status') ? opcache_get_status(false) : false;
$files = [(new ReflectionClass($kernel))->getFileName(), (new ReflectionClass(Request::class))->getFileName()];
echo json_encode([
    'path' => $path,
    'requests' => $total,
    'mean_us' => round($totalCPU / $total, 1),
    'median_us' => $sorted[intdiv(count($sorted) - 1, 2)],
    'batches_us' => $each,
    'wall_mean_us' => round($totalNS / $total / 1000, 1),
    'opcache' => is_array($status) && $status['opcache_enabled'],
    'opcache_cached' => array_values(array_filter($files, static fn ($f) => !function_exists('opcache_is_script_cached') || !opcache_is_script_cached($f))) === [],
    'cached_scripts' => is_array($status) ? $status['opcache_statistics']['num_cached_scripts'] : 0,
    'cookies' => array_keys($cookies),
    'session' => $visitor,
    'session_kept' => $visitor === $session(),
    'memory_mb' => round(memory_get_usage() / 1048576, 1),
    'sapi' => PHP_SAPI,
    'php' => PHP_VERSION,
]), "\n";
