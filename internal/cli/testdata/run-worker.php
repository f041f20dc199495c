<?php
// The worker of run_test.go: every request runs app/public/index.php.
askr_cow_ready();
while (askr_handle_request(static function (): void {
    require __DIR__ . '/app/public/index.php';
})) {
}
