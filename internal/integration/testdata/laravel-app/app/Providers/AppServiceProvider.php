<?php

namespace Leaks\Providers;

use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Gate;
use Illuminate\Support\Facades\Route;
use Illuminate\Support\ServiceProvider;
use Symfony\Component\HttpKernel\Exception\NotFoundHttpException;
use Leaks\Services\Backend;
use Leaks\Services\Basket;
use Leaks\Services\Tripwire;

class AppServiceProvider extends ServiceProvider
{
    public function register()
    {
        // A service resolved at boot that keeps state across requests unless reset: the worker
        // calls reset() on everything tagged askr.reset after each request.
        $this->app->singleton(Basket::class);
        $this->app->singleton(Tripwire::class);
        $this->app->tag([Basket::class, Tripwire::class], 'askr.reset');
    }

    public function boot()
    {
        // Resolved at boot, so they outlive the container's sandbox.
        $this->app->make(Basket::class);
        $this->app->make(Tripwire::class);

        Gate::define('is-alice', fn ($user) => $user->name === 'alice');
        // A rule of the app's own, as providers register them: the validator is resolved at boot.
        \Illuminate\Support\Facades\Validator::extend('askr_boot_rule', fn ($attribute, $value) => $value === '1');
        // And a Blade directive: the Blade compiler too is resolved at boot.
        \Illuminate\Support\Facades\Blade::directive('askrboot', fn () => "<?php echo 'boot'; ?>");

        $this->database();

        Route::middleware('web')->group(base_path('routes/web.php'));
        Route::middleware('web')->group(base_path('routes/app.php'));

        // A 404 under /askr-missing/ answers what the router says is the current route.
        $this->app->make(\Illuminate\Contracts\Debug\ExceptionHandler::class)->renderable(
            fn (NotFoundHttpException $e, $request) => $request->is('askr-missing/*') ? response()->json([
                'route' => Route::currentRouteName(),
                'params' => optional(Route::current())->parameters(),
            ], 404) : null
        );
    }

    /** The tables (SQLite: in storage/app.sqlite, made at the first boot; or MariaDB's, PostgreSQL's). */
    private function database(): void
    {
        if (DB::getDriverName() === 'sqlite') {
            $file = config('database.connections.sqlite.database');
            if (!is_file($file) && !@touch($file) && !is_file($file)) {
                throw new \RuntimeException("cannot create $file");
            }
        }
        $serial = [
            'sqlite' => 'INTEGER PRIMARY KEY AUTOINCREMENT',
            'pgsql' => 'SERIAL PRIMARY KEY',
        ][DB::getDriverName()] ?? 'INTEGER PRIMARY KEY AUTO_INCREMENT';
        DB::statement('CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL,
            email VARCHAR(100) NOT NULL, password VARCHAR(100) NOT NULL, remember_token VARCHAR(100))');
        DB::statement("CREATE TABLE IF NOT EXISTS items (id $serial, name VARCHAR(100) NOT NULL)");
        DB::statement('CREATE TABLE IF NOT EXISTS sessions (id VARCHAR(255) PRIMARY KEY, user_id INTEGER,
            ip_address VARCHAR(45), user_agent TEXT, payload TEXT NOT NULL, last_activity INTEGER NOT NULL)');
        DB::statement("CREATE TABLE IF NOT EXISTS notes (id $serial, name VARCHAR(100) NOT NULL,
            stamp VARCHAR(100))");
        DB::table('users')->insertOrIgnore([
            ['id' => 1, 'name' => 'alice', 'email' => 'alice@example.org', 'password' => ''],
            ['id' => 2, 'name' => 'bob', 'email' => 'bob@example.org', 'password' => ''],
        ]);
        // The server's id of the connection booting used (MariaDB, PostgreSQL): no worker may query
        // through it (TestLvCowMariaDB, TestLvCowPg). One line per boot.
        if (($backend = Backend::id()) !== null) {
            file_put_contents(storage_path('boot-backends'), "$backend\n", FILE_APPEND | LOCK_EX);
        }
    }
}
