<?php

/*
 * The negative control of TestSfNaive: the worker loop a user writes from askr's README for the
 * Symfony test app (handle, send, terminate), with none of examples/symfony-worker.php's resets.
 */

declare(strict_types=1);

use Symfony\Component\HttpFoundation\Request;

require getenv('ASKR_APP_BASE') . '/config/bootstrap.php';

$kernel = new LeakTest\Kernel('prod', false);
$kernel->boot();
askr_cow_ready();

while (askr_handle_request(static function () use ($kernel): void {
    $request = Request::createFromGlobals();
    $response = $kernel->handle($request);
    $response->send();
    $kernel->terminate($request, $response);
})) {
}
