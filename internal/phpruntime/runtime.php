<?php
/*
 * askr PHP runtime. askrd prepends this file to every worker script (auto_prepend_file) running on
 * php-cgi. It speaks the worker channel (see internal/channel) on fd 0, which askrd connected to a
 * socket of this worker's own, and makes each request look to PHP code as it does under php-fpm.
 *
 * Frame: version (1 byte), type (1 byte), flags (uint16 BE), payload length (uint32 BE), payload.
 */

declare(strict_types=1);

namespace Askr {

final class Runtime
{
    public const PROTOCOL = 1;
    private const T_REQUEST = 1;
    private const T_STOP = 2;
    private const T_FORK = 3;
    private const T_PING = 4;
    private const T_ABORT = 5;
    private const T_HELLO = 16;
    private const T_HEAD = 17;
    private const T_BODY = 18;
    private const T_END = 19;
    private const T_READY = 20;
    private const T_PONG = 21;
    private const T_BYE = 22;
    private const FLAG_EXIT = 1;
    private const FLAG_FLUSH = 2;
    private const MAX_PAYLOAD = 16777216; // channel.MaxPayload
    private const MAX_DEFERRED = 256;
    /** Output beyond this much goes out while the request still runs, so PHP never holds all of a large response. */
    private const STREAM_AT = 1048576;
    private const FATAL = E_ERROR | E_PARSE | E_CORE_ERROR | E_COMPILE_ERROR | E_USER_ERROR | E_RECOVERABLE_ERROR;

    /** @var resource|null the worker channel */
    private static $ch = null;
    private static bool $hello = false;
    /** The process that said Hello on the channel: the only one that may say Bye on it (a child the app forks inherits it). */
    private static int $helloPid = 0;
    /** askr_handle_request() returned false (Stop, askrd gone, a bad frame): askrd expects this worker to end. */
    private static bool $stopped = false;
    private static bool $inRequest = false;
    /** @var array<string,string> the process environment: the base of every $_SERVER, as php-fpm with clear_env=no */
    private static array $env = [];
    private static int $obLevel = 0;
    private static string $pending = '';
    /** Whether this request's Head frame has gone out (its output outgrew STREAM_AT). */
    private static bool $headSent = false;
    /** @var list<callable> */
    private static array $deferred = [];
    private static int $timeLimit = 0;
    private static string $requestOrder = 'GP';
    private static string $defaultType = '';
    private static bool $exposePHP = false;
    /** Body of the current request for php://input: a string, or the path of the file askrd spooled it to. */
    public static string $input = '';
    /** The session id the request's cookie carried, and the Set-Cookie line PHP would repeat for it. */
    private static string $sessionResumed = '';
    private static string $sessionCookie = '';
    public static string $inputFile = '';
    /** The handler askr_handle_request() was last given, and whether it declares a parameter. */
    private static mixed $handler = null;
    private static bool $handlerTakesRequest = true;
    /** CoW mode: this process is the template until it forks; the fork token of a forked worker. */
    private static bool $template = false;
    private static string $token = '';
    /** CoW template: the pid of the askrd that started it, and the live workers it forked (pid => true). */
    private static int $askrd = 0;
    /** @var array<int,true> */
    private static array $children = [];
    /** @var resource|null a forked worker's own read end of its log FIFO (see becomeWorker()) */
    private static $logHold = null;
    /** Where a forked worker's own log lines go (a FIFO askrd reads), '' for stderr. */
    public static string $logPath = '';
    /** @var list<callable> askr_on_worker_start() hooks */
    private static array $onStart = [];
    private static bool $started = false;
    /** Whether the askr extension is loaded (is_uploaded_file(), flush(), connection_aborted()). */
    private static bool $ext = false;
    /** askrd said the client has gone; $abortApplied once connection_aborted() says so too. */
    private static bool $aborted = false;
    private static bool $abortApplied = false;
    /** The current request's End has gone: what askr_defer() callbacks output goes nowhere. */
    private static bool $responded = false;
    /** php.ini's ignore_user_abort, restored at every request as php-fpm does. */
    private static bool $ignoreAbort = false;
    /** post_max_size in bytes (PHP_INI_PERDIR: fixed for the worker's life); 0: no limit. */
    private static int $postMax = 0;
    /** askrd runs this worker with the state-bleed detector (ASKR_PARANOID=1, paranoid.php loaded). */
    public static bool $paranoid = false;

    public static function boot(): void
    {
        if (getenv('ASKR_WORKER') !== '1') {
            return; // not started by askrd: askr_handle_request() will say so
        }
        $ch = fopen('php://stdin', 'r+b'); // fd 0 is a connected socket: php-cgi leaves it alone
        if ($ch === false) {
            throw new \RuntimeException('askr: cannot open the worker channel on fd 0');
        }
        stream_set_write_buffer($ch, 0);
        // PHP treats the channel as a socket stream, so default_socket_timeout (60 s) would end an
        // idle wait; a worker waits as long as it takes.
        stream_set_timeout($ch, 31536000);
        self::$ch = $ch;
        self::$template = getenv('ASKR_COW') === '1';
        self::$env = getenv();
        unset(self::$env['ASKR_COW'], self::$env['ASKR_COW_SOCKET']);
        self::$timeLimit = (int) ini_get('max_execution_time');
        set_time_limit(0); // idle waits never count; each request restarts the limit
        self::$exposePHP = (bool) ini_get('expose_php');
        self::$ignoreAbort = (bool) ini_get('ignore_user_abort');
        self::$postMax = max(0, ini_parse_quantity((string) ini_get('post_max_size')));
        self::$requestOrder = strtoupper((string) (ini_get('request_order') ?: ini_get('variables_order')));
        $type = (string) ini_get('default_mimetype');
        $charset = (string) ini_get('default_charset');
        self::$defaultType = ($type !== '' && $charset !== '' && str_starts_with($type, 'text/'))
            ? $type . '; charset=' . $charset : $type;
        // Capture all output from here on. Output that reached the SAPI would make php-cgi send its
        // headers and headers_sent() true for the rest of the process. The handler is not removable,
        // so frameworks that close "all" output buffers (Symfony) leave it in place.
        ob_start([self::class, 'capture'], self::STREAM_AT, PHP_OUTPUT_HANDLER_CLEANABLE | PHP_OUTPUT_HANDLER_FLUSHABLE);
        self::$obLevel = ob_get_level();
        // php://input must return the request body, and php://stdin must never reach the channel.
        stream_wrapper_unregister('php');
        stream_wrapper_register('php', PhpStream::class);
        register_shutdown_function([self::class, 'onShutdown']);
        self::$ext = function_exists('askr_ext_request_begin');
        if (self::$ext) {
            askr_ext_on_flush([self::class, 'onFlush']);
        }
        if (getenv('ASKR_PARANOID') === '1') {
            // The detector is a file of its own, loaded only here: without it a worker pays nothing.
            if (is_file(__DIR__ . '/paranoid.php')) {
                require __DIR__ . '/paranoid.php';
                self::$paranoid = true;
            } else {
                self::log('paranoid: ' . __DIR__ . '/paranoid.php is missing; state is not watched');
            }
        }
    }

    /** The upload limits of this worker's PHP configuration, for askrd's multipart parser (Hello). */
    private static function limits(): string
    {
        return sprintf("\n%d\n%d\n%d\n%d", ini_get('file_uploads') ? 1 : 0, max(0, (int) ini_get('max_file_uploads')),
            max(0, ini_parse_quantity((string) ini_get('upload_max_filesize'))), self::$postMax);
    }

    /**
     * flush() (through the askr extension): what PHP has output so far goes to the client now, as
     * php-fpm sends it. Output still held by the app's own buffers stays there, as under php-fpm.
     */
    public static function onFlush(): void
    {
        if (!self::$inRequest || self::$responded) {
            return;
        }
        if (ob_get_level() === self::$obLevel) {
            ob_flush(); // through capture(), which sends
        } else {
            self::sendNow();
        }
        if (self::$aborted && !self::$abortApplied) {
            self::$abortApplied = true;
            askr_ext_abort(); // connection_aborted() is 1; without ignore_user_abort the script ends here
        }
    }

    /** Sends the head (once) and the output so far, and asks askrd to pass it on at once. */
    private static function sendNow(): void
    {
        if (self::$pending === '' && !self::$headSent) {
            return; // as PHP, which sends the headers with the first output, not at flush()
        }
        if (!self::$headSent) {
            self::write(self::head(false));
        }
        $out = self::$pending;
        self::$pending = '';
        if (strlen($out) > self::MAX_PAYLOAD) {
            self::sendBody($out);
            $out = '';
        }
        self::write(self::frame(self::T_BODY, self::FLAG_FLUSH, $out));
        self::checkAbort();
    }

    /** Notices an Abort frame askrd sent because the client went away while this response streamed. */
    private static function checkAbort(): void
    {
        if (self::$aborted) {
            return;
        }
        $r = [self::$ch];
        $w = $e = null;
        while (@stream_select($r, $w, $e, 0) > 0) {
            $frame = self::read();
            if ($frame === null || $frame[0] === self::T_ABORT) {
                self::$aborted = true;
                return;
            }
            self::log('unexpected frame type ' . $frame[0] . ' during a request; ignored');
            $r = [self::$ch];
        }
    }

    /**
     * Output handler: keeps what is flushed through it and sends nothing to the SAPI. Once a
     * request's output reaches STREAM_AT, the headers as they are then and the output go to askrd;
     * later header() calls no longer reach the client, as under php-fpm once output has gone out.
     */
    public static function capture(string $buffer, int $phase): string
    {
        if (($phase & PHP_OUTPUT_HANDLER_CLEAN) !== 0) {
            return '';
        }
        if (self::$responded) {
            return ''; // askr_defer() callbacks have no client to write to
        }
        self::$pending .= $buffer;
        if (self::$inRequest && ($phase & PHP_OUTPUT_HANDLER_FLUSH) !== 0) {
            self::sendNow(); // ob_flush()
            return '';
        }
        if (self::$inRequest && strlen(self::$pending) >= self::STREAM_AT) {
            if (!self::$headSent) {
                self::write(self::head(false));
            }
            $out = self::$pending;
            self::$pending = '';
            self::sendBody($out);
            self::checkAbort();
        }
        return '';
    }

    public static function handle(callable $handler): bool
    {
        if (self::$ch === null) {
            throw new \RuntimeException('askr_handle_request() works only in a worker started by askrd');
        }
        if (self::$inRequest) {
            throw new \LogicException('askr_handle_request() called from inside a request handler');
        }
        if (!self::$hello) {
            self::ready(); // a CoW template that was never told askr_cow_ready() forks here
            $boot = self::takeOutput();
            if ($boot !== '') {
                self::log('output while booting (discarded): ' . substr($boot, 0, 2000));
            }
            $hello = pack('NC', getmypid(), strlen(self::$token)) . self::$token . PHP_VERSION . self::limits();
            self::write(self::frame(self::T_HELLO, 0, $hello));
            self::$hello = true;
            self::$helloPid = getmypid();
        }
        if (self::$paranoid) {
            try {
                Paranoid::check(); // after the worker's resets of the previous request, before the next
            } catch (\Throwable $e) { // e.g. the app's error handler turned a warning into an exception
                self::$paranoid = false;
                self::log(sprintf('the detector failed and is off in this worker: %s: %s at %s:%d', get_class($e),
                    $e->getMessage(), $e->getFile(), $e->getLine()), 'askr paranoid: ');
            }
        }
        $frame = self::read();
        while ($frame !== null && ($frame[0] === self::T_PING || $frame[0] === self::T_ABORT)) {
            if ($frame[0] === self::T_PING) {
                self::write(self::frame(self::T_PONG, 0, '')); // askrd's health check: this loop is alive
            } // an Abort for the previous request, sent after its last flush: nothing to do
            $frame = self::read();
        }
        if ($frame === null || $frame[0] === self::T_STOP) {
            self::$stopped = true;
            self::$inRequest = false; // askrd gone in the middle of a Request frame: nobody to answer
            return false;
        }
        if ($frame[0] !== self::T_REQUEST) {
            self::log('unexpected frame type ' . $frame[0] . '; stopping');
            self::$stopped = true;
            return false;
        }
        // read() has marked the request this worker's: from here on, it is answered (500 and
        // End+exit if PHP dies), never handed back with Bye.
        $r = unserialize($frame[2], ['allowed_classes' => false]);
        if (!is_array($r)) {
            self::log('malformed request frame; stopping');
            self::$stopped = true;
            self::$inRequest = false; // askrd's bug: 502, as before
            return false;
        }
        try {
            $request = self::begin($r, self::takesRequest($handler));
        } catch (\Throwable $e) {
            // The app's error handler threw for a warning PHP gives while the superglobals are set
            // up (more than max_input_vars variables): as an uncaught exception in the handler.
            self::uncaught($e);
            self::finish(false);
            self::afterResponse();
            return true;
        }
        if (self::$paranoid) {
            Paranoid::serving($r['server']['REQUEST_METHOD'] ?? '', $r['server']['REQUEST_URI'] ?? '');
        }
        try {
            $handler($request);
        } catch (\Throwable $e) {
            self::uncaught($e);
        }
        self::finish(false);
        if (self::$paranoid) {
            Paranoid::served(); // the request's route, before the worker's resets forget it
        }
        self::afterResponse();
        return true;
    }

    /**
     * askr_cow_ready(): the app has booted. A CoW template forks its workers here and never returns;
     * each forked worker returns from here, as does a worker outside CoW mode. Either way the
     * askr_on_worker_start() hooks run, once per worker, before its first request.
     */
    public static function ready(): void
    {
        if (self::$template) {
            self::serveAsTemplate(); // returns only in a forked worker
        }
        if (!self::$started) {
            self::$started = true;
            foreach (self::$onStart as $fn) {
                $fn();
            }
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

    /** The CoW template's loop: fork a worker for each Fork frame askrd sends. */
    private static function serveAsTemplate(): void
    {
        $boot = self::takeOutput();
        if ($boot !== '') {
            self::log('output while booting (discarded): ' . substr($boot, 0, 2000));
        }
        // A child that collects garbage dirties pages it shares with the template: collect now.
        gc_collect_cycles();
        self::$askrd = posix_getppid();
        // SIGCHLD reaps at once. SIGTERM is the template's parent-death signal (askrd sets it when it
        // starts the template): askrd is gone, and its workers go with it.
        pcntl_signal(SIGCHLD, static function (): void {
            self::reap();
        }, false);
        pcntl_signal(SIGTERM, static function (): void {
            self::endTemplate();
        }, false);
        pcntl_async_signals(true);
        self::write(self::frame(self::T_READY, 0, pack('N', getmypid())));
        while (true) {
            self::reap();
            if (posix_getppid() !== self::$askrd) {
                self::endTemplate(); // a parent-death signal that was missed
            }
            // Wait in select(), not in a read: a read of PHP's socket streams retries inside C when a
            // signal interrupts it, so the SIGCHLD handler would not run (and exited workers stay
            // zombies) until askrd's next frame. select() returns on the signal; at the latest after a
            // second, the loop reaps and checks its parent anyway.
            $r = [self::$ch];
            $w = $e = null;
            // A signal makes stream_select() warn ("Interrupted system call"), which is expected
            // here: '@' keeps it out of the log, but the app's error handler (set at boot, often one
            // that throws) would still see it and end the template. Ours takes it instead.
            set_error_handler(static fn (): bool => true);
            $ready = stream_select($r, $w, $e, 1);
            restore_error_handler();
            if ($ready !== 1) {
                continue;
            }
            $frame = self::read();
            if ($frame === null) {
                self::endTemplate(); // askrd is gone
            }
            if ($frame[0] === self::T_STOP) {
                exit(0); // askrd is done with this template; its workers go on until the pool stops them
            }
            if ($frame[0] !== self::T_FORK) {
                self::log('template: unexpected frame type ' . $frame[0]);
                continue;
            }
            [$token, $logPath] = explode("\n", $frame[2], 2) + [1 => ''];
            if (gc_status()['roots'] > 0) {
                gc_collect_cycles(); // before the fork, never in a child
            }
            // No handler may run between the fork and the child's entry in $children: one would
            // reap a child that exits at once before it is listed, leaving a stale pid to kill.
            pcntl_sigprocmask(SIG_BLOCK, [SIGCHLD, SIGTERM]);
            $pid = pcntl_fork();
            if ($pid === 0) {
                self::becomeWorker($token, $logPath);
                return;
            }
            if ($pid > 0) {
                self::$children[$pid] = true;
            }
            pcntl_sigprocmask(SIG_UNBLOCK, [SIGCHLD, SIGTERM]);
            if ($pid === -1) {
                self::log('template: fork failed: ' . pcntl_strerror(pcntl_get_last_error()));
            }
        }
    }

    /** CoW template: waits for every worker that has exited, so none stays a zombie. */
    private static function reap(): void
    {
        while (($pid = pcntl_waitpid(-1, $status, WNOHANG)) > 0) {
            unset(self::$children[$pid]);
        }
    }

    /**
     * CoW template whose askrd is gone (its channel ended, its parent-death signal came, or it has
     * another parent now): the workers it forked cannot serve anyone, so they go first. A worker
     * spinning in a loop would never notice by itself.
     */
    private static function endTemplate(): never
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
    private static function becomeWorker(string $token, string $logPath): void
    {
        pcntl_async_signals(false);
        pcntl_signal(SIGCHLD, SIG_DFL);
        pcntl_signal(SIGTERM, SIG_DFL);
        pcntl_sigprocmask(SIG_UNBLOCK, [SIGCHLD, SIGTERM]); // blocked for the fork; the app's exec()s inherit the mask
        self::$template = false;
        self::$children = [];
        self::$token = $token;
        if (self::$ext && function_exists('askr_ext_die_with')) {
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
            self::$logPath = $logPath;
            ini_set('error_log', $logPath);
        }
        $socket = (string) getenv('ASKR_COW_SOCKET');
        $ch = stream_socket_client('unix://' . $socket, $errno, $errstr, 10);
        if ($ch === false) {
            self::log("worker: cannot connect to askrd at $socket: $errstr");
            exit(1);
        }
        stream_set_write_buffer($ch, 0);
        stream_set_timeout($ch, 31536000);
        fclose(self::$ch); // this process's copy of the template's channel
        self::$ch = $ch;
        // Children inherit the template's generator state: without this every worker would draw
        // the same "random" numbers.
        mt_srand();
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

    /**
     * Sets up the superglobals for one request and returns the array the original askr passes. Its
     * 'body' is the whole body, read from askrd's spool file if it was larger than body_buffer_size,
     * but only for a handler that takes the array ($withBody): one that declares no parameter never
     * pays for a large body it does not read (php://input streams it; func_get_args() sees '').
     */
    private static function begin(array $r, bool $withBody): array
    {
        /** @var array<string,string> $cgi */
        $cgi = $r['server'];
        $_SERVER = $cgi + self::$env;
        $_GET = [];
        if ($cgi['QUERY_STRING'] !== '') {
            parse_str($cgi['QUERY_STRING'], $_GET);
        }
        $_COOKIE = isset($cgi['HTTP_COOKIE']) ? self::cookies($cgi['HTTP_COOKIE']) : [];
        if (session_status() === PHP_SESSION_NONE) {
            // The session module takes the id from $_COOKIE only while it holds none; after the first
            // request it always holds one (userland cannot reset it to "none"), so hand it the
            // cookie's id, or '' for a new session.
            $sid = ini_get('session.use_cookies') ? ($_COOKIE[session_name()] ?? '') : '';
            $sid = is_string($sid) ? $sid : '';
            session_id($sid);
            self::$sessionResumed = $sid;
            self::$sessionCookie = $sid !== '' ? 'Set-Cookie: ' . session_name() . '=' . $sid : '';
        }
        $_POST = [];
        $_FILES = [];
        self::$input = $r['body'];
        self::$inputFile = $r['body_file'];
        $body = null; // the spooled body, once read
        $post = [];
        $files = [];
        $postMax = self::$postMax;
        if ($cgi['REQUEST_METHOD'] === 'POST' && $postMax > 0 && (int) ($cgi['CONTENT_LENGTH'] ?? 0) > $postMax) {
            // As PHP: a POST body over post_max_size fills neither $_POST nor $_FILES.
            self::log(sprintf('PHP Warning:  PHP Request Startup: POST Content-Length of %d bytes exceeds the limit of %d bytes in Unknown on line 0',
                (int) $cgi['CONTENT_LENGTH'], $postMax));
        } elseif ($cgi['REQUEST_METHOD'] === 'POST') {
            $type = strtolower(strtok($cgi['CONTENT_TYPE'] ?? '', ';') ?: '');
            if (trim($type) === 'application/x-www-form-urlencoded') {
                if (self::$inputFile !== '') {
                    $body = (string) file_get_contents(self::$inputFile);
                }
                parse_str($body ?? self::$input, $_POST);
            } elseif ($r['post'] !== [] || $r['files'] !== []) {
                $pairs = [];
                foreach ($r['post'] as [$name, $value]) {
                    $pairs[] = urlencode($name) . '=' . urlencode($value);
                    $post[$name] = $value;
                }
                parse_str(implode('&', $pairs), $_POST);
                foreach ($r['files'] as [$field, $name, $type, $tmp, $size, $error, $fullPath]) {
                    $files[] = ['field' => $field, 'name' => $name, 'type' => $type,
                        'tmp_name' => $tmp, 'size' => $size, 'error' => $error, 'full_path' => $fullPath];
                }
                $_FILES = self::filesGlobal($files);
            }
        }
        if (self::$ext) {
            // is_uploaded_file() and move_uploaded_file() accept this request's uploads, and only
            // them; connection_aborted() starts at 0.
            $tmp = [];
            foreach ($files as $f) {
                if ($f['tmp_name'] !== '') {
                    $tmp[] = $f['tmp_name'];
                }
            }
            askr_ext_request_begin($tmp);
        }
        self::$aborted = self::$abortApplied = self::$responded = false;
        ignore_user_abort(self::$ignoreAbort);
        $_REQUEST = [];
        foreach (str_split(self::$requestOrder) as $c) {
            match ($c) {
                'G' => self::merge($_REQUEST, $_GET),
                'P' => self::merge($_REQUEST, $_POST),
                'C' => self::merge($_REQUEST, $_COOKIE),
                default => null,
            };
        }
        header_remove();
        http_response_code(200);
        if (self::$exposePHP) {
            header('X-Powered-By: PHP/' . PHP_VERSION); // as PHP adds it at every request start
        }
        error_clear_last();
        self::$deferred = [];
        self::$inRequest = true;
        if (self::$timeLimit > 0) {
            set_time_limit(self::$timeLimit);
        }
        return [
            'method' => $cgi['REQUEST_METHOD'],
            'uri' => $cgi['REQUEST_URI'],
            'query' => $cgi['QUERY_STRING'],
            'headers' => $cgi,
            'body' => $withBody && self::$inputFile !== '' ? ($body ?? (string) file_get_contents(self::$inputFile)) : $r['body'],
            'post' => $post,
            'files' => $files,
        ];
    }

    /**
     * Parses a Cookie header by PHP's rules: ";" separates, values are rawurldecoded, names are not;
     * a plain name keeps its first value, array names (a[b], a[]) are registered in order.
     */
    private static function cookies(string $header): array
    {
        $out = [];
        $arrays = [];
        foreach (explode(';', $header) as $pair) {
            $pair = ltrim($pair, " \t\n\r\v\f");
            $eq = strpos($pair, '=');
            $name = $eq === false ? $pair : substr($pair, 0, $eq);
            if ($name === '') {
                continue;
            }
            $value = $eq === false ? '' : rawurldecode(substr($pair, $eq + 1));
            if (strpbrk($name, " .[\0") === false) {
                $out[$name] ??= $value;
                continue;
            }
            // Let PHP's own variable-name rules (a[b], dots and spaces to "_") place it.
            $piece = strtr($name, ['%' => '%25', '+' => '%2B', '&' => '%26']) . '=' . rawurlencode($value);
            if (!str_contains($name, '[')) {
                $one = [];
                parse_str($piece, $one);
                foreach ($one as $k => $v) {
                    $out[$k] ??= $v;
                }
                continue;
            }
            $arrays[] = $piece;
        }
        if ($arrays !== []) {
            $parsed = [];
            parse_str(implode('&', $arrays), $parsed);
            foreach ($parsed as $k => $v) {
                $out[$k] = $v; // an array replaces a plain value of the same name, as in PHP
            }
        }
        return $out;
    }

    /** Builds $_FILES as PHP's rfc1867 code does, including nested names such as f[a][]. */
    private static function filesGlobal(array $files): array
    {
        $out = [];
        foreach ($files as $f) {
            $field = $f['field'];
            $path = [];
            $p = strpos($field, '[');
            if ($p !== false && $p > 0 && preg_match_all('/\[([^\]]*)\]/A', substr($field, $p), $m) > 0
                && implode('', $m[0]) === substr($field, $p)) {
                $path = $m[1];
                $field = substr($field, 0, $p);
            }
            $field = strtr(ltrim($field, ' '), ' .', '__');
            $values = ['name' => $f['name'], 'full_path' => $f['full_path'] ?? $f['name'], 'type' => $f['type'],
                'tmp_name' => $f['tmp_name'], 'error' => $f['error'], 'size' => $f['size']];
            if ($path === []) {
                $out[$field] = $values;
                continue;
            }
            foreach ($values as $key => $value) {
                $ref = &$out[$field][$key];
                foreach ($path as $seg) {
                    if ($seg === '') {
                        $ref[] = null;
                        $ref = &$ref[array_key_last($ref)];
                    } else {
                        $ref = &$ref[$seg];
                    }
                }
                $ref = $value;
                unset($ref);
            }
        }
        return $out;
    }

    /** Merges as PHP builds $_REQUEST: later sources win, arrays under the same key merge. */
    private static function merge(array &$dst, array $src): void
    {
        foreach ($src as $k => $v) {
            if (is_array($v) && isset($dst[$k]) && is_array($dst[$k])) {
                self::merge($dst[$k], $v);
            } else {
                $dst[$k] = $v;
            }
        }
    }

    private static function uncaught(\Throwable $e): void
    {
        http_response_code(500);
        self::log('PHP Fatal error:  Uncaught ' . $e);
    }

    /** Returns and clears all output of the current request, ending buffers the app left open. */
    private static function takeOutput(): string
    {
        while (ob_get_level() > self::$obLevel && @ob_end_flush()) {
        }
        $out = self::$pending;
        self::$pending = '';
        if (ob_get_level() === self::$obLevel) { // gone only after a fatal error, which discards output
            $out .= ob_get_contents();
            ob_clean();
        }
        return $out;
    }

    /** Sends the rest of the current request's response: Head (unless streamed), Body frames, End. */
    private static function finish(bool $exiting, bool $fatal = false): void
    {
        if (session_status() === PHP_SESSION_ACTIVE) {
            session_write_close(); // before the response leaves: the client's next request may read it
        }
        $body = self::takeOutput();
        $head = self::$headSent ? '' : self::head($fatal);
        $end = self::frame(self::T_END, $exiting ? self::FLAG_EXIT : 0,
            pack('JJ', memory_get_usage(), memory_get_peak_usage()));
        if (strlen($body) <= 65536) {
            self::write($head . ($body === '' ? '' : self::frame(self::T_BODY, 0, $body)) . $end);
        } else {
            self::write($head);
            self::sendBody($body);
            self::write($end);
        }
        self::$headSent = false;
        self::$responded = true;
        self::resetHeaders();
    }

    /**
     * Forgets the response's headers and status for the next request. Headers are sent to php-cgi
     * only when output escaped the capture buffer (PHP printed a fatal error with display_errors on
     * after running out of memory): then there is nothing left to reset, and header_remove() would
     * only add a warning to the log.
     */
    private static function resetHeaders(): void
    {
        if (!headers_sent()) {
            header_remove();
            http_response_code(200);
        }
    }

    /**
     * The process ends: php-cgi prints the headers it still has to stdout as the script ends
     * (Content-type from default_mimetype; "Status: 500" after a fatal error). With none left it
     * prints nothing, so an exit() or a fatal error is one event in askrd's log, not two.
     */
    private static function quietExit(): void
    {
        self::resetHeaders();
        ini_set('default_mimetype', '');
    }

    /** Returns the Head frame for the response as PHP has shaped it so far, and marks it sent. */
    private static function head(bool $fatal): string
    {
        self::$headSent = true;
        $status = $fatal ? 500 : http_response_code();
        if (!is_int($status) || $status < 100 || $status > 999) {
            $status = 200;
        }
        $headers = headers_list();
        // Given the id explicitly (see begin()), the session module sends its cookie again on every
        // request; php-fpm sends it only when the id is new. Drop the repeat.
        $repeat = self::$sessionCookie !== '' && session_id() === self::$sessionResumed ? self::$sessionCookie : '';
        $typed = self::$defaultType === '';
        foreach ($headers as $i => $h) {
            if (!$typed && strncasecmp($h, 'content-type:', 13) === 0) {
                $typed = true;
            } elseif ($repeat !== '' && ($h === $repeat || str_starts_with($h, $repeat . ';'))) {
                unset($headers[$i]);
            }
        }
        if (!$typed) {
            $headers[] = 'Content-Type: ' . self::$defaultType;
        }
        return self::frame(self::T_HEAD, 0, pack('n', $status) . implode("\n", $headers));
    }

    /** Sends $body as Body frames without copying it whole. */
    private static function sendBody(string $body): void
    {
        $n = strlen($body);
        if ($n <= self::MAX_PAYLOAD) {
            self::write(pack('CCnN', self::PROTOCOL, self::T_BODY, 0, $n));
            self::write($body);
            return;
        }
        for ($off = 0; $off < $n; $off += self::MAX_PAYLOAD) {
            $chunk = substr($body, $off, self::MAX_PAYLOAD);
            self::write(pack('CCnN', self::PROTOCOL, self::T_BODY, 0, strlen($chunk)));
            self::write($chunk);
        }
    }

    private static function afterResponse(): void
    {
        // The session module keeps the last id: forget it, so a request without the cookie never
        // resumes another request's session.
        if (session_status() === PHP_SESSION_NONE && session_id() !== '') {
            session_id('');
        }
        $_SESSION = [];
        foreach (self::$deferred as $fn) {
            try {
                $fn();
            } catch (\Throwable $e) {
                self::log('askr_defer callback failed: ' . $e);
            }
        }
        self::$deferred = [];
        self::takeOutput(); // deferred work has no client to write to
        self::$input = '';
        self::$inputFile = '';
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
        if (self::$helloPid !== 0 && getmypid() !== self::$helloPid) {
            // A child the app forked (pcntl_fork()) ends: the channel is its parent's, which goes on
            // serving on it. Not a frame from here.
            self::takeOutput();
            self::quietExit();
            return;
        }
        if (!self::$inRequest || self::$responded) { // between requests, or in askr_defer() callbacks
            self::takeOutput();
            self::quietExit();
            self::bye();
            return;
        }
        $err = error_get_last();
        $fatal = $err !== null && ($err['type'] & self::FATAL) !== 0;
        self::finish(true, $fatal); // after streaming, the status stands
        self::$inRequest = false;
        if (!$fatal) { // a fatal error is logged by PHP: that line is the event
            self::log('exit() during a request: this worker ends after its response and is replaced');
        }
        self::quietExit();
    }

    /**
     * The worker ends on its own between requests (a break or exit() in its loop, an uncaught
     * exception there, exit() in an askr_defer() callback): askrd may have written the next request
     * already, which this worker has not read. Bye says so, and askrd gives that request to another
     * worker. Not after askr_handle_request() returned false: then askrd knows, or is gone. Never
     * once a Request frame has been read (read() sets $inRequest): that request is this worker's.
     */
    private static function bye(): void
    {
        if (!self::$hello || self::$stopped || self::$ch === null) {
            return;
        }
        $err = error_get_last();
        if ($err === null || ($err['type'] & self::FATAL) === 0) { // a fatal error is logged by PHP: that line is the event
            self::log('the worker script ended between requests; no request is lost, askrd replaces this worker');
        }
        @fwrite(self::$ch, self::frame(self::T_BYE, 0, '')); // askrd may be gone: nothing to tell
    }

    private static function frame(int $type, int $flags, string $payload): string
    {
        return pack('CCnN', self::PROTOCOL, $type, $flags, strlen($payload)) . $payload;
    }

    private static function write(string $data): void
    {
        if ($data === '') {
            return;
        }
        $n = fwrite(self::$ch, $data);
        $len = strlen($data);
        while ($n !== false && $n > 0 && $n < $len) {
            $data = substr($data, $n);
            $len -= $n;
            $n = fwrite(self::$ch, $data);
        }
        if ($n === false || $n === 0) {
            throw new \RuntimeException('askr: worker channel closed');
        }
    }

    /** Reads exactly $n bytes from the channel, or returns null at its end. */
    private static function readN(int $n): ?string
    {
        $s = '';
        while (strlen($s) < $n) {
            $part = stream_get_contents(self::$ch, $n - strlen($s));
            if ($part !== false) {
                $s .= $part;
            }
            if (strlen($s) < $n && ($part === false || $part === '') && feof(self::$ch)) {
                return null;
            }
        }
        return $s;
    }

    /** @return array{int,int,string}|null */
    private static function read(): ?array
    {
        $h = self::readN(8);
        if ($h === null) {
            return null;
        }
        $u = unpack('Cv/Ct/nf/Nn', $h);
        if ($u['v'] !== self::PROTOCOL) {
            self::log('channel protocol ' . $u['v'] . ' from askrd, runtime speaks ' . self::PROTOCOL);
            return null;
        }
        if ($u['t'] === self::T_REQUEST && !self::$inRequest) {
            // From its first byte a request is this worker's: if the process dies from here on
            // (reading a payload past memory_limit, an exception or exit() while begin() sets it
            // up), lastShutdown answers it (End with the exit flag), and askrd never gives it to
            // another worker, which a Bye would.
            self::$inRequest = true;
            self::$responded = false;
        }
        $payload = '';
        if ($u['n'] > 0) {
            $payload = self::readN($u['n']);
            if ($payload === null) {
                return null;
            }
        }
        return [$u['t'], $u['f'], $payload];
    }

    public static function log(string $msg, string $prefix = 'askr: '): void
    {
        // A forked worker logs to its own FIFO (error_log); others straight to the SAPI logger,
        // i.e. php-cgi's stderr.
        error_log($prefix . $msg, self::$logPath !== '' ? 0 : 4);
    }
}

/**
 * The "php" stream wrapper while a worker runs: php://input is the current request's body and
 * php://stdin is empty (under php-fpm both come from the request; here fd 0 is the channel). Every
 * other php:// stream is opened by PHP's own wrapper and passed through.
 */
final class PhpStream
{
    /** @var resource|null */
    public $context;
    /** @var resource|null */
    private $h = null;
    private string $data = '';
    private int $pos = 0;

    public function stream_open(string $path, string $mode, int $options, ?string &$opened): bool
    {
        $what = strtolower(substr($path, 6));
        if ($what === 'input') {
            if (Runtime::$inputFile !== '') {
                $this->h = fopen(Runtime::$inputFile, 'rb') ?: null;
                return $this->h !== null;
            }
            $this->data = Runtime::$input;
            return true;
        }
        if ($what === 'stdin') {
            return true;
        }
        if (Runtime::$logPath !== '' && ($what === 'stdout' || $what === 'stderr')) {
            // a forked worker shares the template's stdout and stderr; its own output goes to its log
            $this->h = fopen(Runtime::$logPath, 'ab') ?: null;
            return $this->h !== null;
        }
        stream_wrapper_restore('php');
        try {
            $h = $this->context !== null ? fopen($path, $mode, false, $this->context) : fopen($path, $mode);
        } finally {
            stream_wrapper_unregister('php');
            stream_wrapper_register('php', self::class);
        }
        if ($h === false) {
            return false;
        }
        $this->h = $h;
        return true;
    }

    public function stream_read(int $count): string|false
    {
        if ($this->h !== null) {
            return fread($this->h, $count);
        }
        $s = (string) substr($this->data, $this->pos, $count);
        $this->pos += strlen($s);
        return $s;
    }

    public function stream_write(string $data): int
    {
        return $this->h !== null ? (int) fwrite($this->h, $data) : 0;
    }

    public function stream_eof(): bool
    {
        return $this->h !== null ? feof($this->h) : $this->pos >= strlen($this->data);
    }

    public function stream_tell(): int
    {
        return $this->h !== null ? (int) ftell($this->h) : $this->pos;
    }

    public function stream_seek(int $offset, int $whence): bool
    {
        if ($this->h !== null) {
            return fseek($this->h, $offset, $whence) === 0;
        }
        $to = match ($whence) {
            SEEK_SET => $offset,
            SEEK_CUR => $this->pos + $offset,
            SEEK_END => strlen($this->data) + $offset,
            default => -1,
        };
        if ($to < 0) {
            return false;
        }
        $this->pos = $to;
        return true;
    }

    public function stream_flush(): bool
    {
        return $this->h === null || fflush($this->h);
    }

    public function stream_close(): void
    {
        if ($this->h !== null) {
            fclose($this->h);
            $this->h = null;
        }
    }

    public function stream_stat(): array|false
    {
        return $this->h !== null ? fstat($this->h) : ['size' => strlen($this->data)];
    }

    public function url_stat(string $path, int $flags): array|false
    {
        return false;
    }

    public function stream_truncate(int $size): bool
    {
        return $this->h !== null && ftruncate($this->h, $size);
    }

    public function stream_lock(int $operation): bool
    {
        return $this->h !== null && flock($this->h, $operation);
    }

    public function stream_set_option(int $option, int $arg1, ?int $arg2): bool
    {
        return false;
    }

    /** @return resource|false */
    public function stream_cast(int $as)
    {
        return $this->h ?? false;
    }
}

} // namespace Askr

namespace {

/**
 * Blocks for the next request, runs $handler($request) with superglobals, headers and output set up
 * as under php-fpm, sends the response, then runs askr_defer() callbacks. Returns false when askrd
 * asks the worker to stop (drain, max-requests): leave the loop and let the script end.
 */
function askr_handle_request(callable $handler): bool
{
    return \Askr\Runtime::handle($handler);
}

/** Queues $fn to run after the response has been sent (up to 256 per request). */
function askr_defer(callable $fn): bool
{
    return \Askr\Runtime::defer($fn);
}

/**
 * Call once the app has booted. In CoW mode the template forks its workers here and never returns;
 * each worker returns from it. Outside CoW mode it only runs the askr_on_worker_start() hooks.
 */
function askr_cow_ready(): void
{
    \Askr\Runtime::ready();
}

/**
 * Registers $fn to run in each worker before its first request: in CoW mode right after the fork
 * (drop connections the template opened while booting, e.g. DB::purge()), otherwise at
 * askr_cow_ready() or the first askr_handle_request().
 */
function askr_on_worker_start(callable $fn): void
{
    \Askr\Runtime::onWorkerStart($fn);
}

/**
 * Adds a kind of state to what the state-bleed detector (askrd serve --paranoid) watches: $probe
 * returns array<string, mixed>, each value fingerprinted as static properties are (numbers and
 * booleans by value, strings by length and a keyed hash, never their value, arrays by count,
 * objects by class and id), and a key whose value differs between two
 * requests is reported like the built-in kinds (a key first returned starts its own baseline).
 * Without --paranoid it does nothing, so a worker may call it always.
 */
function askr_paranoid_watch(string $kind, callable $probe): void
{
    if (\Askr\Runtime::$paranoid) {
        \Askr\Paranoid::watch($kind, $probe);
    }
}

/**
 * Names the route of the request being served, for the state-bleed detector (askrd serve
 * --paranoid): reports name it (after the method) instead of the path, and a route's first request
 * in a worker is its warm-up. Pass the framework's route, not the path: e.g. Symfony's `_route`
 * request attribute. Call it during the request, before the handler returns; the last call wins
 * ('' names none).
 * Without it the detector uses Laravel's matched route, or else the path with its numeric, UUID
 * and long hex segments collapsed. Without --paranoid it does nothing.
 */
function askr_paranoid_route(string $route): void
{
    if (\Askr\Runtime::$paranoid) {
        \Askr\Paranoid::route($route);
    }
}

\Askr\Runtime::boot();

}
