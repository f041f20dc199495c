<?php
// 4 MiB in 4096 numbered lines of 1 KiB; then, once all of it has left PHP, touches ?marker.
declare(strict_types=1);

for ($i = 0; $i < 4096; $i++) {
    echo str_pad((string) $i, 1023, '.'), "\n";
}
flush();
if (isset($_GET['marker'])) {
    $marker = (string) $_GET['marker'];
    if (function_exists('askr_defer')) {
        askr_defer(static function () use ($marker): void { // worker mode: after the End frame
            touch($marker);
        });
    } else {
        touch($marker); // per-request mode: flush() has written it all to askrd's socket
    }
}
