<?php

declare(strict_types=1);

namespace LeakTest;

/** What the current request has seen; tagged kernel.reset, so it must be empty at the start of every request. */
final class RequestLog
{
    /** @var list<string> */
    private array $seen = [];
    private bool $failReset = false;

    public function add(string $what): void
    {
        $this->seen[] = $what;
    }

    /** @return list<string> */
    public function all(): array
    {
        return $this->seen;
    }

    /** Makes the next reset() throw (GET /reset-fails). */
    public function failNextReset(): void
    {
        $this->failReset = true;
    }

    public function reset(): void
    {
        if ($this->failReset) {
            $this->failReset = false;
            throw new \RuntimeException('RequestLog::reset() fails on purpose (GET /reset-fails)');
        }
        $this->seen = [];
    }
}
