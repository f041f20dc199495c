<?php
// A worker script whose error handler turns every warning into an exception without looking at
// error_reporting() (a common one-liner): nothing of askr's own may reach it.
declare(strict_types=1);

set_error_handler(static function (int $no, string $msg, string $file, int $line): bool {
    throw new ErrorException($msg, 0, $no, $file, $line);
});
askr_cow_ready();
while (askr_handle_request(static function (): void {
    if ($_SERVER['REQUEST_URI'] === '/exit') {
        exit(0);
    }
    echo 'pid ', getmypid();
})) {
}
