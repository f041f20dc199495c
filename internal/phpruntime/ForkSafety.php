<?php
/*
 * askr runtime: the fork-safety check (CoW mode, [worker] fork_safety). Before a template forks its
 * workers it lists what it holds that must not be shared across fork, one warning line each:
 *
 *   - connections: TCP connections (any state but LISTEN) and connected Unix stream sockets, from
 *     /proc/self/fd (socket:[inode]) and /proc/self/net/{tcp,tcp6,unix}, named by the server's
 *     well-known port, or by the path a PHP stream of the app connected to. Not reported: the
 *     channel to askrd (fd 0) and a forked worker's own (askrd's private directory); listening
 *     sockets (workers accepting on one inherited listener is how pre-forking servers work); UDP
 *     and Unix datagram sockets (each datagram stays whole, and sharing one to syslog, journald or
 *     statsd is harmless and common);
 *   - SQLite databases: regular files open on a descriptor that are named *.sqlite, *.sqlite3,
 *     *.db, *.db3, or that have a -wal or -journal beside them (never opened here: opening and
 *     closing a second descriptor on a database would drop the template's POSIX locks on it);
 *   - a pending pcntl_alarm() (fork does not carry it over: it goes off in the template), and a
 *     pcntl_signal() handler for SIGTERM or SIGCHLD (the template's own replace them, and each
 *     worker starts with the default).
 *
 * It reads /proc once per template boot; whatever it cannot read it skips, and it never throws
 * into the app (nor lets the app's error handler see its warnings).
 */

declare(strict_types=1);

namespace Askr\Runtime;

final class ForkSafety
{
    /** The servers known by their port, for naming a TCP connection. */
    private const PORTS = [3306 => 'MySQL/MariaDB', 5432 => 'PostgreSQL', 6379 => 'Redis', 11211 => 'Memcached',
        5672 => 'AMQP', 27017 => 'MongoDB', 9200 => 'Elasticsearch'];
    /** The servers known by a Unix socket's path (a substring of it). */
    private const PATHS = ['mysql' => 'MySQL/MariaDB', 'mariadb' => 'MySQL/MariaDB', '.s.PGSQL.' => 'PostgreSQL',
        'postgres' => 'PostgreSQL', 'redis' => 'Redis', 'memcache' => 'Memcached'];
    private const SHARE = 'every worker will share it; close it before askr_cow_ready() and let each worker open '
        . 'its own (on first use, or in an askr_on_worker_start() hook)';

    /**
     * Runs the check as ASKR_FORK_SAFETY says ("warn", the default; "refuse"; "off"): logs a line
     * for each finding, and with "refuse" and a finding exits 1, so that the template never says Ready.
     *
     * $promoted: a worker becoming the next template (refork), after its askr_on_worker_start()
     * hooks ran. What those hooks set up for a worker (signal handlers, an alarm) is undone here
     * (each child runs the hooks again) and not reported; what they, or the requests before, left
     * open is, since every child would share it.
     */
    public static function check(bool $promoted = false): void
    {
        $mode = getenv('ASKR_FORK_SAFETY');
        if ($promoted) {
            self::unsetWorkerTimers();
        }
        if ($mode === 'off') {
            return;
        }
        $found = self::find();
        foreach ($found as $line) {
            if ($promoted) {
                $line = 'refork: ' . str_replace(['open in the template', 'close it before askr_cow_ready()'],
                    ['open in the worker promoted to template after its askr_on_worker_start() hooks',
                        'hooks should drop connections, not open them'], $line);
            }
            Log::line('fork safety: ' . $line);
        }
        if ($found !== [] && $mode === 'refuse') {
            Log::line(sprintf('fork safety: the %s does not fork its workers (worker.fork_safety = "refuse"): '
                . '%d finding%s above', $promoted ? 'worker promoted to template' : 'template', count($found), count($found) === 1 ? '' : 's'));
            exit(1);
        }
    }

    /** A promoted worker: its alarm and SIGTERM/SIGCHLD handlers were a worker's; the template's replace them. */
    private static function unsetWorkerTimers(): void
    {
        if (function_exists('pcntl_alarm')) {
            pcntl_alarm(0);
        }
        if (function_exists('pcntl_signal')) {
            pcntl_signal(SIGTERM, SIG_DFL);
            pcntl_signal(SIGCHLD, SIG_DFL);
        }
    }

    /** @return list<string> what this process holds that must not be shared across fork, a line each */
    public static function find(): array
    {
        set_error_handler(static fn (): bool => true); // not the app's: it may throw
        try {
            [$sockets, $files] = self::descriptors();
            return [...self::connections($sockets), ...self::databases($files), ...self::timers()];
        } catch (\Throwable) {
            return []; // a check that fails must not stop the app
        } finally {
            restore_error_handler();
        }
    }

    /**
     * The open descriptors: socket inodes (but the channel's: fd 0, or its dup once askr.so has
     * made fd 0 /dev/null) and the paths of open files.
     *
     * @return array{array<int,int>, array<int,string>} [inode => fd], [fd => path]
     */
    private static function descriptors(): array
    {
        $sockets = $files = [];
        $channel = Channel::target() ?: (string) readlink('/proc/self/fd/0');
        foreach (scandir('/proc/self/fd') ?: [] as $fd) {
            if (!ctype_digit($fd) || ($target = readlink("/proc/self/fd/$fd")) === false || $target === $channel) {
                continue;
            }
            if (preg_match('/^socket:\[(\d+)\]$/', $target, $m)) {
                $sockets[(int) $m[1]] = (int) $fd;
            } elseif ($target[0] === '/' && !str_ends_with($target, ' (deleted)')) {
                $files[(int) $fd] = $target;
            }
        }
        return [$sockets, $files];
    }

    /**
     * The connections among $sockets, TCP ones first. /proc/net/tcp costs milliseconds to read
     * (the kernel walks its whole table): the Unix table first, and no more tables once every
     * socket has been found.
     *
     * @param array<int,int> $sockets inode => fd
     * @return list<string>
     */
    private static function connections(array $sockets): array
    {
        if ($sockets === []) {
            return [];
        }
        $unix = self::unixConnections($sockets);
        $tcp = [];
        foreach (['tcp', 'tcp6'] as $table) {
            foreach ($sockets === [] ? [] : self::table($table) as $f) {
                // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
                if (count($f) < 10 || !isset($sockets[(int) $f[9]])) {
                    continue;
                }
                unset($sockets[(int) $f[9]]);
                if ($f[3] === '0A') { // LISTEN
                    continue;
                }
                [$addr, $port] = self::address($f[2]);
                $what = isset(self::PORTS[$port]) ? self::PORTS[$port] . ' connection' : 'TCP connection';
                $tcp[] = "$what to $addr:$port open in the template: " . self::SHARE;
            }
        }
        return [...$tcp, ...$unix];
    }

    /**
     * The connected Unix stream sockets among $sockets; those found in the table leave $sockets.
     *
     * @param array<int,int> $sockets inode => fd
     * @return list<string>
     */
    private static function unixConnections(array &$sockets): array
    {
        $peers = self::streamPeers();
        $askrd = dirname((string) getenv('ASKR_COW_SOCKET')) . '/';
        $found = [];
        foreach (self::table('unix') as $f) {
            // Num RefCount Protocol Flags Type St Inode [Path]; Flags 00010000: listening; Type
            // 0001 stream, 0005 seqpacket; St 03: connected
            if (count($f) < 7 || !isset($sockets[$inode = (int) $f[6]])) {
                continue;
            }
            $fd = $sockets[$inode];
            unset($sockets[$inode]);
            if ($f[3] === '00010000' || !in_array($f[4], ['0001', '0005'], true) || $f[5] !== '03') {
                continue;
            }
            $path = $peers[$inode] ?? $f[7] ?? '';
            if ($path !== '' && $askrd !== '/' && str_starts_with($path, $askrd)) {
                continue; // a forked worker's channel (refork)
            }
            $found[] = $path === ''
                ? "a Unix socket connection (fd $fd, socket:[$inode]) open in the template: " . self::SHARE
                : self::pathService($path) . " to $path open in the template: " . self::SHARE;
        }
        return $found;
    }

    /**
     * The peers of the app's PHP socket streams (stream_socket_client(), fsockopen(), clients built
     * on them), by socket inode: a Unix socket's own entry in /proc has no path.
     *
     * @return array<int,string>
     */
    private static function streamPeers(): array
    {
        $peers = [];
        foreach (get_resources() as $r) {
            $type = get_resource_type($r);
            if ($type !== 'stream' && $type !== 'persistent stream') {
                continue;
            }
            $meta = stream_get_meta_data($r);
            // Only PHP's own socket streams: fstat() of a user-space wrapper's stream would run app code.
            if (($meta['wrapper_type'] ?? '') === 'user-space' || !str_contains((string) ($meta['stream_type'] ?? ''), 'socket')) {
                continue;
            }
            $st = fstat($r);
            $peer = stream_socket_get_name($r, true);
            if (is_array($st) && is_string($peer) && $peer !== '') {
                $peers[(int) $st['ino']] = $peer;
            }
        }
        return $peers;
    }

    private static function pathService(string $path): string
    {
        foreach (self::PATHS as $part => $name) {
            if (str_contains(strtolower($path), strtolower($part))) {
                return "$name connection";
            }
        }
        return 'Unix socket connection';
    }

    /**
     * The rows of /proc/self/net/$name, split on blanks, without the heading ([] if unreadable).
     *
     * @return list<list<string>>
     */
    private static function table(string $name): array
    {
        $lines = file("/proc/self/net/$name", FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) ?: [];
        array_shift($lines);
        return array_map(static fn (string $l): array => preg_split('/\s+/', trim($l)) ?: [], $lines);
    }

    /**
     * A /proc/net/tcp{,6} address, "0100007F:0CEA": the address as 32-bit words in host (little-
     * endian) order, the port big-endian.
     *
     * @return array{string,int}
     */
    private static function address(string $hex): array
    {
        [$a, $p] = explode(':', $hex, 2) + [1 => '0'];
        $bin = '';
        foreach (str_split($a, 8) as $word) {
            $bin .= strrev((string) hex2bin($word));
        }
        $ip = inet_ntop($bin) ?: $a;
        return [strlen($bin) === 16 ? "[$ip]" : $ip, (int) hexdec($p)];
    }

    /**
     * @param array<int,string> $files fd => path
     * @return list<string>
     */
    private static function databases(array $files): array
    {
        $dbs = [];
        foreach ($files as $path) {
            $db = preg_replace('/-(wal|shm|journal)$/', '', $path);
            if (preg_match('/\.(sqlite3?|db3?)$/i', $db) || file_exists("$db-wal") || file_exists("$db-journal")) {
                $dbs[$db] = true; // a database once, with its -wal and -shm
            }
        }
        $found = [];
        foreach (array_keys($dbs) as $db) {
            $found[] = "SQLite database $db open in the template: every worker will share its file descriptor "
                . 'and SQLite\'s record of its locks (which fork does not carry over); close it before '
                . 'askr_cow_ready() and let each worker open its own';
        }
        return $found;
    }

    /** @return list<string> */
    private static function timers(): array
    {
        $found = [];
        if (function_exists('pcntl_alarm') && ($left = pcntl_alarm(0)) > 0) {
            pcntl_alarm($left); // put back (to the second: alarm() has no finer reading)
            $found[] = "an alarm (pcntl_alarm) is pending in the template, due in $left s: it will go off in the "
                . 'template, not in the workers (fork does not carry it over); set it in an askr_on_worker_start() hook';
        }
        if (function_exists('pcntl_signal_get_handler')) {
            foreach (['SIGTERM' => SIGTERM, 'SIGCHLD' => SIGCHLD] as $name => $signo) {
                if (!is_int(pcntl_signal_get_handler($signo))) { // SIG_DFL, SIG_IGN: ints; the app's: a callable
                    $found[] = "a pcntl_signal() handler for $name was installed before askr_cow_ready(): the template "
                        . 'replaces it with its own and the workers start without it; install it in an '
                        . 'askr_on_worker_start() hook';
                }
            }
        }
        return $found;
    }
}
