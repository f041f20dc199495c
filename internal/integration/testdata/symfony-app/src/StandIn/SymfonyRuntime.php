<?php

declare(strict_types=1);

namespace Symfony\Component\Runtime;

/**
 * Test stand-in: its existence is what FrameworkBundle::boot() checks to leave error handling to
 * the Runtime component (symfony/runtime, which Debian does not package). Loaded by
 * config/bootstrap.php only with LEAKTEST_RUNTIME=1.
 */
class SymfonyRuntime
{
}
