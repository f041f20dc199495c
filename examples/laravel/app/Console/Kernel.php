<?php

namespace App\Console;

use Illuminate\Console\Scheduling\Schedule;
use Illuminate\Foundation\Console\Kernel as ConsoleKernel;
use Illuminate\Support\Facades\Artisan;

class Kernel extends ConsoleKernel
{
    /** The app's own commands (listed: Laravel 8's load() would need a composer.json). */
    protected $commands = [
        Commands\RecordSchedule::class,
    ];

    /**
     * The schedule schedule:run starts (askrd's [scheduler] runs it at every interval boundary).
     * example:record runs in the scheduler's own process, through Artisan::call(): a
     * $schedule->command() would start `php artisan …` as a new process instead.
     */
    protected function schedule(Schedule $schedule)
    {
        $schedule->call(fn () => Artisan::call('example:record'))
            ->name('example:record')
            ->everyMinute();
    }
}
