<?php

namespace App\Database;

use Illuminate\Database\Connectors\SQLiteConnector as BaseConnector;

/**
 * Laravel 8's SQLite connector with the per-connection settings it lacks: a busy timeout (SQLite's
 * default is 0, i.e. fail at once with "database is locked" while another process writes) and the
 * journal mode (WAL: readers do not block the writer, nor the writer the readers). Bound as
 * db.connector.sqlite by App\Providers\AppServiceProvider.
 */
class SQLiteConnector extends BaseConnector
{
    public function connect(array $config)
    {
        $pdo = parent::connect($config);
        // busy_timeout first: switching a database to WAL needs a lock that another process may hold.
        $pdo->exec('PRAGMA busy_timeout = ' . (int) ($config['busy_timeout'] ?? 5000));
        if (($mode = $config['journal_mode'] ?? null) && $config['database'] !== ':memory:') {
            $pdo->exec('PRAGMA journal_mode = ' . preg_replace('/[^a-z]/', '', strtolower($mode)));
        }

        return $pdo;
    }
}
