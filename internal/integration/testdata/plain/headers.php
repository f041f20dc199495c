<?php
// header(), setcookie() and the status, as the query asks.
declare(strict_types=1);
header('X-One: 1');
header('X-Multi: a');
header('X-Multi: b', false);
header('X-Replaced: old');
header('X-Replaced: new');
header('X-Removed: gone');
header_remove('X-Removed');
setcookie('plain', 'v1');
setcookie('opts', 'v 2;x', ['expires' => 0, 'path' => '/sub/', 'httponly' => true, 'samesite' => 'Lax']);
switch ($_GET['status'] ?? '') {
    case 'code':
        http_response_code(202);
        break;
    case 'header':
        header('Status: 404 Not Found');
        break;
    case 'line':
        header('HTTP/1.1 410 Gone');
        break;
    case 'location':
        header('Location: /elsewhere?x=1');
        break;
}
header('Content-Type: text/plain; charset=us-ascii');
echo implode("\n", headers_list()), "\n";
