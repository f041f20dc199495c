<?php

declare(strict_types=1);

namespace LeakTest;

/** Counts the requests this worker has served: not tagged kernel.reset, so it survives them. */
final class WorkerTally
{
    public int $served = 0;
}
