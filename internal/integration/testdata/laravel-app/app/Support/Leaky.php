<?php

namespace Leaks\Support;

/**
 * Deliberately leaky: a static array that grows with every call of /leak/static. No worker can
 * reset static properties of app classes; askr's state-bleed detector ([worker] paranoid) reports it.
 */
class Leaky
{
    public static array $calls = [];
}
