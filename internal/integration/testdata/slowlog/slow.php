<?php
// The slow route of the slow log tests (slowlog_test.go), shared by the worker script (worker
// and CoW mode) and public/slow.php (per-request mode): it sleeps in a method whose name the
// slow log must show, and says how long the sleep really took, so a test sees it was not cut
// short.
declare(strict_types=1);

final class SlowRoute
{
    public function slow_function_name(float $seconds): string
    {
        $start = hrtime(true);
        usleep((int) ($seconds * 1e6)); // SLOW SLEEP
        return sprintf("slept %d ns in pid %d\n", hrtime(true) - $start, getmypid());
    }
}
