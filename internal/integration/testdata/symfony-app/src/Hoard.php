<?php

declare(strict_types=1);

namespace LeakTest;

/** A leak on purpose (GET /leak): a static array that grows with every request. */
final class Hoard
{
    /** @var list<string> */
    public static array $items = [];
}
