<?php

namespace App\Jobs;

use Illuminate\Bus\Queueable;
use Illuminate\Contracts\Queue\ShouldQueue;
use Illuminate\Foundation\Bus\Dispatchable;
use Illuminate\Queue\InteractsWithQueue;

/**
 * A queued job that records that it ran, in storage/queue-runs.log, one line per event:
 * "ran NUMBER PID VERSION" (a job run twice shows twice). A slow job (seconds > 0) writes
 * "started NUMBER PID VERSION", works for that long, then "finished NUMBER PID VERSION".
 * POST /api/queue/dispatch dispatches them.
 */
class RecordRun implements ShouldQueue
{
    use Dispatchable, InteractsWithQueue, Queueable;

    /** Which code ran the job (the tests change it on disk and reload). */
    public const VERSION = 'v1';

    public function __construct(public int $number, public float $seconds = 0)
    {
    }

    public function handle(): void
    {
        if ($this->seconds <= 0) {
            $this->record('ran');
            return;
        }
        $this->record('started');
        $end = microtime(true) + $this->seconds;
        while (microtime(true) < $end) { // a signal (SIGTERM: stop after this job) cuts usleep() short
            usleep(10000);
        }
        $this->record('finished');
    }

    private function record(string $event): void
    {
        $line = sprintf("%s %d %d %s\n", $event, $this->number, getmypid(), self::VERSION);
        file_put_contents(storage_path('queue-runs.log'), $line, FILE_APPEND | LOCK_EX);
    }
}
