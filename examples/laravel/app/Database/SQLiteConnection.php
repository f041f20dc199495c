<?php

namespace App\Database;

use Illuminate\Database\SQLiteConnection as BaseConnection;

/**
 * Laravel 8's SQLite connection, whose transactions take SQLite's write lock when they begin (as
 * BEGIN IMMEDIATE does), waiting up to busy_timeout for it. SQLite's plain BEGIN takes it only at
 * the first write: a transaction that read first, such as the database queue's pop (select the next
 * job, then mark it reserved), then fails at once with "database is locked" when another process
 * wrote in between, so queue workers running side by side fail and sleep instead of taking turns.
 * PDO's SQLite driver cannot send BEGIN IMMEDIATE (it would not know a transaction is open): after
 * its BEGIN, a write that changes nothing takes the lock. Bound for the "sqlite" driver by
 * App\Providers\AppServiceProvider.
 */
class SQLiteConnection extends BaseConnection
{
    protected function createTransaction()
    {
        $outermost = $this->transactions == 0;
        parent::createTransaction();
        if (!$outermost) {
            return;
        }
        try {
            $this->getPdo()->exec('UPDATE write_lock SET id = id WHERE 0');
        } catch (\Throwable $e) {
            $this->getPdo()->rollBack(); // not begun, as far as Laravel knows
            throw $e;
        }
    }
}
