<?php

use Illuminate\Http\Request;
use Illuminate\Support\Facades\Cookie;
use Illuminate\Support\Facades\Route;

// Routes with cookies and a session ("web" middleware group). GET routes need no CSRF token.

Route::get('/', function (Request $request) {
    static $served = 0; // per process: grows in a worker, always 1 under php-fpm
    $served++;

    return view('welcome', [
        'laravel' => app()->version(),
        'php' => PHP_VERSION,
        'sapi' => PHP_SAPI,
        'pid' => getmypid(),
        'served' => $served,
        'name' => $request->query('name', 'world'),
        'routes' => collect(Route::getRoutes()->getRoutes())
            ->map(fn ($r) => implode('|', $r->methods()) . ' /' . ltrim($r->uri(), '/'))
            ->all(),
    ]);
});

// Counts this visitor's requests in the session (file driver).
Route::get('/session', function (Request $request) {
    $counter = $request->session()->get('counter', 0) + 1;
    $request->session()->put('counter', $counter);

    return ['counter' => $counter, 'pid' => getmypid()];
});

// Queues a cookie through the cookie jar and shows the cookies this request came with.
Route::get('/cookie', function (Request $request) {
    $value = (string) $request->query('value', 'askr');
    Cookie::queue('askr_demo', $value, 60);

    return ['set' => ['askr_demo' => $value], 'received' => $request->cookies->all()];
});

Route::get('/status/{code}', function (int $code) {
    return response()->json(['status' => $code], $code);
})->where('code', '[2-5][0-9][0-9]');
