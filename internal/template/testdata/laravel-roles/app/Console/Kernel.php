<?php

namespace App\Console;

use Illuminate\Console\Scheduling\Schedule;
use Illuminate\Foundation\Console\Kernel as ConsoleKernel;

class Kernel extends ConsoleKernel
{
    protected function schedule(Schedule $schedule)
    {
        $schedule->call(function () {
            file_put_contents(storage_path('schedule'), getmypid() . ' ' . PHP_SAPI . "\n", FILE_APPEND | LOCK_EX);
        })->everyMinute();
    }
}
