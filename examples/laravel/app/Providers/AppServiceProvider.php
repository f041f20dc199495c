<?php

namespace App\Providers;

use Illuminate\Database\QueryException;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\ServiceProvider;

class AppServiceProvider extends ServiceProvider
{
    public function register()
    {
        // Every SQLite connection, including those opened again after DB::purge(), gets the
        // busy timeout and journal mode of config/database.php.
        $this->app->bind('db.connector.sqlite', \App\Database\SQLiteConnector::class);
    }

    public function boot()
    {
        $this->createDatabase();
    }

    /**
     * The database (config/database.php): an SQLite file with one table, created at the first
     * boot. This opens a connection, so in askr's CoW mode the template holds an open SQLite
     * handle when it forks its workers (each worker drops it: see askr_on_worker_start() in
     * ../../laravel-worker.php).
     */
    private function createDatabase(): void
    {
        $database = config('database.connections.sqlite.database');
        if (!is_file($database) && !@touch($database) && !is_file($database)) {
            throw new \RuntimeException("cannot create $database");
        }
        // Workers booting at once race for a fresh file: SQLite answers "locked" at once (not after
        // busy_timeout) when waiting could deadlock, e.g. while another process switches it to WAL.
        for ($try = 1; ; $try++) {
            try {
                DB::statement('CREATE TABLE IF NOT EXISTS visits (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    pid INTEGER NOT NULL,
                    token TEXT NOT NULL,
                    created_at TEXT NOT NULL
                )');
                return;
            } catch (QueryException $e) {
                if ($try === 50 || !str_contains($e->getMessage(), 'database is locked')) {
                    throw $e;
                }
                DB::purge();
                usleep(20000 * $try);
            }
        }
    }
}
