<?php
// A fatal error: PHP answers 500.
declare(strict_types=1);
echo "before\n";
askr_no_such_function();
