<?php

namespace App\Console\Commands;

use Illuminate\Console\Command;

/**
 * A scheduled command that records each of its runs in storage/schedule-runs.log: one line
 * "PID START END" (Unix times in seconds, with microseconds) once it ends. It takes
 * storage/schedule-sleep (seconds, if the file exists) to run, so a run can outlast the
 * scheduler's interval.
 */
class RecordSchedule extends Command
{
    protected $signature = 'example:record';

    protected $description = 'Records this run (pid, start and end time) in storage/schedule-runs.log';

    public function handle()
    {
        $start = microtime(true);
        $sleep = storage_path('schedule-sleep');
        $seconds = is_file($sleep) ? (float) file_get_contents($sleep) : 0.0;
        while (microtime(true) < $start + $seconds) { // a signal cuts usleep() short
            usleep(10000);
        }
        $line = sprintf("%d %.6f %.6f\n", getmypid(), $start, microtime(true));
        file_put_contents(storage_path('schedule-runs.log'), $line, FILE_APPEND | LOCK_EX);

        return 0;
    }
}
