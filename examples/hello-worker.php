<?php
// A minimal askr worker: boots once, then answers requests in a loop.
//   askr serve --root examples/hello/public --worker-script examples/hello-worker.php

$booted = microtime(true);
$served = 0;

$handler = static function (array $request) use ($booted, &$served): void {
    $served++;
    header('Content-Type: text/plain; charset=utf-8');
    echo "Hello from askr worker ", getmypid(), "\n";
    echo "method=", $request['method'], " uri=", $request['uri'], " served=", $served, "\n";
};

askr_cow_ready();
while (askr_handle_request($handler)) {
    // between requests: nothing to reset in this app
}
