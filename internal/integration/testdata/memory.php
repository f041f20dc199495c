<?php
// Worker for the memory recycling tests. /grow keeps 5 MB more per request, as a leak does; every
// path answers "PID KEPT BIG": the worker's pid, the 5 MB blocks it holds, the size of what the
// script built at boot: with ASKR_TEST_BIG=1, 200 MB (in CoW mode built in the template before
// askr_cow_ready(), so shared with every worker).
declare(strict_types=1);

ini_set('memory_limit', '-1');
$big = getenv('ASKR_TEST_BIG') === '1' ? str_repeat('b', 200 << 20) : '';
$hoard = [];

$handler = static function () use (&$hoard, $big): void {
    if (parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) === '/grow') {
        $hoard[] = str_repeat('x', 5 << 20);
    }
    header('Content-Type: text/plain');
    echo getmypid(), ' ', count($hoard), ' ', strlen($big);
};

askr_cow_ready();
while (askr_handle_request($handler)) {
}
