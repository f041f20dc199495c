<?php
/* askr runtime: the "php" stream wrapper of a worker (php://input, php://stdin). */

declare(strict_types=1);

namespace Askr\Runtime;

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

    /** Takes over the "php" scheme from PHP's own wrapper. */
    public static function install(): void
    {
        stream_wrapper_unregister('php');
        stream_wrapper_register('php', self::class);
    }

    /**
     * Opens $path with PHP's own "php" wrapper, not this one: a plain stream (a role process's
     * STDOUT on php://stdout reaches fd 1 in php-cgi too). Returns false as fopen() does.
     *
     * @return resource|false
     */
    public static function native(string $path, string $mode)
    {
        stream_wrapper_restore('php');
        try {
            return fopen($path, $mode);
        } finally {
            self::install();
        }
    }

    public function stream_open(string $path, string $mode, int $options, ?string &$opened): bool
    {
        $what = strtolower(substr($path, 6));
        if ($what === 'input') {
            if (Request::$inputFile !== '') {
                $this->h = fopen(Request::$inputFile, 'rb') ?: null;
                return $this->h !== null;
            }
            $this->data = Request::$input;
            return true;
        }
        if ($what === 'stdin') {
            return true;
        }
        if (Log::$path !== '' && ($what === 'stdout' || $what === 'stderr')) {
            // a forked worker shares the template's stdout and stderr; its own output goes to its log
            $this->h = fopen(Log::$path, 'ab') ?: null;
            return $this->h !== null;
        }
        // PHP's own wrapper opens the rest (php://memory, php://temp, php://output, php://filter…):
        // put it back for the one fopen(), then take the scheme over again.
        stream_wrapper_restore('php');
        try {
            $h = $this->context !== null ? fopen($path, $mode, false, $this->context) : fopen($path, $mode);
        } finally {
            self::install();
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
