<?php

namespace Leaks\Services;

/** Tagged askr.reset: once armed (GET /reset/fail), its reset() throws, as a broken reset would. */
class Tripwire
{
    public bool $armed = false;

    public function reset(): void
    {
        if ($this->armed) {
            throw new \RuntimeException('tripwire: reset failed on purpose');
        }
    }
}
