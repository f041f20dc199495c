<?php

return [
    'default' => env('DB_CONNECTION', 'sqlite'),

    'connections' => [
        // One SQLite file under the app base. App\Providers\AppServiceProvider creates it, and its
        // table, at boot. App\Database\SQLiteConnector sets busy_timeout and journal_mode on every connection
        // it opens, so concurrent writers in several workers wait for each other instead of failing
        // with "database is locked".
        'sqlite' => [
            'driver' => 'sqlite',
            'database' => env('DB_DATABASE', storage_path('database.sqlite')),
            'prefix' => '',
            'busy_timeout' => 5000, // ms
            'journal_mode' => 'wal',
        ],
    ],

    'migrations' => 'migrations',
];
