<?php
/*
 * askr's Laravel scheduler: one `artisan schedule:run`, then exit; askrd starts it at every minute
 * boundary (never two at once), as cron would. The package installs it as
 * /usr/share/askr/workers/laravel-scheduler.php:
 *
 *     [scheduler]
 *     script = "/usr/share/askr/workers/laravel-scheduler.php"
 *
 * In CoW mode (--cow) each run is forked from the template that booted the app
 * (/usr/share/askr/workers/laravel.php as [worker] script); otherwise it is php-cli booting the
 * app at app_base. Scheduled closures and jobs run in this process; scheduled artisan commands
 * run as `php artisan …` in app_base, as under cron. See laravel-console.php.
 */

declare(strict_types=1);

require_once __DIR__ . '/laravel-console.php';

exit(Askr\Workers\Console\call('schedule:run', []));
