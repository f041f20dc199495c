<?php
// exit() with a status: php-cgi still reports app status 0.
declare(strict_types=1);
echo "bye\n";
exit(3);
