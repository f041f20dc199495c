<?php

use Illuminate\Http\Request;
use Illuminate\Support\Facades\Route;

// Stateless JSON routes under /api ("api" middleware group: no session, no CSRF).

Route::get('/json', function (Request $request) {
    return response()->json([
        'framework' => 'Laravel',
        'version' => app()->version(),
        'php' => PHP_VERSION,
        'pid' => getmypid(),
        'url' => url()->full(),
        'query' => $request->query(),
    ]);
});

// Returns the decoded JSON body and echoes the X-Echo request header back.
Route::post('/echo', function (Request $request) {
    $response = response()->json([
        'json' => $request->json()->all(),
        'bytes' => strlen($request->getContent()),
        'content_type' => $request->header('Content-Type'),
    ]);
    if ($request->hasHeader('X-Echo')) {
        $response->header('X-Echo', $request->header('X-Echo'));
    }

    return $response;
});
