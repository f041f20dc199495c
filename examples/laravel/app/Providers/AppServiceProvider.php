<?php

namespace App\Providers;

use Illuminate\Database\Connection;
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
        // Transactions that take the write lock when they begin (the database queue needs it).
        Connection::resolverFor('sqlite', fn ($pdo, $database, $prefix, $config) =>
            new \App\Database\SQLiteConnection($pdo, $database, $prefix, $config));
    }

    public function boot()
    {
        $this->createDatabase();
    }

    /**
     * The tables: the visits of /api/visits; Laravel's database queue (config/queue.php): jobs and
     * failed_jobs, as Laravel's queue:table and queue:failed-table migrations make them; write_lock.
     */
    private const TABLES = [
        'CREATE TABLE IF NOT EXISTS visits (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            pid INTEGER NOT NULL,
            token TEXT NOT NULL,
            created_at TEXT NOT NULL
        )',
        'CREATE TABLE IF NOT EXISTS jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            queue VARCHAR NOT NULL,
            payload TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            reserved_at INTEGER,
            available_at INTEGER NOT NULL,
            created_at INTEGER NOT NULL
        )',
        'CREATE INDEX IF NOT EXISTS jobs_queue_index ON jobs (queue)',
        // Empty: App\Database\SQLiteConnection writes nothing to it to take the write lock.
        'CREATE TABLE IF NOT EXISTS write_lock (id INTEGER)',
        'CREATE TABLE IF NOT EXISTS failed_jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            uuid VARCHAR NOT NULL UNIQUE,
            connection TEXT NOT NULL,
            queue TEXT NOT NULL,
            payload TEXT NOT NULL,
            exception TEXT NOT NULL,
            failed_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
        )',
    ];

    /**
     * The database (config/database.php): an SQLite file with its tables, created at the first
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
                foreach (self::TABLES as $sql) {
                    DB::statement($sql);
                }
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
