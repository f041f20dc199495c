<?php
// The serving process's pid and the server variables the request carried.
declare(strict_types=1);
echo getmypid(), "\n";
