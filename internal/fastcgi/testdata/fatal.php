<?php
// A fatal error after some output.
declare(strict_types=1);
echo "before\n";
askr_no_such_function();
