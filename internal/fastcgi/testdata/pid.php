<?php
// The serving process's pid.
declare(strict_types=1);
echo getmypid(), "\n";
