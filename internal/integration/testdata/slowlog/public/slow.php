<?php
// Per-request mode's slow route: /slow.php?s=SECONDS runs SlowRoute->slow_function_name().
declare(strict_types=1);

require dirname(__DIR__) . '/slow.php';

echo (new SlowRoute())->slow_function_name((float) ($_GET['s'] ?? 1));
