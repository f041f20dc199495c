<?php
// Sets a status, headers and a cookie, and writes to the log two ways.
declare(strict_types=1);
http_response_code(404);
header('X-Multi: one');
header('X-Multi: two', false);
setcookie('flavour', 'oat', ['path' => '/', 'httponly' => true]);
error_log('first log message');
error_log('second log message');
echo "not here\n";
