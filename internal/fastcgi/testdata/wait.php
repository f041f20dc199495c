<?php
// Creates the file named by `started` (if given), then outputs nothing until the file named by
// `go` exists (at most 20 s), then says so.
declare(strict_types=1);
if (isset($_GET['started'])) {
    touch($_GET['started']);
}
$deadline = microtime(true) + 20;
while (!file_exists($_GET['go']) && microtime(true) < $deadline) {
    usleep(1000);
}
echo "done\n";
