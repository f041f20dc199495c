<?php

return [
    'default' => 'sqlite',
    'connections' => [
        'sqlite' => [
            'driver' => 'sqlite',
            'database' => storage_path('app.sqlite'),
            'prefix' => '',
            // PDO's timeout is SQLite's busy timeout: a worker waits up to 5 s for another's lock.
            'options' => [PDO::ATTR_TIMEOUT => 5],
        ],
    ],
];
