<?php
/*
 * askr worker for the Symfony example: boots the kernel once, then serves requests in a loop.
 *   ASKR_APP_BASE=$PWD/examples/symfony askrd serve --root examples/symfony/public \
 *       --worker-script examples/symfony-worker.php
 * The same app runs one request per process through examples/symfony/public/index.php.
 * APP_ENV (default prod) and APP_DEBUG (default 0) come from askrd's environment.
 */

declare(strict_types=1);

use App\Kernel;
use Symfony\Component\HttpFoundation\Request;

$base = getenv('ASKR_APP_BASE') ?: __DIR__ . '/symfony';
require $base . '/config/bootstrap.php';

// Boot once: the first worker to boot compiles the container into var/cache (the others wait on
// its lock and load it); booting registers Symfony's error handler (FrameworkBundle::boot()).
$kernel = new Kernel(getenv('APP_ENV') ?: 'prod', (bool) getenv('APP_DEBUG'));
$kernel->boot();

// The runtime has set up $_SERVER, $_GET, $_POST, $_COOKIE, $_FILES and php://input as php-fpm
// would, so Request::createFromGlobals() and Response::send() work unchanged. send() leaves
// askr's output buffer in place (Response::closeOutputBuffers() stops at a buffer it cannot
// remove) and headers_sent() stays false, so every response's headers go out.
$handler = static function () use ($kernel): void {
    $request = Request::createFromGlobals();
    $response = $kernel->handle($request);
    $response->send();
    $kernel->terminate($request, $response);
};

askr_cow_ready();
while (askr_handle_request($handler)) {
    // Reset what the request left in long-lived services (those tagged kernel.reset: the session
    // listener aborts any open session and forgets its id and $_SESSION, loggers and cache pools
    // drop their buffers …). On a booted kernel with no request in flight boot() does just that
    // through the services_resetter, which Kernel::handle() would otherwise do only at the start
    // of the next request; done here, it runs after the response has gone out, and only once.
    $kernel->boot();
}
