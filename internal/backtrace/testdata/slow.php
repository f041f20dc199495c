<?php
// A script the tests read the stack of: it calls Slow->slow_function_name(), which sleeps or
// spins as the environment variable SLOW_MODE says ("sleep", "spin", or "fork": a forked child
// sleeps, as a CoW worker is a fork); "churn" calls and returns without end, so that its stack
// changes all the time; "deep" sleeps 100 calls deep.
declare(strict_types=1);

class Slow
{
    public function slow_function_name(string $mode): void
    {
        if ($mode === 'sleep') {
            sleep(60); // SLEEP LINE
            return;
        }
        $x = 0;
        while (true) { // SPIN LINE
            $x++;
        }
    }
}

function outer(string $mode): void
{
    (new Slow())->slow_function_name($mode); // CALL LINE
}

function churn(int $depth): int
{
    return $depth > 0 ? churn($depth - 1) : strlen(str_repeat('x', 100));
}

function deep(int $depth): void
{
    if ($depth > 0) {
        deep($depth - 1);
        return;
    }
    sleep(60);
}

$mode = (string) getenv('SLOW_MODE');
if ($mode === 'deep') {
    deep(100);
}
if ($mode === 'churn') {
    while (true) {
        churn(mt_rand(0, 40));
    }
}
if ($mode === 'fork') {
    $pid = pcntl_fork();
    if ($pid === 0) {
        outer('sleep');
        exit(0);
    }
    file_put_contents((string) getenv('SLOW_PIDFILE'), (string) $pid);
    pcntl_wait($status);
    exit(0);
}
outer($mode);
