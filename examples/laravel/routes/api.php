<?php

use App\Jobs\RecordRun;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Route;
use Illuminate\Support\Str;

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

// Records a visit in the SQLite database (storage/database.sqlite): which process wrote it, and a
// random token. The insert and the count run in one transaction, so count includes this visit.
Route::post('/visits', function () {
    $pid = getmypid();
    [$id, $count] = DB::transaction(function () use ($pid) {
        $id = DB::table('visits')->insertGetId([
            'pid' => $pid,
            'token' => Str::random(32),
            'created_at' => gmdate('Y-m-d H:i:s'),
        ]);

        return [(int) $id, DB::table('visits')->count()];
    });

    return response()->json(['id' => $id, 'pid' => $pid, 'count' => $count]);
});

// How many visits there are, and which processes wrote them.
Route::get('/visits', function () {
    return response()->json([
        'count' => DB::table('visits')->count(),
        'pids' => DB::table('visits')->distinct()->orderBy('pid')->pluck('pid')->map(fn ($p) => (int) $p),
    ]);
});

// Takes an uploaded file through Laravel's validation ("file": a valid upload, see
// UploadedFile::isValid()) and answers what it received; the file is read, never loaded whole.
Route::post('/upload', function (Request $request) {
    $request->validate(['file' => 'required|file']);
    $file = $request->file('file');

    return response()->json([
        'name' => $file->getClientOriginalName(),
        'size' => $file->getSize(),
        'sha1' => sha1_file($file->getRealPath()),
        'valid' => $file->isValid(),
        'peak_memory' => memory_get_peak_usage(),
    ]);
});

// Dispatches n jobs (App\Jobs\RecordRun) to the database queue, numbered from..from+n-1, in one
// transaction: askrd's [queue] workers run them. seconds > 0 makes each a slow job.
Route::post('/queue/dispatch', function (Request $request) {
    $n = max(0, min(10000, (int) $request->query('n', 1)));
    $from = (int) $request->query('from', 1);
    $seconds = (float) $request->query('seconds', 0);
    DB::transaction(function () use ($n, $from, $seconds) {
        for ($i = $from; $i < $from + $n; $i++) {
            RecordRun::dispatch($i, $seconds);
        }
    });

    return response()->json(['dispatched' => $n, 'from' => $from, 'pid' => getmypid()]);
});

// The queue's state: jobs waiting or running, and jobs that failed.
Route::get('/queue', function () {
    return response()->json([
        'jobs' => DB::table('jobs')->count(),
        'failed' => DB::table('failed_jobs')->count(),
    ]);
});
