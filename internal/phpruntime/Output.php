<?php
/*
 * askr runtime: a request's response. All output PHP code produces goes through one output handler
 * of ours (capture()), never to the SAPI; with the headers and status PHP code set it leaves as
 * Head, Body and End frames: at the end of the request, or earlier when the app flushes or the
 * output grows past STREAM_AT. Also the client's abort while a response streams.
 */

declare(strict_types=1);

namespace Askr\Runtime;

final class Output
{
    /** Output beyond this much goes out while the request still runs, so PHP never holds all of a large response. */
    private const STREAM_AT = 1048576;
    /** What capture() does with output: keeps it (booting, no request taken), sends it to a request's client, drops it. */
    private const COLLECT = 0;
    private const OPEN = 1;
    private const DONE = 2;

    private static int $phase = self::COLLECT;
    /** The output buffer level of capture(): levels above it are the app's. */
    private static int $level = 0;
    /** Output captured and not sent yet. */
    private static string $pending = '';
    /** Whether this request's Head frame has gone out (its output was flushed or outgrew STREAM_AT). */
    private static bool $headSent = false;
    /** PHP's default Content-Type (default_mimetype with default_charset), '' for none. */
    private static string $defaultType = '';
    private static bool $exposePHP = false;
    /** php.ini's ignore_user_abort, restored at every request as php-fpm does. */
    private static bool $ignoreAbort = false;
    /** askrd said the client has gone; $abortApplied once connection_aborted() says so too. */
    private static bool $aborted = false;
    private static bool $abortApplied = false;

    /** Captures all output from here on. */
    public static function boot(): void
    {
        $type = (string) ini_get('default_mimetype');
        $charset = (string) ini_get('default_charset');
        self::$defaultType = ($type !== '' && $charset !== '' && str_starts_with($type, 'text/'))
            ? $type . '; charset=' . $charset : $type;
        self::$exposePHP = (bool) ini_get('expose_php');
        self::$ignoreAbort = (bool) ini_get('ignore_user_abort');
        // Output that reached the SAPI would make php-cgi send its headers and headers_sent() true
        // for the rest of the process. The handler is not removable, so frameworks that close
        // "all" output buffers (Symfony) leave it in place.
        ob_start([self::class, 'capture'], self::STREAM_AT, PHP_OUTPUT_HANDLER_CLEANABLE | PHP_OUTPUT_HANDLER_FLUSHABLE);
        self::$level = ob_get_level();
        if (function_exists('askr_ext_on_flush')) {
            askr_ext_on_flush([self::class, 'onFlush']);
        }
    }

    /**
     * A request has been taken: its output goes to its client from here on. What was output since
     * the last request's End (the worker script's loop body, a reset that warns) is no part of it:
     * it is dropped, with a line in the log, as output while booting is (a buffer the script opened
     * meanwhile is left alone: finish() ends it).
     */
    public static function open(): void
    {
        if (self::$phase === self::DONE && ob_get_level() === self::$level && ob_get_length() > 0) {
            $stray = (string) ob_get_contents();
            ob_clean(); // capture() drops it
            Log::line('output between requests (discarded): ' . substr($stray, 0, 2000));
        }
        self::$phase = self::OPEN;
    }

    /** The request taken was never run (askrd went away, a bad frame): keep output, as at boot. */
    public static function abandon(): void
    {
        if (self::$phase === self::OPEN) {
            self::$phase = self::COLLECT;
        }
    }

    /** Whether a request's response is open: taken, and its End not sent. */
    public static function isOpen(): bool
    {
        return self::$phase === self::OPEN;
    }

    /** Before the handler runs: the response starts as PHP starts every request's. */
    public static function begin(): void
    {
        self::$aborted = self::$abortApplied = false;
        ignore_user_abort(self::$ignoreAbort);
        header_remove();
        http_response_code(200);
        if (self::$exposePHP) {
            header('X-Powered-By: PHP/' . PHP_VERSION); // as PHP adds it at every request start
        }
    }

    /**
     * The output handler: keeps what is flushed through it and sends nothing to the SAPI. Once a
     * request's output reaches STREAM_AT, the headers as they are then and the output go to askrd;
     * later header() calls no longer reach the client, as under php-fpm once output has gone out.
     */
    public static function capture(string $buffer, int $phase): string
    {
        if (($phase & PHP_OUTPUT_HANDLER_CLEAN) !== 0 || self::$phase === self::DONE) {
            return ''; // cleaned; or askr_defer() callbacks, which have no client to write to
        }
        self::$pending .= $buffer;
        if (self::$phase !== self::OPEN) {
            return '';
        }
        if (($phase & PHP_OUTPUT_HANDLER_FLUSH) !== 0) {
            self::sendNow(); // ob_flush()
        } elseif (strlen(self::$pending) >= self::STREAM_AT) {
            if (!self::$headSent) {
                Channel::write(self::head(false));
            }
            $out = self::$pending;
            self::$pending = '';
            Channel::sendBody($out);
            self::checkAbort();
        }
        return '';
    }

    /**
     * flush() (through the askr extension): what PHP has output so far goes to the client now, as
     * php-fpm sends it. Output still held by the app's own buffers stays there, as under php-fpm.
     */
    public static function onFlush(): void
    {
        if (self::$phase !== self::OPEN) {
            return;
        }
        if (ob_get_level() === self::$level) {
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
            Channel::write(self::head(false));
        }
        $out = self::$pending;
        self::$pending = '';
        if (strlen($out) > Channel::MAX_PAYLOAD) {
            Channel::sendBody($out);
            $out = '';
        }
        Channel::send(Channel::T_BODY, Channel::FLAG_FLUSH, $out);
        self::checkAbort();
    }

    /** Notices an Abort frame askrd sent because the client went away while this response streamed. */
    private static function checkAbort(): void
    {
        if (self::$aborted) {
            return;
        }
        while (@Channel::select(0) > 0) {
            $frame = Channel::read();
            if ($frame === null || $frame[0] === Channel::T_ABORT) {
                self::$aborted = true;
                return;
            }
            Log::line('unexpected frame type ' . $frame[0] . ' during a request; ignored');
        }
    }

    /** Returns and clears all output so far, ending buffers the app left open. */
    public static function take(): string
    {
        while (ob_get_level() > self::$level && @ob_end_flush()) {
        }
        $out = self::$pending;
        self::$pending = '';
        if (ob_get_level() === self::$level) { // gone only after a fatal error, which discards output
            $out .= ob_get_contents();
            ob_clean();
        }
        return $out;
    }

    /**
     * Sends the rest of the request's response: Head (unless streamed), Body frames, End ($exiting:
     * the worker exits after it; $fatal: PHP died of a fatal error, 500 unless the head has gone).
     */
    public static function finish(bool $exiting, bool $fatal = false): void
    {
        Session::close();
        $body = self::take();
        $head = self::$headSent ? '' : self::head($fatal);
        // The End frame (Channel::frame() with its 16-byte payload) in one pack().
        $end = pack('CCnNJJ', Channel::PROTOCOL, Channel::T_END, $exiting ? Channel::FLAG_EXIT : 0, 16,
            memory_get_usage(), memory_get_peak_usage());
        $n = strlen($body);
        if ($n <= 65536) {
            // One write for the whole answer.
            Channel::write($head . ($n === 0 ? '' : pack('CCnN', Channel::PROTOCOL, Channel::T_BODY, 0, $n) . $body) . $end);
        } else {
            Channel::write($head);
            Channel::sendBody($body);
            Channel::write($end);
        }
        self::$headSent = false;
        self::$phase = self::DONE;
        self::resetHeaders();
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
        $repeat = Session::repeatedCookie();
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
        $lines = implode("\n", $headers);
        return pack('CCnNn', Channel::PROTOCOL, Channel::T_HEAD, 0, strlen($lines) + 2, $status) . $lines;
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
    public static function quietExit(): void
    {
        self::resetHeaders();
        ini_set('default_mimetype', '');
    }
}
