<?php
/*
 * askr runtime: PHP's session module across the requests of one process. The module keeps its last
 * id for the life of the process (PHP code cannot reset it to "none"), so each request is handed
 * the id its own cookie carries, and the Set-Cookie the module would then repeat is dropped.
 */

declare(strict_types=1);

namespace Askr\Runtime;

final class Session
{
    /** The session id the request's cookie carried ('' for none). */
    private static string $resumed = '';
    /** The Set-Cookie line PHP would repeat for that id, '' for none. */
    private static string $cookie = '';

    /** Before the handler runs: the request's session is the one its cookie names, or a new one. */
    public static function begin(array $cookies): void
    {
        if (session_status() !== PHP_SESSION_NONE) {
            return;
        }
        // The session module takes the id from $_COOKIE only while it holds none; after the first
        // request it always holds one, so hand it the cookie's id, or '' for a new session.
        $sid = $cookies !== [] && ini_get('session.use_cookies') ? ($cookies[session_name()] ?? '') : '';
        $sid = is_string($sid) ? $sid : '';
        if ($sid !== '' || session_id() !== '') { // forget() left '' after the previous request
            session_id($sid);
        }
        self::$resumed = $sid;
        self::$cookie = $sid !== '' ? 'Set-Cookie: ' . session_name() . '=' . $sid : '';
    }

    /**
     * The header line to drop from the response: given the id explicitly, the module sends its
     * cookie again on every request; php-fpm sends it only when the id is new. '' for none.
     */
    public static function repeatedCookie(): string
    {
        return self::$cookie !== '' && session_id() === self::$resumed ? self::$cookie : '';
    }

    /** Writes the session before the response leaves: the client's next request may read it. */
    public static function close(): void
    {
        if (session_status() === PHP_SESSION_ACTIVE) {
            session_write_close();
        }
    }

    /** After the response: a request without the cookie must never resume this one's session. */
    public static function forget(): void
    {
        if (session_status() === PHP_SESSION_NONE && session_id() !== '') {
            session_id('');
        }
        $_SESSION = [];
    }
}
