<?php
/*
 * askr runtime: the worker channel's wire format, the PHP side of internal/channel (its constants
 * are Go's: frames_test.go compares them). It frames and unframes; what a frame means is the
 * business of Worker, Output and Template.
 *
 * Frame: version (1 byte), type (1 byte), flags (uint16 BE), payload length (uint32 BE), payload.
 */

declare(strict_types=1);

namespace Askr\Runtime;

final class Channel
{
    public const PROTOCOL = 1; // channel.Version
    public const HEADER_SIZE = 8;
    public const MAX_PAYLOAD = 16777216;
    // askrd → PHP
    public const T_REQUEST = 1;
    public const T_STOP = 2;
    public const T_FORK = 3;
    public const T_PING = 4;
    public const T_ABORT = 5;
    public const T_PROMOTE = 6;
    public const T_RUN = 7;
    // PHP → askrd
    public const T_HELLO = 16;
    public const T_HEAD = 17;
    public const T_BODY = 18;
    public const T_END = 19;
    public const T_READY = 20;
    public const T_PONG = 21;
    public const T_BYE = 22;
    public const FLAG_EXIT = 1;
    public const FLAG_FLUSH = 2;

    /**
     * One recv() asks for this much: a request frame (header and payload) comes in one. (Not a
     * constant: the class's constants are the wire format's, see frames_test.go.)
     */
    private static int $chunk = 65536;

    /** @var resource|null the channel: fd 0, or the socket a forked CoW worker connected to */
    private static $stream = null;
    /** What recv() gave and no frame has taken yet, from $pos on. */
    private static string $in = '';
    private static int $pos = 0;

    /** Opens the channel askrd passed as fd 0. */
    public static function open(): void
    {
        $ch = fopen('php://stdin', 'r+b'); // fd 0 is a connected socket: php-cgi leaves it alone
        if ($ch === false) {
            throw new \RuntimeException('askr: cannot open the worker channel on fd 0');
        }
        self::use($ch);
    }

    /**
     * A forked CoW worker: connects a channel of its own to askrd's socket at $path and drops its
     * copy of the template's. Returns null when connected, else why not.
     */
    public static function connect(string $path): ?string
    {
        $ch = stream_socket_client('unix://' . $path, $errno, $errstr, 10);
        if ($ch === false) {
            return $errstr;
        }
        fclose(self::$stream);
        self::use($ch);
        return null;
    }

    /** @param resource $ch */
    private static function use($ch): void
    {
        stream_set_write_buffer($ch, 0);
        // Channel keeps what it read in a buffer of its own: the stream's would copy it once more.
        stream_set_read_buffer($ch, 0);
        // PHP treats the channel as a socket stream, so default_socket_timeout (60 s) would end an
        // idle wait in fread(); a worker waits as long as it takes.
        stream_set_timeout($ch, 31536000);
        self::$stream = $ch;
        self::$in = '';
        self::$pos = 0;
    }

    public static function isOpen(): bool
    {
        return self::$stream !== null;
    }

    /** What /proc/self/fd shows for the channel ("socket:[inode]"; fd 0 once askr.so made it /dev/null), or ''. */
    public static function target(): string
    {
        $st = self::$stream !== null ? fstat(self::$stream) : false;
        return $st !== false ? 'socket:[' . $st['ino'] . ']' : '';
    }

    public static function frame(int $type, int $flags, string $payload): string
    {
        return pack('CCnN', self::PROTOCOL, $type, $flags, strlen($payload)) . $payload;
    }

    public static function send(int $type, int $flags = 0, string $payload = ''): void
    {
        self::write(self::frame($type, $flags, $payload));
    }

    /** Writes all of $data (frames), or throws: askrd is gone. */
    public static function write(string $data): void
    {
        if ($data === '') {
            return;
        }
        $n = fwrite(self::$stream, $data);
        $len = strlen($data);
        while ($n !== false && $n > 0 && $n < $len) {
            $data = substr($data, $n);
            $len -= $n;
            $n = fwrite(self::$stream, $data);
        }
        if ($n === false || $n === 0) {
            throw new \RuntimeException('askr: worker channel closed');
        }
    }

    /** Writes a frame as best it can: for a process that is ending, whoever may still listen. */
    public static function tryWrite(string $frame): void
    {
        @fwrite(self::$stream, $frame);
    }

    /** Sends $body as Body frames without copying it whole. */
    public static function sendBody(string $body): void
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

    /**
     * stream_select() on the channel: 1 when a frame (or its end) can be read, 0 after $seconds,
     * false when a signal interrupted the wait (with a warning: callers silence it).
     */
    public static function select(int $seconds): int|false
    {
        if (self::$pos < strlen(self::$in)) {
            return 1; // read already
        }
        $r = [self::$stream];
        $w = $e = null;
        return stream_select($r, $w, $e, $seconds);
    }

    /** @return array{int,int,string}|null the next frame (type, flags, payload), or null at the channel's end */
    public static function read(): ?array
    {
        $h = self::header();
        if ($h === null) {
            return null;
        }
        $payload = self::payload($h[2]);
        return $payload === null ? null : [$h[0], $h[1], $payload];
    }

    /**
     * Reads a frame header. Worker reads the payload apart, so that a Request is its own from the
     * header on.
     *
     * @return array{int,int,int}|null type, flags and payload length, or null at the channel's end
     */
    public static function header(): ?array
    {
        while (strlen(self::$in) - self::$pos < self::HEADER_SIZE) {
            if (!self::recv()) {
                return null;
            }
        }
        $u = unpack('Cv/Ct/nf/Nn', self::$in, self::$pos);
        self::$pos += self::HEADER_SIZE;
        if (self::$pos === strlen(self::$in)) {
            self::$in = '';
            self::$pos = 0;
        }
        if ($u['v'] !== self::PROTOCOL) {
            Log::line('channel protocol ' . $u['v'] . ' from askrd, runtime speaks ' . self::PROTOCOL);
            return null;
        }
        return [$u['t'], $u['f'], $u['n']];
    }

    /** Reads a payload of $n bytes, or returns null at the channel's end. */
    public static function payload(int $n): ?string
    {
        if ($n === 0) {
            return '';
        }
        $have = strlen(self::$in) - self::$pos;
        if ($have < $n && $n - $have > self::$chunk) {
            // A large payload (a body): what came with the header, then the rest read into one
            // string of its size, not gathered chunk by chunk.
            $head = substr(self::$in, self::$pos);
            self::$in = '';
            self::$pos = 0;
            $rest = self::readRest($n - $have);
            return $rest === null ? null : $head . $rest;
        }
        while ($have < $n) {
            if (!self::recv()) {
                return null;
            }
            $have = strlen(self::$in) - self::$pos;
        }
        if (self::$pos === 0 && $have === $n) {
            $s = self::$in;
        } else {
            $s = substr(self::$in, self::$pos, $n);
        }
        self::$pos += $n;
        if (self::$pos === strlen(self::$in)) {
            self::$in = ''; // all taken: the chunk's memory goes now, not at the next read
            self::$pos = 0;
        }
        return $s;
    }

    /**
     * Reads more of the channel into $in: fread() of the unbuffered socket stream, i.e. poll()
     * until the channel is readable, then one recv(). Not a recv() that blocks by itself: that
     * wait also ends each time askrd reads what this worker wrote (the socket's write-space
     * wake-up), a context switch for nothing at every request; poll() waits for input only.
     * Returns false at the channel's end.
     */
    private static function recv(): bool
    {
        $part = fread(self::$stream, self::$chunk);
        if ($part === false || $part === '') {
            return !feof(self::$stream); // a signal or a spurious wake-up: read again
        }
        if (self::$pos === strlen(self::$in)) {
            self::$in = $part;
        } else {
            self::$in = substr(self::$in, self::$pos) . $part;
        }
        self::$pos = 0;
        return true;
    }

    /** Reads exactly $n bytes past $in (which is empty), or returns null at the channel's end. */
    private static function readRest(int $n): ?string
    {
        $s = '';
        while (strlen($s) < $n) {
            $part = stream_get_contents(self::$stream, $n - strlen($s));
            if ($part !== false) {
                $s .= $part;
            }
            if (strlen($s) < $n && ($part === false || $part === '') && feof(self::$stream)) {
                return null;
            }
        }
        return $s;
    }
}
