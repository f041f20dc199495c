<?php
/*
 * askr runtime: CoW template mode. The template boots the app once, then forks a worker for each
 * Fork frame askrd sends (askr_cow_ready()); each forked worker connects a channel of its own and
 * returns to the app as a worker. The template reaps its workers and takes them with it when
 * askrd is gone. A refork makes a worker the next template where it is (promote()).
 */

declare(strict_types=1);

namespace Askr\Runtime;

final class Template
{
    /** The pid of the askrd that started the template. */
    private static int $askrd = 0;
    /** The template's parent besides askrd (a promoted worker's: the template it was forked from). */
    private static int $parent = 0;
    /** @var array<int,true> the live workers it forked (pid => true) */
    private static array $children = [];
    /** @var resource|null a forked worker's own read end of its log FIFO (see becomeWorker()) */
    private static $logHold = null;

    /** The template's loop: returns only in a forked worker, with the token it says hello with. */
    public static function serve(): string
    {
        $boot = Output::take();
        if ($boot !== '') {
            Log::line('output while booting (discarded): ' . substr($boot, 0, 2000));
        }
        ForkSafety::check(); // [worker] fork_safety: before the template's own signal handlers
        // A child that collects garbage dirties pages it shares with the template: collect now.
        gc_collect_cycles();
        self::$askrd = self::$parent = posix_getppid();
        self::handleSignals();
        Channel::send(Channel::T_READY, 0, pack('N', getmypid()));
        return self::loop();
    }

    /**
     * Refork: a worker askrd promoted becomes a template where it is, on its own channel. Its
     * parent is the template it was forked from, then askrd (its subreaper) once that has exited.
     * Returns, as serve() does, only in a forked worker, with its token.
     */
    public static function promote(): string
    {
        ForkSafety::check(true); // what its hooks and requests left open; its signal handlers and alarm are undone
        gc_collect_cycles(); // the garbage of the requests it served, before any child shares it
        self::$parent = posix_getppid();
        self::handleSignals();
        Channel::send(Channel::T_READY, 0, pack('N', getmypid()));
        return self::loop();
    }

    /**
     * SIGCHLD reaps at once. SIGTERM is the template's parent-death signal (askrd sets it when it
     * starts the template): askrd is gone, and its workers go with it.
     */
    private static function handleSignals(): void
    {
        pcntl_signal(SIGCHLD, static function (): void {
            self::reap();
        }, false);
        pcntl_signal(SIGTERM, static function (): void {
            self::end();
        }, false);
        pcntl_async_signals(true);
    }

    /** The template's loop, after Ready: Fork frames until Stop. Returns only in a forked worker. */
    private static function loop(): string
    {
        while (true) {
            self::reap();
            $ppid = posix_getppid();
            if ($ppid !== self::$askrd && $ppid !== self::$parent) {
                self::end(); // a parent-death signal that was missed
            }
            if (!self::wait()) {
                continue;
            }
            $frame = Channel::read();
            if ($frame === null) {
                self::end(); // askrd is gone
            }
            if ($frame[0] === Channel::T_STOP) {
                exit(0); // askrd is done with this template; its workers go on until the pool stops them
            }
            if ($frame[0] !== Channel::T_FORK) {
                Log::line('template: unexpected frame type ' . $frame[0]);
                continue;
            }
            [$token, $logPath] = explode("\n", $frame[2], 2) + [1 => ''];
            if (self::fork()) {
                self::becomeWorker($logPath);
                return $token;
            }
        }
    }

    /**
     * Waits up to a second for a frame. In select(), not in a read: a read of PHP's socket streams
     * retries inside C when a signal interrupts it, so the SIGCHLD handler would not run (and
     * exited workers stay zombies) until askrd's next frame. select() returns on the signal.
     */
    private static function wait(): bool
    {
        // A signal makes stream_select() warn ("Interrupted system call"), which is expected here:
        // '@' would keep it out of the log, but the app's error handler (set at boot, often one
        // that throws) would still see it and end the template. Ours takes it instead.
        set_error_handler(static fn (): bool => true);
        $ready = Channel::select(1);
        restore_error_handler();
        return $ready === 1;
    }

    /** Forks a worker; true in the child. */
    private static function fork(): bool
    {
        if (gc_status()['roots'] > 0) {
            gc_collect_cycles(); // before the fork, never in a child
        }
        // No handler may run between the fork and the child's entry in $children: one would reap a
        // child that exits at once before it is listed, leaving a stale pid to kill.
        pcntl_sigprocmask(SIG_BLOCK, [SIGCHLD, SIGTERM]);
        $pid = pcntl_fork();
        if ($pid === 0) {
            return true; // signals are unblocked in becomeWorker()
        }
        if ($pid > 0) {
            self::$children[$pid] = true;
        }
        pcntl_sigprocmask(SIG_UNBLOCK, [SIGCHLD, SIGTERM]);
        if ($pid === -1) {
            Log::line('template: fork failed: ' . pcntl_strerror(pcntl_get_last_error()));
        }
        return false;
    }

    /** Waits for every worker that has exited, so none stays a zombie. */
    private static function reap(): void
    {
        while (($pid = pcntl_waitpid(-1, $status, WNOHANG)) > 0) {
            unset(self::$children[$pid]);
        }
    }

    /**
     * askrd is gone (the channel ended, the parent-death signal came, or the template has another
     * parent now): the workers it forked cannot serve anyone, so they go first. A worker spinning
     * in a loop would never notice by itself.
     */
    private static function end(): never
    {
        pcntl_signal(SIGCHLD, SIG_DFL);
        foreach (array_keys(self::$children) as $pid) {
            posix_kill($pid, SIGKILL);
        }
        foreach (array_keys(self::$children) as $pid) {
            pcntl_waitpid($pid, $status);
        }
        exit(0);
    }

    /** In a freshly forked child: a channel of its own, a log of its own, a random sequence of its own. */
    private static function becomeWorker(string $logPath): void
    {
        pcntl_async_signals(false);
        pcntl_signal(SIGCHLD, SIG_DFL);
        pcntl_signal(SIGTERM, SIG_DFL);
        pcntl_sigprocmask(SIG_UNBLOCK, [SIGCHLD, SIGTERM]); // blocked for the fork; the app's exec()s inherit the mask
        self::$children = [];
        if (function_exists('askr_ext_request_begin') && function_exists('askr_ext_die_with')) {
            // The parent-death rule PHP code cannot set: killed when askrd dies, and when the
            // template dies unless the worker is then askrd's (its subreaper) to serve on.
            askr_ext_die_with(self::$askrd);
        }
        if ($logPath !== '') {
            // error_log() opens the FIFO for each line, and an open for writing blocks until the FIFO
            // has a reader: askrd, or once it is gone nobody. Holding a (never read) end of our own
            // makes those opens return at once whatever becomes of askrd.
            set_error_handler(static fn (): bool => true); // not the app's: it may throw
            self::$logHold = fopen($logPath, 'rn') ?: null;
            restore_error_handler();
            Log::$path = $logPath;
            ini_set('error_log', $logPath);
        }
        $socket = (string) getenv('ASKR_COW_SOCKET');
        $err = Channel::connect($socket);
        if ($err !== null) {
            Log::line("worker: cannot connect to askrd at $socket: $err");
            exit(1);
        }
        if (function_exists('askr_ext_stdin_null')) {
            askr_ext_stdin_null(); // fd 0 is still the template's channel: a command a job runs must not read it
        }
        // Children inherit the template's generator state: without this every worker would draw
        // the same "random" numbers.
        mt_srand();
    }
}
