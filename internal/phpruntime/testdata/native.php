<?php
// Run by php-cgi in plain CGI mode: PHP itself parses the request. Prints what it made of it, and
// what the askr runtime's own parsers make of the same input, as JSON.
require getenv('ASKR_RUNTIME_FILE'); // defines the classes; does nothing more outside askrd

$rt = new ReflectionClass(\Askr\Runtime\Request::class);
$call = static function (string $method, ...$args) use ($rt) {
    $m = $rt->getMethod($method);
    $m->setAccessible(true);
    return $m->invoke(null, ...$args);
};

$files = [];
foreach (json_decode(getenv('ASKR_TEST_FILES') ?: '[]', true) as $f) {
    // the entries askrd would send for the same multipart body: PHP's own values, by field
    $files[] = $f;
}
header('Content-Type: application/json');
echo json_encode([
    'native_cookie' => $_COOKIE,
    'askr_cookie' => $call('cookies', getenv('HTTP_COOKIE') ?: ''),
    'native_files' => $_FILES,
    'askr_files' => $call('filesGlobal', $files),
    'native_get' => $_GET,
    'native_post' => $_POST,
]);
