<?php
// What a plain PHP app sees of its request, as JSON: the superglobals, the uploads (checked and
// moved as an app would), the body, and the CGI variables that must be those php-fpm gives.
declare(strict_types=1);

$files = [];
foreach ($_FILES as $field => $f) {
    $e = ['name' => $f['name'], 'type' => $f['type'], 'size' => $f['size'], 'error' => $f['error'],
        'full_path' => $f['full_path'] ?? null, 'tmp_name_set' => $f['tmp_name'] !== ''];
    if ($f['error'] === UPLOAD_ERR_OK) {
        $e['is_uploaded_file'] = is_uploaded_file($f['tmp_name']);
        $e['md5'] = md5_file($f['tmp_name']);
        $dest = tempnam(sys_get_temp_dir(), 'askr-moved-');
        $e['move_uploaded_file'] = move_uploaded_file($f['tmp_name'], $dest);
        $e['moved_md5'] = md5_file($dest);
        unlink($dest);
        $e['tmp_gone'] = !file_exists($f['tmp_name']);
    }
    $files[$field] = $e;
}
$input = file_get_contents('php://input');
$server = [];
foreach (['REQUEST_METHOD', 'REQUEST_URI', 'QUERY_STRING', 'SCRIPT_NAME', 'SCRIPT_FILENAME', 'PHP_SELF',
    'PATH_INFO', 'PATH_TRANSLATED', 'ORIG_PATH_INFO', 'DOCUMENT_URI', 'DOCUMENT_ROOT', 'CONTENT_TYPE',
    'CONTENT_LENGTH', 'HTTP_HOST', 'SERVER_PORT', 'SERVER_NAME', 'SERVER_ADDR', 'SERVER_PROTOCOL',
    'REQUEST_SCHEME', 'GATEWAY_INTERFACE', 'REDIRECT_STATUS', 'REMOTE_ADDR', 'REMOTE_USER', 'HTTPS',
    'HTTP_X_CUSTOM', 'HTTP_COOKIE', 'HTTP_USER_AGENT', 'SERVER_SOFTWARE'] as $k) {
    $server[$k] = $_SERVER[$k] ?? null;
}
header('Content-Type: application/json');
echo json_encode([
    // (object): an empty one is {} in JSON, not []
    'get' => (object)$_GET, 'post' => (object)$_POST, 'cookie' => (object)$_COOKIE, 'files' => (object)$files,
    'request' => (object)$_REQUEST,
    'input_length' => strlen($input), 'input_md5' => md5($input),
    'server' => $server, 'request_time_set' => is_int($_SERVER['REQUEST_TIME'] ?? null),
    'cwd' => getcwd(), 'sapi' => PHP_SAPI, 'ob_level' => ob_get_level(),
    'headers_sent' => headers_sent(),
], JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES), "\n";
