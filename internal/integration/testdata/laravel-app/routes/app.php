<?php

// More routes of the leak tests (loaded by AppServiceProvider, in the web group): each sets, or
// reads back, state that outlives a request unless the worker resets it.

use Illuminate\Http\Request;
use Illuminate\Support\Facades\Blade;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Gate;
use Illuminate\Support\Facades\Route;
use Illuminate\Support\Facades\Validator;
use Leaks\Http\Controllers\EchoController;
use Leaks\Models\Note;
use Leaks\Services\Backend;

// A model booted in a request: its creating hook (registered in booted()) sets the stamp.
Route::get('/model/create', function (Request $request) {
    $note = Note::create(['name' => (string) $request->query('v')]);

    return ['stamp' => Note::query()->whereKey($note->getKey())->value('stamp')];
});

// A controller built with the request in its constructor.
Route::get('/controller', [EchoController::class, 'show']);

// A named route with a parameter; a later 404 must not see it as the current route (the app's
// exception handler renders 404s under /askr-missing/ with Route::currentRouteName()).
Route::get('/named/{thing}', fn (string $thing) => ['thing' => $thing])->name('named');

Route::get('/gate/before', function () {
    Gate::before(fn ($user = null) => true);

    return ['allows' => Gate::allows('is-alice')];
});

Route::get('/gate/read', fn () => ['allows' => Gate::allows('is-alice')]);

Route::get('/validator/extend', function () {
    Validator::extend('askr_anything', fn () => true);

    return ['passes' => Validator::make(['x' => '1'], ['x' => 'askr_anything'])->passes()];
});

Route::get('/validator/read', function () {
    $boot = Validator::make(['x' => '1'], ['x' => 'askr_boot_rule'])->passes(); // the provider's
    try {
        return ['passes' => Validator::make(['x' => '1'], ['x' => 'askr_anything'])->passes(), 'boot_rule' => $boot];
    } catch (\BadMethodCallException $e) {
        return ['passes' => 'no such rule', 'boot_rule' => $boot];
    }
});

Route::get('/blade/directive', function () {
    Blade::directive('askrleak', fn () => "<?php echo 'leak'; ?>");

    return ['directives' => array_keys(Blade::getCustomDirectives())];
});

Route::get('/blade/read', fn () => ['directives' => array_keys(Blade::getCustomDirectives())]);

// What a health check asks before any query.
Route::get('/db/pdo', fn () => ['pdo' => get_debug_type(DB::connection()->getPdo()), 'pid' => getmypid()]);

// MariaDB and PostgreSQL: a transaction whose connection the server then ends (KILL,
// pg_terminate_backend()), with the worker's pid; /tx/state reads back on whichever worker.
Route::get('/tx/killed', function () {
    DB::beginTransaction();
    DB::table('items')->insert(['name' => 'uncommitted']);
    Backend::kill();

    return ['level' => DB::transactionLevel(), 'pid' => getmypid()];
});

// The server's id of this worker's connection (Backend::id()), with the worker's pid.
Route::get('/db/backend', fn () => ['backend' => Backend::id(), 'pid' => getmypid()]);

Route::get('/tx/state', fn () => [
    'level' => DB::transactionLevel(),
    'uncommitted' => DB::table('items')->where('name', 'uncommitted')->count(),
    'pid' => getmypid(),
]);

// A terminating callback that waits (15 s at most) for the test to create storage/release-ID, then
// writes storage/terminated-ID: the client must have this response before it ends, as under
// php-fpm (Response::send() calls fastcgi_finish_request() before the kernel terminates).
Route::get('/terminate/wait', function (Request $request) {
    $id = preg_replace('/\W/', '', (string) $request->query('id'));
    app()->terminating(function () use ($id) {
        $release = storage_path("release-$id");
        for ($i = 0; $i < 1500 && !is_file($release); $i++) {
            usleep(10000);
        }
        file_put_contents(storage_path("terminated-$id"), is_file($release) ? 'released' : 'timed out');
    });

    return ['id' => $id];
});
