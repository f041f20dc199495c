<?php
/*
 * askr runtime: a role process ([queue] worker, [scheduler] run). In CoW mode askrd forks a worker
 * from the template and sends it one Run frame instead of requests; the worker then runs the role's
 * script as php-cli would and exits with its status. Outside CoW mode askrd runs the script in
 * php-cli itself (ASKR_ROLE in the environment) and this class has nothing to do.
 */

declare(strict_types=1);

namespace Askr\Runtime;

final class Role
{
    /** 'queue' or 'scheduler' once a Run frame has been taken; '' in an HTTP worker or a template. */
    public static string $role = '';
    /** A Run frame has been taken (valid or not): the process ends without another frame. */
    public static bool $taken = false;
    /** @var resource|null where the role's output goes: fd 1, or a forked worker's log FIFO */
    private static $stdout = null;

    /**
     * askr_worker_role(): "http" in an HTTP worker or a template, the role in a role process (from
     * the Run frame, or ASKR_ROLE in php-cli), '' outside askrd.
     */
    public static function current(): string
    {
        if (self::$role !== '') {
            return self::$role;
        }
        if (Channel::isOpen()) {
            return 'http';
        }
        $env = getenv('ASKR_ROLE');
        return is_string($env) ? $env : '';
    }

    /**
     * Runs the script a Run frame names, as php-cli would, and exits with its status: exit(N)
     * keeps N, an uncaught exception exits 255 after it is logged (or given to the app's exception
     * handler), a script that returns exits 0. It never returns to the worker's loop, and writes no
     * frame on the channel again: askrd only watches the process exit.
     */
    public static function run(string $payload): never
    {
        self::$taken = true;
        $r = unserialize($payload, ['allowed_classes' => false]);
        $argv = is_array($r) && is_array($r['argv'] ?? null) && array_is_list($r['argv']) ? $r['argv'] : null;
        if (!is_array($r) || !in_array($r['role'] ?? null, ['queue', 'scheduler'], true)
            || !is_string($r['script'] ?? null) || !str_starts_with($r['script'], '/')
            || $argv === null || count(array_filter($argv, 'is_string')) !== count($argv)) {
            Log::line('malformed Run frame; exiting');
            exit(1);
        }
        self::$role = $r['role'];
        // A process group of its own, so that askrd's SIGTERM (and SIGKILL) reaches what the script
        // starts too (the commands schedule:run runs); without posix, askrd signals it alone.
        if (function_exists('posix_setpgid')) {
            @posix_setpgid(0, 0);
        }
        putenv('ASKR_ROLE=' . self::$role); // as php-cli's role processes have it
        $_ENV['ASKR_ROLE'] = self::$role;
        set_time_limit(0); // php-cli has no time limit
        self::streams();
        // Output goes to STDOUT as it is made: a layer above the runtime's capture buffer passes
        // every byte on (chunk size 1) and hands nothing down, so php-cgi never prints its CGI
        // headers. Not removable, as the capture buffer is not.
        ob_start(static function (string $buffer): string {
            if ($buffer !== '') {
                fwrite(self::$stdout, $buffer);
            }
            return '';
        }, 1, PHP_OUTPUT_HANDLER_CLEANABLE | PHP_OUTPUT_HANDLER_FLUSHABLE);
        $script = $r['script'];
        $argv = $argv === [] ? [$script] : $argv; // as execve()'s: $argv[0] names the script
        $GLOBALS['argv'] = $_SERVER['argv'] = $argv;
        $GLOBALS['argc'] = $_SERVER['argc'] = count($argv);
        $_SERVER['SCRIPT_FILENAME'] = $_SERVER['SCRIPT_NAME'] = $_SERVER['PHP_SELF'] = $_SERVER['PATH_TRANSLATED'] = $script;
        $_SERVER['DOCUMENT_ROOT'] = '';
        $_SERVER['REQUEST_TIME_FLOAT'] = microtime(true);
        $_SERVER['REQUEST_TIME'] = (int) $_SERVER['REQUEST_TIME_FLOAT'];
        try {
            // A function scope: the script reaches the worker script's variables (the booted app)
            // through $GLOBALS. Only $argv and $argc are its own, as at php-cli's top level.
            $run = \Closure::bind(static function (array $argv, int $argc): void {
                require func_get_arg(2);
            }, null, null);
            $run($argv, count($argv), $script);
        } catch (\Throwable $e) {
            self::uncaught($e);
            exit(255);
        }
        exit(0);
    }

    /**
     * php-cli's STDIN, STDOUT and STDERR, which php-cgi does not define: STDIN reads nothing (fd 0
     * is the channel, or in a forked worker the template's), STDOUT and STDERR reach askrd's log
     * (fds 1 and 2, or a forked worker's own log FIFO, as php://stdout and php://stderr do).
     */
    private static function streams(): void
    {
        self::$stdout = Log::$path !== '' ? fopen(Log::$path, 'ab') : PhpStream::native('php://stdout', 'wb');
        $stderr = Log::$path !== '' ? fopen(Log::$path, 'ab') : PhpStream::native('php://stderr', 'wb');
        if (self::$stdout === false || $stderr === false) {
            Log::line('role process: cannot open its stdout or stderr; exiting');
            exit(1);
        }
        defined('STDIN') || define('STDIN', fopen('/dev/null', 'rb'));
        defined('STDOUT') || define('STDOUT', self::$stdout);
        defined('STDERR') || define('STDERR', $stderr);
    }

    /** An uncaught exception: to the app's exception handler if it set one, else logged as php-cli does. */
    private static function uncaught(\Throwable $e): void
    {
        $handler = set_exception_handler(null);
        if ($handler !== null) {
            try {
                $handler($e);
                return;
            } catch (\Throwable $e) {
                // logged below, as PHP does when the handler throws
            }
        }
        Log::line('PHP Fatal error:  Uncaught ' . $e . "\n  thrown in " . $e->getFile() . ' on line ' . $e->getLine(), '');
    }
}
