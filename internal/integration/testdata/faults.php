<?php
// Worker script for faults_test.go: a request that kills its worker, and $request['body'] for a
// handler that declares the parameter and one that does not (ASKR_TEST_NO_PARAM=1).
declare(strict_types=1);

/** What the handler answers; $request is null for a handler that declares no parameter. */
$answer = static function (?array $request, array $passed): void {
    switch (parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH)) {
        case '/pid':
            echo getmypid();
            return;
        case '/kill':
            // A query of death: the process ends while it has the request, before any answer.
            posix_kill(getmypid(), SIGKILL);
            echo 'unreachable';
            return;
        case '/body':
            // Streams php://input in pieces, so that this reading never holds the body whole.
            $in = fopen('php://input', 'rb');
            $h = hash_init('sha1');
            while (!feof($in)) {
                hash_update($h, (string) fread($in, 65536));
            }
            header('Content-Type: application/json');
            echo json_encode([
                'request_body_sha1' => $request === null ? null : sha1($request['body']),
                'request_body_length' => $request === null ? null : strlen($request['body']),
                'passed_body_length' => strlen($passed[0]['body'] ?? ''),
                'input_sha1' => hash_final($h),
                'peak' => memory_get_peak_usage(),
            ]);
            return;
        default:
            echo 'faults ok';
    }
};

if (getenv('ASKR_TEST_NO_PARAM') === '1') {
    $handler = static function () use ($answer): void {
        $answer(null, func_get_args());
    };
} else {
    $handler = static function (array $request) use ($answer): void {
        $answer($request, [$request]);
    };
}

while (askr_handle_request($handler)) {
}
