<?php

namespace App\Providers;

use Illuminate\Support\ServiceProvider;

class AppServiceProvider extends ServiceProvider
{
    public function register()
    {
        // Every SQLite connection, including those opened again after DB::purge(), gets the
        // busy timeout and journal mode of config/database.php.
        $this->app->bind('db.connector.sqlite', \App\Database\SQLiteConnector::class);
    }
}
