<?php
// php dispatch.php N [SECONDS]: queues N Note jobs (each taking SECONDS) on the app in the working directory.
$app = require getcwd() . '/bootstrap/app.php';
$app->make(Illuminate\Contracts\Console\Kernel::class)->bootstrap();
Illuminate\Support\Facades\DB::statement('CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue VARCHAR NOT NULL, payload TEXT NOT NULL, attempts INTEGER NOT NULL, reserved_at INTEGER,
    available_at INTEGER NOT NULL, created_at INTEGER NOT NULL)');
for ($i = 1; $i <= (int) $argv[1]; $i++) {
    App\Jobs\Note::dispatch($i, (float) ($argv[2] ?? 0));
}
