<?php
// Test worker for the fork-safety check ([worker] fork_safety): opens a TCP connection to
// ASKR_TEST_FORK_PEER (a listener the test holds) while booting, and keeps it across
// askr_cow_ready(), as an app that connects to its database at boot would.
declare(strict_types=1);

$peer = stream_socket_client('tcp://' . getenv('ASKR_TEST_FORK_PEER'), $errno, $errstr, 5);
if ($peer === false) {
    throw new RuntimeException("cannot connect to ASKR_TEST_FORK_PEER: $errstr");
}
askr_cow_ready();
while (askr_handle_request(static function () use ($peer): void {
    echo is_resource($peer) ? 'holding the connection' : 'no connection';
})) {
}
