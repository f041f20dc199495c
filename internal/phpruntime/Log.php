<?php
/*
 * askr runtime: where the runtime's own lines go (one line per event; askrd tags them with the
 * worker's pid and a level).
 */

declare(strict_types=1);

namespace Askr\Runtime;

final class Log
{
    /** Where a forked CoW worker's own lines go (a FIFO askrd reads; see Template), '' for stderr. */
    public static string $path = '';

    public static function line(string $msg, string $prefix = 'askr: '): void
    {
        // A forked worker logs to its own FIFO (error_log, message type 0); others straight to the
        // SAPI logger (type 4), i.e. php-cgi's stderr.
        error_log($prefix . $msg, self::$path !== '' ? 0 : 4);
    }
}
