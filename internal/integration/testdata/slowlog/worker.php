<?php
// Worker script of the slow log tests: /slow?s=SECONDS runs SlowRoute->slow_function_name().
declare(strict_types=1);

require __DIR__ . '/slow.php';

askr_cow_ready();
while (askr_handle_request(static function (): void {
    echo (new SlowRoute())->slow_function_name((float) ($_GET['s'] ?? 1));
})) {
}
