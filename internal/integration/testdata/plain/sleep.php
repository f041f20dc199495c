<?php
// Writes nothing for `s` seconds (sleep() is not CPU time: max_execution_time does not end it), then
// says so. With `started`, it first creates that file, so that a test knows the script runs.
if (isset($_GET['started'])) {
    touch($_GET['started']);
}
sleep((int)($_GET['s'] ?? 60));
echo "slept\n";
