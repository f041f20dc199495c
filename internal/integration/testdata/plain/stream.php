<?php
// Flushes a first chunk, then waits (bounded) until the file named by `go` exists before sending
// the rest: the test creates it only once it has read the first chunk.
declare(strict_types=1);
header('Content-Type: text/plain');
echo "first chunk\n";
ob_flush();
flush();
$deadline = microtime(true) + 10;
while (!file_exists($_GET['go']) && microtime(true) < $deadline) {
    usleep(1000);
}
echo file_exists($_GET['go']) ? "second chunk\n" : "timed out\n";
