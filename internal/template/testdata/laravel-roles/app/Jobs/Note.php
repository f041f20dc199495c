<?php

namespace App\Jobs;

use Illuminate\Bus\Queueable;
use Illuminate\Contracts\Queue\ShouldQueue;
use Illuminate\Foundation\Bus\Dispatchable;
use Illuminate\Queue\InteractsWithQueue;

/** Notes "n pid sapi console=…" in storage/notes when it runs (after "start n" if it takes a while). */
class Note implements ShouldQueue
{
    use Dispatchable, InteractsWithQueue, Queueable;

    public function __construct(public int $n, public float $seconds = 0)
    {
    }

    public function handle(): void
    {
        $notes = storage_path('notes');
        if ($this->seconds > 0) {
            file_put_contents($notes, "start {$this->n}\n", FILE_APPEND | LOCK_EX);
            usleep((int) ($this->seconds * 1e6));
        }
        file_put_contents($notes, sprintf("%d %d %s console=%s\n", $this->n, getmypid(), PHP_SAPI,
            var_export(app()->runningInConsole(), true)), FILE_APPEND | LOCK_EX);
    }
}
