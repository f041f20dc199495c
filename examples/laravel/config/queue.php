<?php

return [
    // The database queue: jobs wait in the "jobs" table of the app's SQLite file (created by
    // App\Providers\AppServiceProvider), where askrd's [queue] workers take them
    // (/usr/share/askr/workers/laravel-queue.php runs queue:work).
    'default' => env('QUEUE_CONNECTION', 'database'),

    'connections' => [
        'sync' => ['driver' => 'sync'],
        'database' => [
            'driver' => 'database',
            'table' => 'jobs',
            'queue' => 'default',
            'retry_after' => 90, // s: a job reserved longer than this is given to another worker
            'after_commit' => false,
        ],
    ],

    'failed' => [
        'driver' => env('QUEUE_FAILED_DRIVER', 'database-uuids'),
        'database' => env('DB_CONNECTION', 'sqlite'),
        'table' => 'failed_jobs',
    ],
];
