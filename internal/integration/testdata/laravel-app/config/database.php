<?php

return [
    'default' => env('DB_CONNECTION', 'sqlite'),
    'connections' => [
        'sqlite' => [
            'driver' => 'sqlite',
            'database' => storage_path('app.sqlite'),
            'prefix' => '',
            // PDO's timeout is SQLite's busy timeout: a worker waits up to 5 s for another's lock.
            'options' => [PDO::ATTR_TIMEOUT => 5],
        ],
        // MariaDB through its Unix socket (TestLvCowMariaDB starts one).
        'mysql' => [
            'driver' => 'mysql',
            'unix_socket' => env('DB_SOCKET', ''),
            'database' => env('DB_DATABASE', 'leaks'),
            'username' => env('DB_USERNAME', 'root'),
            'password' => env('DB_PASSWORD', ''),
            'charset' => 'utf8mb4',
            'collation' => 'utf8mb4_unicode_ci',
            'prefix' => '',
        ],
        // PostgreSQL through its Unix socket, host being the socket's directory (TestLvCowPg).
        'pgsql' => [
            'driver' => 'pgsql',
            'host' => env('DB_SOCKET', ''),
            'database' => env('DB_DATABASE', 'leaks'),
            'username' => env('DB_USERNAME', 'postgres'),
            'password' => env('DB_PASSWORD', ''),
            'charset' => 'utf8',
            'prefix' => '',
            'schema' => 'public',
        ],
    ],
];
