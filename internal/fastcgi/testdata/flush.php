<?php
// Flushes a first chunk, then waits (bounded) until the file named by the `go` query parameter
// exists before sending the rest; the test creates it after it has seen the first chunk.
declare(strict_types=1);
echo "first chunk\n";
ob_flush();
flush();
$deadline = microtime(true) + 10;
while (!file_exists($_GET['go']) && microtime(true) < $deadline) {
    usleep(1000);
}
echo file_exists($_GET['go']) ? "second chunk\n" : "timed out\n";
