<?php

return [
    // Records every entry in memory (Monolog's TestHandler), so a route can read back the
    // context its own log line got.
    'default' => 'memory',
    'channels' => [
        'memory' => [
            'driver' => 'monolog',
            'handler' => Monolog\Handler\TestHandler::class,
        ],
        'stderr' => [
            'driver' => 'monolog',
            'handler' => Monolog\Handler\StreamHandler::class,
            'with' => ['stream' => 'php://stderr'],
        ],
    ],
];
