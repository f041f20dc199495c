<?php
// Worker for TestSlowReadersDoNotHoldWorkers (worker and CoW mode): the same answers as
// public/big.php and public/ping.php give in per-request mode.
declare(strict_types=1);

$handler = static function (): void {
    if (parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) === '/big.php') {
        require __DIR__ . '/public/big.php';
        return;
    }
    require __DIR__ . '/public/ping.php';
};

askr_cow_ready();
while (askr_handle_request($handler)) {
}
