<?php

namespace Leaks\Services;

use Illuminate\Support\Facades\DB;

/** The database server's side of the default connection. */
class Backend
{
    /**
     * The server's id of the connection: MariaDB's connection id, or PostgreSQL's backend pid with
     * the backend's start time (a pid can be used again). Null on SQLite, which has no server.
     */
    public static function id(): ?string
    {
        switch (DB::getDriverName()) {
            case 'mysql':
                return (string) DB::selectOne('SELECT CONNECTION_ID() AS id')->id;
            case 'pgsql':
                return (string) DB::selectOne("SELECT pg_backend_pid() || '@' || backend_start AS id
                    FROM pg_stat_activity WHERE pid = pg_backend_pid()")->id;
        }
        return null;
    }

    /** Ends the connection from the server's side, as wait_timeout or an admin would. */
    public static function kill(): void
    {
        try {
            if (DB::getDriverName() === 'pgsql') {
                DB::statement('SELECT pg_terminate_backend(pg_backend_pid())');
            } else {
                DB::statement('KILL ' . (int) DB::selectOne('SELECT CONNECTION_ID() AS id')->id);
            }
        } catch (\Illuminate\Database\QueryException $e) {
            // the server ends the connection while it answers
        }
    }
}
