<?php

// Each leak class has a route that sets state and one that reads it back (the tests send them from
// different clients: what one sets, the next must not see). Every route answers JSON except the
// Blade one.

use Illuminate\Http\Request;
use Illuminate\Support\Facades\App;
use Illuminate\Support\Facades\Auth;
use Illuminate\Support\Facades\Cache;
use Illuminate\Support\Facades\Cookie;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Event;
use Illuminate\Support\Facades\Gate;
use Illuminate\Support\Facades\Log;
use Illuminate\Support\Facades\Route;
use Illuminate\Support\Facades\URL;
use Illuminate\Support\Facades\View;
use Leaks\Services\Basket;
use Leaks\Support\Leaky;

// The issue's repro: this visitor's request count, in the session.
Route::get('/session', function (Request $request) {
    $n = $request->session()->get('counter', 0) + 1;
    $request->session()->put('counter', $n);

    return ['counter' => $n, 'pid' => getmypid()];
});

Route::get('/session/put', function (Request $request) {
    $request->session()->put('secret', $request->query('v'));

    return ['secret' => $request->session()->get('secret')];
});

Route::get('/session/get', fn (Request $request) => [
    'secret' => $request->session()->get('secret'),
    'id' => $request->session()->getId(),
]);

Route::get('/auth/login', function (Request $request) {
    Auth::loginUsingId((int) $request->query('id', 1));

    return ['user' => Auth::user()->name];
});

Route::get('/auth/user', fn (Request $request) => [
    'user' => optional(Auth::user())->name,
    'check' => Auth::check(),
    'request_user' => optional($request->user())->name,
    'gate' => Gate::allows('is-alice'),
]);

Route::get('/cookie/queue', function (Request $request) {
    Cookie::queue('leak', (string) $request->query('v'), 10);

    return ['queued' => $request->query('v')];
});

Route::get('/cookie/none', fn () => ['queued' => null]);

Route::get('/view/share', function (Request $request) {
    View::share('shared', (string) $request->query('v'));

    return view('shared');
});

Route::get('/view/read', fn () => view('shared'));

Route::get('/locale/set', function (Request $request) {
    App::setLocale((string) $request->query('l'));

    return ['app' => App::getLocale()];
});

Route::get('/locale', fn () => [
    'app' => App::getLocale(),
    'translator' => app('translator')->getLocale(),
    'config' => config('app.locale'),
]);

Route::get('/log/context', function (Request $request) {
    Log::withContext(['leak' => $request->query('v')]);
    Log::info('context set');

    return ['context' => ['leak' => $request->query('v')]];
});

// Logs one line and answers the context Monolog's TestHandler recorded with it.
Route::get('/log/read', function () {
    Log::info('probe');
    $handler = Log::getLogger()->getHandlers()[0];
    $records = $handler->getRecords();

    return ['context' => (object) end($records)['context'], 'records' => count($records)];
});

// Begins a transaction that no one ends: it holds SQLite's write lock until it is rolled back.
Route::get('/tx/begin', function () {
    DB::beginTransaction();
    DB::table('items')->insert(['name' => 'uncommitted']);

    return ['level' => DB::transactionLevel()];
});

// MariaDB only: a transaction whose connection the server then drops, as wait_timeout would.
Route::get('/tx/lost', function () {
    DB::beginTransaction();
    DB::table('items')->insert(['name' => 'uncommitted']);
    $id = (int) DB::selectOne('SELECT CONNECTION_ID() AS id')->id;
    try {
        DB::statement("KILL $id");
    } catch (\Illuminate\Database\QueryException $e) {
        // the server ends the connection while it answers
    }

    return ['level' => DB::transactionLevel()];
});

Route::get('/tx/read', fn () => [
    'level' => DB::transactionLevel(),
    'uncommitted' => DB::table('items')->where('name', 'uncommitted')->count(),
    'committed' => DB::table('items')->where('name', 'committed')->count(),
]);

Route::get('/tx/write', function () {
    DB::table('items')->insert(['name' => 'committed']);

    return ['committed' => DB::table('items')->where('name', 'committed')->count()];
});

Route::get('/config/set', function (Request $request) {
    config(['app.name' => $request->query('v'), 'leaks.new' => $request->query('v')]);

    return ['name' => config('app.name')];
});

Route::get('/config/read', fn () => ['name' => config('app.name'), 'new' => config('leaks.new')]);

Route::get('/container/bind', function (Request $request) {
    app()->instance('leaks.bound', $request->query('v'));

    return ['bound' => app('leaks.bound')];
});

Route::get('/container/read', fn () => ['bound' => app()->bound('leaks.bound')]);

Route::get('/url', fn () => [
    'url' => url('/x'),
    'root' => URL::to('/'),
    'defaults' => (object) URL::getDefaultParameters(),
]);

Route::get('/url/force', function (Request $request) {
    URL::forceRootUrl((string) $request->query('root'));
    URL::defaults(['team' => 'red']);

    return ['url' => url('/x')];
});

Route::get('/cache/put', function (Request $request) {
    Cache::store('array')->put('leak', $request->query('v'), 60);

    return ['cached' => Cache::store('array')->get('leak')];
});

Route::get('/cache/get', fn () => ['cached' => Cache::store('array')->get('leak')]);

Route::get('/events/listen', function () {
    Event::listen('leaks.ping', fn () => 'pong');

    return ['listening' => Event::hasListeners('leaks.ping')];
});

Route::get('/events/read', fn () => ['listening' => Event::hasListeners('leaks.ping')]);

Route::get('/basket/add', function (Request $request) {
    $basket = app(Basket::class);
    $basket->items[] = (string) $request->query('v');

    return ['items' => $basket->items];
});

Route::get('/basket', fn () => ['items' => app(Basket::class)->items]);

// Makes the worker's next reset throw: the worker must exit and askrd replace it.
Route::get('/reset/fail', function () {
    app(Leaks\Services\Tripwire::class)->armed = true;

    return ['pid' => getmypid()];
});

// Deliberately leaky routes for the state-bleed detector.
Route::get('/leak/static', function () {
    Leaky::$calls[] = count(Leaky::$calls);

    return ['calls' => count(Leaky::$calls)];
});

Route::get('/leak/instance', function () {
    // One fixed key bound again at every call, as a middleware binding the tenant would: the
    // generic worker puts the container back as after boot, so it is never bound before a call.
    $bound = app()->bound('leaks.tenant');
    app()->instance('leaks.tenant', new \stdClass());

    return ['instances' => $bound ? 2 : 1];
});

Route::get('/pid', fn () => ['pid' => getmypid()]);
