<?php
// Test worker for askrd's integration tests: each path exercises one behaviour of the runtime.
declare(strict_types=1);

if (getenv('ASKR_TEST_BOOT_FAIL') === '1'
    || (($flag = getenv('ASKR_TEST_BOOT_FAIL_IF')) !== false && file_exists($flag))) {
    throw new RuntimeException('boot failed on purpose');
}
if (($slow = getenv('ASKR_TEST_BOOT_SLEEP')) !== false) {
    sleep((int) $slow);
}
$version = '';
if (($vf = getenv('ASKR_TEST_VERSION_FILE')) !== false) {
    $version = trim((string) file_get_contents($vf));
    if ($version === 'broken') {
        throw new RuntimeException('this version does not boot');
    }
}
$bootedPid = getmypid();
$count = 0;
mt_rand(); // the generator is seeded now, in the template when in CoW mode
$started = 0;
askr_on_worker_start(static function () use (&$started): void {
    $started++;
});

$handler = static function (array $request) use (&$count, &$started, $version): void {
    $count++;
    $path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
    if (str_starts_with($path, '/dump') || isset($_GET['dump'])) {
        $path = '/dump';
    }
    switch ($path) {
        case '/dump':
            header('Content-Type: application/json');
            echo json_encode([
                'server' => $_SERVER, 'get' => $_GET, 'post' => $_POST, 'cookie' => $_COOKIE,
                'request' => $_REQUEST, 'files' => $_FILES, 'input' => file_get_contents('php://input'),
                'stdin' => file_get_contents('php://stdin'), 'askr' => $request, 'count' => $count,
                'pid' => getmypid(), 'headers_sent' => headers_sent(), 'cwd' => getcwd(),
            ]);
            return;
        case '/headers':
            header('X-One: 1');
            header('X-Multi: a');
            header('X-Multi: b', false);
            header('X-Gone: x');
            header_remove('X-Gone');
            setcookie('c1', 'v1');
            setcookie('c2', 'v 2', ['path' => '/p', 'httponly' => true]);
            http_response_code(201);
            echo 'headers';
            return;
        case '/leak':
            // anything set here must not appear in the next request
            header('X-Leak: yes');
            http_response_code(418);
            $_GET['leak'] = 1;
            echo 'leak';
            return;
        case '/redirect':
            header('Location: /elsewhere');
            return;
        case '/status-line':
            header('HTTP/1.1 404 Not Found');
            echo 'nope';
            return;
        case '/throw':
            echo 'partial';
            throw new RuntimeException('thrown on purpose');
        case '/exit':
            echo 'before exit';
            exit();
        case '/fatal':
            echo 'before fatal';
            ini_set('memory_limit', '16M');
            $waste = str_repeat('x', 64 << 20); // "Allowed memory size exhausted": a real fatal error
            return;
        case '/warning':
            echo 'warned' . $undefinedOnPurpose; // "PHP Warning:  Undefined variable": the request goes on
            return;
        case '/undefined':
            undefined_function_on_purpose(); // an Error exception: 500, the worker lives on
            return;
        case '/sleep':
            if (isset($_GET['mark'])) {
                touch($_GET['mark']); // lets a test see that the request is running
            }
            usleep((int) (1e6 * (float) ($_GET['s'] ?? 10)));
            echo 'slept';
            return;
        case '/log':
            file_put_contents('php://stdout', "to stdout from worker\n");
            file_put_contents('php://stderr', "to stderr from worker\n");
            error_log('error_log from worker');
            echo 'logged';
            return;
        case '/session':
            session_start();
            $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
            header('Content-Type: application/json');
            echo json_encode(['n' => $_SESSION['n'], 'id' => session_id(), 'pid' => getmypid()]);
            return;
        case '/defer':
            askr_defer(static function (): void {
                file_put_contents(sys_get_temp_dir() . '/askr-defer-' . ($_GET['tag'] ?? 'x'), 'deferred');
            });
            echo 'deferred';
            return;
        case '/ob':
            ob_start();
            echo 'inner buffer left open';
            return;
        case '/big':
            echo str_repeat('x', (int) ($_GET['n'] ?? 1000000));
            return;
        case '/burn':
            // spends CPU time, which is what max_execution_time counts on Linux
            if (isset($_GET['mark'])) {
                touch($_GET['mark']); // lets a test see that the loop is running
            }
            $until = microtime(true) + ((int) ($_GET['ms'] ?? 100)) / 1000;
            $x = 0;
            while (microtime(true) < $until) {
                $x++;
            }
            echo 'burnt';
            return;
        case '/defer-many':
            $ok = 0;
            for ($i = 0; $i < 300; $i++) {
                $ok += askr_defer(static function (): void {}) ? 1 : 0;
            }
            echo $ok;
            return;
        case '/longlog':
            file_put_contents('php://stderr', str_repeat('L', 200000) . "\nafter the long line\n");
            echo 'long';
            return;
        case '/orphan':
            // leaves a grandchild behind: it is re-parented to askrd, which must reap it
            exec('sh -c "sleep 0.3 >/dev/null 2>&1 &"');
            echo 'orphaned';
            return;
        case '/spawn':
            // starts a background process and leaves it running; answers its pid
            echo exec('sleep 300 > /dev/null 2>&1 & echo $!');
            return;
        case '/code':
            http_response_code((int) $_GET['c']);
            echo "body for a status that may have none\n";
            return;
        case '/hdr':
            header($_GET['h']);
            echo 'hdr';
            return;
        case '/noticeloop':
            for ($i = 0; $i < 1000; $i++) {
                error_log('the same line again');
            }
            error_log('a different line');
            echo 'looped';
            return;
        case '/rand':
            header('Content-Type: application/json');
            echo json_encode(['pid' => getmypid(), 'rand' => [mt_rand(), mt_rand(), mt_rand(), rand(), rand()]]);
            return;
        case '/started':
            header('Content-Type: application/json');
            echo json_encode(['pid' => getmypid(), 'started' => $started]);
            return;
        case '/version':
            echo $version;
            return;
        case '/pid':
            echo getmypid();
            return;
        case '/sse':
            // Server-sent events: each event carries the time it was flushed.
            header('Content-Type: text/event-stream');
            header('Cache-Control: no-cache');
            $useOb = ($_GET['via'] ?? '') === 'ob_flush';
            for ($i = 1; $i <= (int) ($_GET['n'] ?? 5); $i++) {
                echo 'data: ', $i, ' ', sprintf('%.6f', microtime(true)), "\n\n";
                $useOb ? ob_flush() : flush();
                usleep((int) ($_GET['gap_ms'] ?? 100) * 1000);
            }
            return;
        case '/abort':
            // Streams until the client leaves (bounded); says in a file what the app saw.
            $marker = (string) $_GET['marker'];
            ignore_user_abort(($_GET['ignore'] ?? '1') === '1');
            register_shutdown_function(static function () use ($marker): void {
                file_put_contents($marker, 'shutdown aborted=' . connection_aborted() . "\n", FILE_APPEND);
            });
            for ($i = 0; $i < 500; $i++) {
                echo str_repeat('x', 1024), "\n";
                flush();
                if (connection_aborted()) {
                    file_put_contents($marker, "noticed at $i\n", FILE_APPEND);
                    return;
                }
                usleep(20000);
            }
            file_put_contents($marker, "never noticed\n", FILE_APPEND);
            return;
        case '/input-sha1':
            // Reads php://input in pieces: never the whole body in memory.
            $in = fopen('php://input', 'rb');
            $h = hash_init('sha1');
            $n = 0;
            while (!feof($in)) {
                $chunk = fread($in, 1 << 20);
                $n += strlen($chunk);
                hash_update($h, $chunk);
            }
            header('Content-Type: application/json');
            echo json_encode(['sha1' => hash_final($h), 'length' => $n, 'peak' => memory_get_peak_usage()]);
            return;
        case '/uploads':
            // $_FILES as PHP gave it, and what the upload functions say of each file.
            $out = ['files' => $_FILES, 'post' => $_POST, 'checks' => []];
            array_walk_recursive($_FILES, static function ($v, $k) use (&$out): void {
                if ($k === 'tmp_name' && $v !== '') {
                    $out['checks'][] = ['tmp' => $v, 'is_uploaded_file' => is_uploaded_file($v),
                        'sha1' => sha1_file($v)];
                }
            });
            $out['not_uploaded'] = is_uploaded_file(__FILE__);
            if (isset($_GET['move']) && $out['checks'] !== []) {
                $dest = (string) $_GET['move'];
                $out['moved'] = move_uploaded_file($out['checks'][0]['tmp'], $dest);
                $out['moved_sha1'] = is_file($dest) ? sha1_file($dest) : '';
                $out['move_other'] = @move_uploaded_file(__FILE__, $dest . '.other');
            }
            header('Content-Type: application/json');
            echo json_encode($out);
            return;
        case '/reason':
            header('HTTP/1.1 404 Gone Fishing');
            echo 'custom reason';
            return;
        case '/flushed':
            echo 'early ';
            flush();
            $sent = headers_sent();
            header('X-Late: 1');
            echo $sent ? 'sent' : 'not sent';
            return;
        case '/ob-loop':
            // "close every buffer": askr's own, at level 1, cannot be removed (bounded here; an
            // unbounded loop would spin until request_timeout).
            echo 'kept ';
            $tries = 0;
            while (ob_get_level() > 0 && $tries < 5) {
                @ob_end_clean();
                $tries++;
            }
            echo 'level ', ob_get_level(), ' after ', $tries, ' tries';
            return;
        case '/defer-flush':
            // Output of askr_defer() callbacks has no client: it must not reach the next request.
            askr_defer(static function (): void {
                echo 'late output';
                flush();
                ob_flush();
            });
            echo 'main';
            return;
        case '/flush-first':
            flush(); // nothing output yet: the headers stay open, as in PHP
            header('X-After-Flush: 1');
            echo 'x';
            return;
        case '/ignore-abort':
            $was = ignore_user_abort();
            if (isset($_GET['set'])) {
                ignore_user_abort(true);
            }
            echo $was;
            return;
        case '/functions':
            echo json_encode(['fastcgi_finish_request' => function_exists('fastcgi_finish_request')]);
            return;
        case '/shutdown-fn':
            $marker = (string) $_GET['marker'];
            register_shutdown_function(static function () use ($marker): void {
                file_put_contents($marker, 'ran', FILE_APPEND);
            });
            echo 'registered';
            return;
        case '/inject':
            header("X-Injected: a\r\nSet-Cookie: evil=1");
            header("X-Injected-Lf: a\nX-Evil: 1");
            header('X-Fine: yes');
            echo 'after injection';
            return;
        case '/page':
            // A compressible HTML page of n list items (compress_test.go).
            for ($i = 0; $i < (int) ($_GET['n'] ?? 100); $i++) {
                echo '<li>item ', $i, ' of the page</li>', "\n";
            }
            return;
        case '/gzipped':
            // A body PHP compressed itself: askrd must pass it on as it is.
            header('Content-Type: text/plain');
            header('Content-Encoding: gzip');
            echo gzencode(str_repeat("already compressed by PHP\n", 200));
            return;
        default:
            echo 'worker ok';
    }
};

if (getenv('ASKR_TEST_NO_PARAM') === '1') {
    // A handler that declares no parameter: the runtime never reads a spooled body for it.
    $inner = $handler;
    $handler = static function () use ($inner): void {
        $inner(...func_get_args());
    };
}

askr_cow_ready();
while (askr_handle_request($handler)) {
}
