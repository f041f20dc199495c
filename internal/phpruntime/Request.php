<?php
/*
 * askr runtime: a request as PHP code sees it under php-fpm. From askrd's Request frame it sets
 * $_SERVER, $_GET, $_COOKIE, $_POST, $_FILES and $_REQUEST by PHP's own parsing rules, keeps the
 * body for php://input (PhpStream) and builds the $request array the original askr passes.
 */

declare(strict_types=1);

namespace Askr\Runtime;

final class Request
{
    /** @var array<string,string> the process environment: the base of every $_SERVER, as php-fpm with clear_env=no */
    private static array $env = [];
    /** @var list<string> request_order (or variables_order), its G, P and C: how $_REQUEST is merged. */
    private static array $sources = ['G', 'P'];
    /** post_max_size in bytes (PHP_INI_PERDIR: fixed for the worker's life); 0: no limit. */
    private static int $postMax = 0;
    /** Whether the askr extension can register uploads for is_uploaded_file(). */
    private static bool $ext = false;
    /** Body of the current request for php://input: a string, or the path of the file askrd spooled it to. */
    public static string $input = '';
    public static string $inputFile = '';

    public static function boot(): void
    {
        self::$env = getenv();
        unset(self::$env['ASKR_COW'], self::$env['ASKR_COW_SOCKET']);
        self::$postMax = max(0, ini_parse_quantity((string) ini_get('post_max_size')));
        $order = strtoupper((string) (ini_get('request_order') ?: ini_get('variables_order')));
        self::$sources = array_values(array_filter(str_split($order),
            static fn (string $c): bool => $c === 'G' || $c === 'P' || $c === 'C'));
        self::$ext = function_exists('askr_ext_request_begin');
    }

    /** The upload limits of this worker's PHP configuration, for askrd's multipart parser (Hello). */
    public static function limits(): string
    {
        return sprintf("\n%d\n%d\n%d\n%d", ini_get('file_uploads') ? 1 : 0, max(0, (int) ini_get('max_file_uploads')),
            max(0, ini_parse_quantity((string) ini_get('upload_max_filesize'))), self::$postMax);
    }

    /**
     * Sets up the superglobals for one request and returns the array the original askr passes. Its
     * 'body' is the whole body, read from askrd's spool file if it was larger than body_buffer_size,
     * but only for a handler that takes the array ($withBody): one that declares no parameter never
     * pays for a large body it does not read (php://input streams it; func_get_args() sees '').
     */
    public static function begin(array $r, bool $withBody): array
    {
        /** @var array<string,string> $cgi */
        $cgi = $r['server'];
        $_SERVER = $cgi + self::$env;
        $_GET = [];
        if ($cgi['QUERY_STRING'] !== '') {
            parse_str($cgi['QUERY_STRING'], $_GET);
        }
        $_COOKIE = isset($cgi['HTTP_COOKIE']) ? self::cookies($cgi['HTTP_COOKIE']) : [];
        Session::begin($_COOKIE);
        self::$input = $r['body'];
        self::$inputFile = $r['body_file'];
        $body = null;
        $post = $files = $_POST = $_FILES = [];
        if ($cgi['REQUEST_METHOD'] === 'POST') {
            [$body, $post, $files] = self::post($r);
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
        $_REQUEST = self::request();
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

    /** $_REQUEST as PHP builds it from $_GET, $_POST and $_COOKIE in request_order. */
    private static function request(): array
    {
        $out = null;
        foreach (self::$sources as $c) {
            $src = match ($c) {
                'G' => $_GET,
                'P' => $_POST,
                default => $_COOKIE,
            };
            if ($src === []) {
                continue;
            }
            if ($out === null) {
                $out = $src; // merged into nothing: itself
            } else {
                self::merge($out, $src);
            }
        }
        return $out ?? [];
    }

    /** The request is over: php://input has nothing more to give. */
    public static function end(): void
    {
        self::$input = '';
        self::$inputFile = '';
    }

    /**
     * Sets $_POST and $_FILES for a POST as PHP would (begin() has emptied them). Returns the
     * spooled body if it had to read it (a large form), and the $request array's 'post' and 'files'.
     *
     * @return array{?string,array<string,string>,list<array<string,mixed>>}
     */
    private static function post(array $r): array
    {
        $cgi = $r['server'];
        $body = null;
        $post = [];
        $files = [];
        $postMax = self::$postMax;
        if ($postMax > 0 && (int) ($cgi['CONTENT_LENGTH'] ?? 0) > $postMax) {
            // As PHP: a POST body over post_max_size fills neither $_POST nor $_FILES.
            Log::line(sprintf('PHP Warning:  PHP Request Startup: POST Content-Length of %d bytes exceeds the limit of %d bytes in Unknown on line 0',
                (int) $cgi['CONTENT_LENGTH'], $postMax));
            return [$body, $post, $files];
        }
        $type = strtolower(strtok($cgi['CONTENT_TYPE'] ?? '', ';') ?: '');
        if (trim($type) === 'application/x-www-form-urlencoded') {
            if (self::$inputFile !== '') {
                $body = (string) file_get_contents(self::$inputFile);
            }
            parse_str($body ?? self::$input, $_POST);
        } elseif ($r['post'] !== [] || $r['files'] !== []) {
            // askrd parsed the multipart body: fields as pairs, uploads as temp files.
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
        return [$body, $post, $files];
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
}
