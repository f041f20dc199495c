<?php

namespace Leaks\Services;

/** What one visitor put in: must be empty for the next one (reset() via the askr.reset tag). */
class Basket
{
    public array $items = [];

    public function reset(): void
    {
        $this->items = [];
    }
}
