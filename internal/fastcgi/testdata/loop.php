<?php
// Writes and flushes a line every millisecond until the file named by `stop` exists (at most
// 20 s), then creates the file named by `done`. A client that goes away aborts it at a write.
declare(strict_types=1);
$deadline = microtime(true) + 20;
while (!file_exists($_GET['stop']) && microtime(true) < $deadline) {
    echo "tick\n";
    ob_flush();
    flush();
    usleep(1000);
}
touch($_GET['done']);
