<?php

namespace Leaks\Providers;

use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Gate;
use Illuminate\Support\Facades\Route;
use Illuminate\Support\ServiceProvider;
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

        $this->database();

        Route::middleware('web')->group(base_path('routes/web.php'));
    }

    /** The SQLite file (storage/app.sqlite) and its tables, made at the first boot. */
    private function database(): void
    {
        $file = config('database.connections.sqlite.database');
        if (!is_file($file) && !@touch($file) && !is_file($file)) {
            throw new \RuntimeException("cannot create $file");
        }
        DB::statement('CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
            email TEXT NOT NULL, password TEXT NOT NULL, remember_token TEXT)');
        DB::statement('CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL)');
        DB::statement('CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, user_id INTEGER, ip_address TEXT,
            user_agent TEXT, payload TEXT NOT NULL, last_activity INTEGER NOT NULL)');
        DB::statement("INSERT OR IGNORE INTO users (id, name, email, password) VALUES
            (1, 'alice', 'alice@example.org', ''), (2, 'bob', 'bob@example.org', '')");
    }
}
