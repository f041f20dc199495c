<?php
/*
 * askr's Laravel queue worker: `artisan queue:work` on the app's default queue connection, kept
 * running by askrd. The package installs it as /usr/share/askr/workers/laravel-queue.php:
 *
 *     [queue]
 *     workers = 2
 *     script = "/usr/share/askr/workers/laravel-queue.php"
 *
 * In CoW mode (--cow) each worker is forked from the template that booted the app
 * (/usr/share/askr/workers/laravel.php as [worker] script): it starts in milliseconds and shares
 * the app's memory. Otherwise it is php-cli booting the app at app_base. See laravel-console.php.
 *
 * Environment (askrd passes its own on): ASKR_QUEUE_CONNECTION, a connection of config/queue.php
 * (default: the app's default); ASKR_QUEUE, the queues to work, comma-separated, first first
 * (default: the connection's). A worker ends after 1000 jobs or an hour, and askrd starts a fresh
 * one; a job is tried 3 times unless it says otherwise. On SIGTERM (askrd stop, reload) it
 * finishes the job it is in, then exits.
 */

declare(strict_types=1);

require_once __DIR__ . '/laravel-console.php';

$parameters = ['--tries' => 3, '--sleep' => 3, '--max-jobs' => 1000, '--max-time' => 3600];
if (($connection = getenv('ASKR_QUEUE_CONNECTION')) !== false && $connection !== '') {
    $parameters['connection'] = $connection;
}
if (($queue = getenv('ASKR_QUEUE')) !== false && $queue !== '') {
    $parameters['--queue'] = $queue;
}
exit(Askr\Workers\Console\call('queue:work', $parameters));
