<?php
// Worker script for proofs_test.go: askr_defer() against the client's view, what runs after the
// worker loop, and a client abort seen without the askr extension.
declare(strict_types=1);

$handler = static function (): void {
    switch (parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH)) {
        case '/pid':
            echo getmypid();
            return;
        case '/defer-wait':
            // The callback says it started, then waits (at most 20 s) until the test creates "go",
            // which it does only once it has the whole response.
            $dir = (string) $_GET['dir'];
            askr_defer(static function () use ($dir): void {
                touch("$dir/started");
                $until = microtime(true) + 20;
                while (!file_exists("$dir/go") && microtime(true) < $until) {
                    usleep(5000);
                }
                file_put_contents("$dir/done", file_exists("$dir/go") ? 'after go' : 'timed out');
            });
            echo str_repeat('r', (int) $_GET['n']);
            return;
        case '/abort-ob':
            // Streams with ob_flush() (which sends without the extension too) for at most 6 s and
            // says in a file what connection_aborted() was at the end.
            $marker = (string) $_GET['marker'];
            ignore_user_abort(false);
            for ($i = 0; $i < 300; $i++) {
                echo str_repeat('x', 1024), "\n";
                ob_flush();
                if (connection_aborted()) {
                    break;
                }
                usleep(20000);
            }
            file_put_contents($marker, "finished at $i aborted=" . connection_aborted());
            return;
        default:
            echo 'proofs worker';
    }
};

askr_cow_ready();
while (askr_handle_request($handler)) {
}
// Reached only when askr_handle_request() returns false: askrd sent Stop.
if (($dir = getenv('ASKR_TEST_END_DIR')) !== false) {
    file_put_contents("$dir/ended-" . getmypid(), 'loop ended');
}
