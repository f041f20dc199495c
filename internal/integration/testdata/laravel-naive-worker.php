<?php
/*
 * The worker loop the README's example suggests, applied to Laravel with no resets: what a user
 * writes first. internal/integration/laravel_leaks_test.go runs it to show that the leaks it
 * tests are real (the previous visitor's session reaches a visitor without a cookie).
 */

$base = getenv('ASKR_APP_BASE');
$app = require $base . '/bootstrap/app.php';
$kernel = $app->make(Illuminate\Contracts\Http\Kernel::class);
askr_cow_ready();
while (askr_handle_request(static function () use ($kernel): void {
    $request = Illuminate\Http\Request::capture();
    $response = $kernel->handle($request);
    $response->send();
    $kernel->terminate($request, $response);
})) {
}
