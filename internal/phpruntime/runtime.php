<?php
/*
 * askr PHP runtime. askrd prepends this file to every worker script (auto_prepend_file) running on
 * php-cgi. It speaks the worker channel (see internal/channel) on fd 0, which askrd connected to a
 * socket of this worker's own, and makes each request look to PHP code as it does under php-fpm.
 *
 * The askr_* functions below are the API; the classes beside this file, one job each, do the work:
 * Channel (frames), Worker (the request loop, hello and bye), Request (superglobals, $request,
 * php://input), Session, Output (capture, headers, streaming the response), PhpStream (php://),
 * Template (CoW mode: fork), Role ([queue] and [scheduler] processes: the Run frame), ForkSafety
 * (what a template must not share across fork), Log, and Paranoid (paranoid.php). They live in
 * namespace Askr\Runtime, which no app declares, so that an app's own Askr\Request or Askr\Log
 * still loads. In php-cli (askrd's role processes outside CoW mode, or any other use) the runtime
 * only defines the functions: askr_worker_role() reads ASKR_ROLE.
 */

declare(strict_types=1);

require __DIR__ . '/Log.php';
require __DIR__ . '/Channel.php';
require __DIR__ . '/Session.php';
require __DIR__ . '/Request.php';
require __DIR__ . '/Output.php';
require __DIR__ . '/PhpStream.php';
require __DIR__ . '/ForkSafety.php';
require __DIR__ . '/Template.php';
require __DIR__ . '/Role.php';
require __DIR__ . '/Worker.php';

/**
 * Blocks for the next request, runs $handler($request) with superglobals, headers and output set up
 * as under php-fpm, sends the response, then runs askr_defer() callbacks. Returns false when askrd
 * asks the worker to stop (drain, max-requests): leave the loop and let the script end.
 */
function askr_handle_request(callable $handler): bool
{
    return \Askr\Runtime\Worker::handle($handler);
}

/**
 * What this process is: "http" in an HTTP worker (and a CoW template), "queue" or "scheduler" in a
 * role process ([queue] worker, [scheduler] run: a CoW fork told to run the script, or php-cli with
 * ASKR_ROLE), '' outside askrd. A role's script runs as php-cli would; in CoW mode it runs inside
 * the worker script's askr_handle_request() call, in a function scope: it reaches the worker
 * script's variables (e.g. the booted app) through $GLOBALS.
 */
function askr_worker_role(): string
{
    return \Askr\Runtime\Role::current();
}

/** Queues $fn to run after the response has been sent (up to 256 per request). */
function askr_defer(callable $fn): bool
{
    return \Askr\Runtime\Worker::defer($fn);
}

/**
 * Call once the app has booted. In CoW mode the template forks its workers here and never returns;
 * each worker returns from it. Outside CoW mode it only runs the askr_on_worker_start() hooks.
 */
function askr_cow_ready(): void
{
    \Askr\Runtime\Worker::ready();
}

/**
 * Registers $fn to run in each worker before its first request: in CoW mode right after the fork
 * (drop connections the template opened while booting, e.g. DB::purge()), otherwise at
 * askr_cow_ready() or the first askr_handle_request(). A CoW worker promoted to template (refork)
 * runs it once more before it forks.
 */
function askr_on_worker_start(callable $fn): void
{
    \Askr\Runtime\Worker::onWorkerStart($fn);
}

/**
 * Adds a kind of state to what the state-bleed detector (askrd serve --paranoid) watches: $probe
 * returns array<string, mixed>, each value fingerprinted as static properties are (numbers and
 * booleans by value, strings by length and a keyed hash, never their value, arrays by count,
 * objects by class and id), and a key whose value differs between two
 * requests is reported like the built-in kinds (a key first returned starts its own baseline).
 * Without --paranoid it does nothing, so a worker may call it always.
 */
function askr_paranoid_watch(string $kind, callable $probe): void
{
    if (\Askr\Runtime\Worker::$paranoid) {
        \Askr\Runtime\Paranoid::watch($kind, $probe);
    }
}

/**
 * Names the route of the request being served, for the state-bleed detector (askrd serve
 * --paranoid): reports name it (after the method) instead of the path, and a route's first request
 * in a worker is its warm-up. Pass the framework's route, not the path: e.g. Symfony's `_route`
 * request attribute. Call it during the request, before the handler returns; the last call wins
 * ('' names none).
 * Without it the detector uses Laravel's matched route, or else the path with its numeric, UUID
 * and long hex segments collapsed. Without --paranoid it does nothing.
 */
function askr_paranoid_route(string $route): void
{
    if (\Askr\Runtime\Worker::$paranoid) {
        \Askr\Runtime\Paranoid::route($route);
    }
}

\Askr\Runtime\Worker::boot();
