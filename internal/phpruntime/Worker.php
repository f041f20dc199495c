<?php
/*
 * askr runtime: a worker's life. boot() (when the runtime is prepended), the worker's hello, its
 * loop of requests (askr_handle_request()), askr_defer() and askr_on_worker_start(), and its end:
 * a request it was in is answered, a worker that leaves between requests says Bye.
 */

declare(strict_types=1);

namespace Askr\Runtime;

final class Worker
{
    private const MAX_DEFERRED = 256;
    private const FATAL = E_ERROR | E_PARSE | E_CORE_ERROR | E_COMPILE_ERROR | E_USER_ERROR | E_RECOVERABLE_ERROR;

    /** The process that said Hello on the channel (0: none yet): the only one that may say Bye on it (a child the app forks inherits it). */
    private static int $helloPid = 0;
    /** askr_handle_request() returned false (Stop, askrd gone, a bad frame): askrd expects this worker to end. */
    private static bool $stopped = false;
    /** From the first byte of a Request frame to the end of its askr_defer() callbacks. */
    private static bool $inRequest = false;
    /** @var list<callable> */
    private static array $deferred = [];
    /** php.ini's max_execution_time: the limit of each request (idle waits never count). */
    private static int $timeLimit = 0;
    /** The handler askr_handle_request() was last given, and whether it declares a parameter. */
    private static mixed $handler = null;
    private static bool $handlerTakesRequest = true;
    /** CoW mode: this process is the template until it forks; the fork token of a forked worker. */
    private static bool $template = false;
    private static string $token = '';
    /** @var list<callable> askr_on_worker_start() hooks */
    private static array $onStart = [];
    private static bool $started = false;
    /** askrd runs this worker with the state-bleed detector (ASKR_PARANOID=1, paranoid.php loaded). */
    public static bool $paranoid = false;

    /** Runs as the runtime is prepended to the worker script. */
    public static function boot(): void
    {
        if (getenv('ASKR_WORKER') !== '1') {
            return; // not started by askrd: askr_handle_request() will say so
        }
        Channel::open(); // before PhpStream takes php:// over
        if (function_exists('askr_ext_stdin_null')) {
            askr_ext_stdin_null(); // the channel is read through its dup; a command the app runs gets /dev/null
        }
        self::$template = getenv('ASKR_COW') === '1';
        Request::boot();
        self::$timeLimit = (int) ini_get('max_execution_time');
        set_time_limit(0); // idle waits never count; each request restarts the limit
        Output::boot();
        // php://input must return the request body, and php://stdin must never reach the channel.
        PhpStream::install();
        register_shutdown_function([self::class, 'onShutdown']);
        if (getenv('ASKR_PARANOID') === '1') {
            // The detector is a file of its own, loaded only here: without it a worker pays nothing.
            if (is_file(__DIR__ . '/paranoid.php')) {
                require __DIR__ . '/paranoid.php';
                self::$paranoid = true;
            } else {
                Log::line('paranoid: ' . __DIR__ . '/paranoid.php is missing; state is not watched');
            }
        }
    }

    /** askr_handle_request(). */
    public static function handle(callable $handler): bool
    {
        if (Role::$role !== '') {
            throw new \LogicException('askr_handle_request() cannot be called in a ' . Role::$role
                . ' process: it runs its script once, as php-cli would, and serves no request');
        }
        if (self::$inRequest) {
            throw new \LogicException('askr_handle_request() called from inside a request handler');
        }
        if (self::$helloPid === 0) {
            if (!Channel::isOpen()) {
                throw new \RuntimeException('askr_handle_request() works only in a worker started by askrd');
            }
            self::hello(); // from here on the channel is open
        }
        if (self::$paranoid) {
            self::checkState();
        }
        $frame = self::next();
        if ($frame === null || $frame[0] === Channel::T_STOP) {
            self::stop(); // askrd gone, maybe in the middle of a Request frame: nobody to answer
            return false;
        }
        if ($frame[0] !== Channel::T_REQUEST) {
            Log::line('unexpected frame type ' . $frame[0] . '; stopping');
            self::$stopped = true;
            return false;
        }
        // next() has made the request this worker's: from here on, it is answered (500 and End+exit
        // if PHP dies), never handed back with Bye.
        $r = unserialize($frame[2], ['allowed_classes' => false]);
        if (!is_array($r)) {
            Log::line('malformed request frame; stopping');
            self::stop(); // askrd's bug: 502, as before
            return false;
        }
        self::run($r, $handler);
        return true;
    }

    /** The first askr_handle_request(): the app has booted; tell askrd (Hello). */
    private static function hello(): void
    {
        self::ready(); // a CoW template that was never told askr_cow_ready() forks here
        $boot = Output::take();
        if ($boot !== '') {
            Log::line('output while booting (discarded): ' . substr($boot, 0, 2000));
        }
        self::sendHello();
    }

    private static function sendHello(): void
    {
        $hello = pack('NC', getmypid(), strlen(self::$token)) . self::$token . PHP_VERSION . Request::limits();
        Channel::send(Channel::T_HELLO, 0, $hello);
        self::$helloPid = getmypid();
    }

    /**
     * Refork (a Promote frame): this idle worker becomes the next template. The
     * askr_on_worker_start() hooks run first, so that what it opened while serving (connections)
     * is dropped before it forks and no child inherits it. It then forks as a template does and
     * never returns; each forked child runs the hooks again, says hello with its token and goes
     * on with the loop this worker was in, which reads the child's first request.
     */
    private static function promote(): void
    {
        self::runStartHooks();
        self::$helloPid = 0; // the template says no Bye when it exits
        self::$token = Template::promote(); // returns only in a forked worker
        self::runStartHooks();
        self::sendHello();
    }

    /** The state-bleed detector: after the worker's resets of the previous request, before the next. */
    private static function checkState(): void
    {
        try {
            Paranoid::check();
        } catch (\Throwable $e) { // e.g. the app's error handler turned a warning into an exception
            self::$paranoid = false;
            Log::line(sprintf('the detector failed and is off in this worker: %s: %s at %s:%d', get_class($e),
                $e->getMessage(), $e->getFile(), $e->getLine()), 'askr paranoid: ');
        }
    }

    /**
     * The next frame for the loop, answering Pings on the way. From the header of a Request frame
     * on, the request is this worker's: if the process dies from here on (reading a payload past
     * memory_limit, an exception or exit() while Request::begin() sets it up), lastShutdown()
     * answers it (End with the exit flag), and askrd never gives it to another worker, which a Bye
     * would.
     *
     * @return array{int,int,string}|null
     */
    private static function next(): ?array
    {
        while (true) {
            $h = Channel::header();
            if ($h === null) {
                return null;
            }
            if ($h[0] === Channel::T_REQUEST) {
                self::$inRequest = true;
                Output::open();
            }
            $payload = Channel::payload($h[2]);
            if ($payload === null) {
                return null;
            }
            if ($h[0] === Channel::T_PING) {
                Channel::send(Channel::T_PONG); // askrd's health check: this loop is alive
            } elseif ($h[0] === Channel::T_PROMOTE) {
                self::promote(); // in a worker forked by this one: then read its first request
            } elseif ($h[0] === Channel::T_RUN) {
                Role::run($payload); // a [queue] or [scheduler] process from here on: never returns
            } elseif ($h[0] !== Channel::T_ABORT) { // an Abort for the previous request, sent after its last flush
                return [$h[0], $h[1], $payload];
            }
        }
    }

    /** askr_handle_request() returns false: askrd expects this worker to end. */
    private static function stop(): void
    {
        self::$stopped = true;
        self::$inRequest = false;
        Output::abandon();
    }

    /** Runs one request: superglobals, the handler, the response, then askr_defer() callbacks. */
    private static function run(array $r, callable $handler): void
    {
        try {
            $withBody = $handler === self::$handler ? self::$handlerTakesRequest : self::takesRequest($handler);
            $request = Request::begin($r, $withBody);
            Output::begin();
            error_clear_last();
            self::$deferred = [];
            if (self::$timeLimit > 0) {
                set_time_limit(self::$timeLimit);
            }
        } catch (\Throwable $e) {
            // The app's error handler threw for a warning PHP gives while the superglobals are set
            // up (more than max_input_vars variables): as an uncaught exception in the handler.
            self::uncaught($e);
            Output::finish(false);
            self::afterResponse();
            return;
        }
        if (self::$paranoid) {
            Paranoid::serving($r['server']['REQUEST_METHOD'] ?? '', $r['server']['REQUEST_URI'] ?? '');
        }
        try {
            $handler($request);
        } catch (\Throwable $e) {
            self::uncaught($e);
        }
        Output::finish(false);
        if (self::$paranoid) {
            Paranoid::served(); // the request's route, before the worker's resets forget it
        }
        self::afterResponse();
    }

    /**
     * askr_cow_ready(): the app has booted. A CoW template forks its workers here and never returns;
     * each forked worker returns from here, as does a worker outside CoW mode. Either way the
     * askr_on_worker_start() hooks run, once per worker, before its first request.
     */
    public static function ready(): void
    {
        if (self::$template) {
            self::$token = Template::serve(); // returns only in a forked worker
            self::$template = false;
        }
        if (!self::$started) {
            self::$started = true;
            self::runStartHooks();
        }
    }

    private static function runStartHooks(): void
    {
        foreach (self::$onStart as $fn) {
            $fn();
        }
    }

    public static function onWorkerStart(callable $fn): void
    {
        if (self::$started) {
            $fn(); // registered late: this worker has started already
            return;
        }
        self::$onStart[] = $fn;
    }

    public static function defer(callable $fn): bool
    {
        if (!self::$inRequest || count(self::$deferred) >= self::MAX_DEFERRED) {
            return false;
        }
        self::$deferred[] = $fn;
        return true;
    }

    /**
     * Whether $handler declares a parameter, i.e. may read $request['body']: asked of Reflection,
     * and kept while the same callable comes back. A closure written in the loop's condition is a
     * new object at every call and is asked again (about 0.1 µs here, against tens of µs a request).
     */
    private static function takesRequest(callable $handler): bool
    {
        if ($handler !== self::$handler) {
            self::$handler = $handler;
            // A method reached through __call()/__callStatic() reflects as taking nothing, yet is
            // given $request: count it as taking it.
            self::$handlerTakesRequest = (is_array($handler) && !method_exists($handler[0], $handler[1]))
                || (new \ReflectionFunction(\Closure::fromCallable($handler)))->getNumberOfParameters() > 0;
        }
        return self::$handlerTakesRequest;
    }

    private static function uncaught(\Throwable $e): void
    {
        http_response_code(500);
        Log::line('PHP Fatal error:  Uncaught ' . $e);
    }

    private static function afterResponse(): void
    {
        Session::forget();
        if (self::$deferred !== []) {
            foreach (self::$deferred as $fn) {
                try {
                    $fn();
                } catch (\Throwable $e) {
                    Log::line('askr_defer callback failed: ' . $e);
                }
            }
            self::$deferred = [];
            Output::take(); // deferred work has no client to write to
        }
        Request::end();
        if (self::$timeLimit > 0) {
            set_time_limit(0);
        }
        self::$inRequest = false;
    }

    public static function onShutdown(): void
    {
        // Run after the shutdown functions the app registers, as php-fpm would have sent their output too.
        register_shutdown_function([self::class, 'lastShutdown']);
    }

    public static function lastShutdown(): void
    {
        if (Role::$taken) {
            // A role process ends as php-cli would: no frame (askrd watches the process exit), and
            // no CGI headers from php-cgi on fd 1.
            Output::quietExit();
            return;
        }
        if (self::$helloPid !== 0 && getmypid() !== self::$helloPid) {
            // A child the app forked (pcntl_fork()) ends: the channel is its parent's, which goes on
            // serving on it. Not a frame from here.
            Output::take();
            Output::quietExit();
            return;
        }
        if (!Output::isOpen()) { // between requests, or in askr_defer() callbacks
            Output::take();
            Output::quietExit();
            self::bye();
            return;
        }
        $err = error_get_last();
        $fatal = $err !== null && ($err['type'] & self::FATAL) !== 0;
        Output::finish(true, $fatal); // after streaming, the status stands
        self::$inRequest = false;
        if (!$fatal) { // a fatal error is logged by PHP: that line is the event
            Log::line('exit() during a request: this worker ends after its response and is replaced');
        }
        Output::quietExit();
    }

    /**
     * The worker ends on its own between requests (a break or exit() in its loop, an uncaught
     * exception there, exit() in an askr_defer() callback): askrd may have written the next request
     * already, which this worker has not read. Bye says so, and askrd gives that request to another
     * worker. Not after askr_handle_request() returned false: then askrd knows, or is gone. Never
     * once a Request frame has been read (next() sets $inRequest): that request is this worker's.
     */
    private static function bye(): void
    {
        if (self::$helloPid === 0 || self::$stopped || !Channel::isOpen()) {
            return;
        }
        $err = error_get_last();
        if ($err === null || ($err['type'] & self::FATAL) === 0) { // a fatal error is logged by PHP: that line is the event
            Log::line('the worker script ended between requests; no request is lost, askrd replaces this worker');
        }
        Channel::tryWrite(Channel::frame(Channel::T_BYE, 0, '')); // askrd may be gone: nothing to tell
    }
}
