<?php
/*
 * askr's welcome app, the worker the Debian package's /etc/askr.toml names until it names an
 * application's. It answers every request with a page that says askr is running and how to serve
 * an app instead (404 for any path but /, so that /favicon.ico and the like are not found).
 * Installed as /usr/share/askr/welcome/worker.php; its document root holds only robots.txt.
 */

$cow = getenv('ASKR_COW') === '1'; // only the CoW template has it, and its forks inherit it
$booted = gmdate('Y-m-d H:i:s') . ' UTC';
$served = 0;

$esc = static fn ($s): string => htmlspecialchars((string) $s, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');

$handler = static function (array $request) use ($cow, $booted, &$served, $esc): void {
    $served++;
    $path = (string) parse_url((string) $request['uri'], PHP_URL_PATH);
    $home = $path === '/' || $path === '' || $path === '/index.php';
    http_response_code($home ? 200 : 404);
    header('Content-Type: text/html; charset=utf-8');
    header('Cache-Control: no-store');

    $software = (string) ($_SERVER['SERVER_SOFTWARE'] ?? '');
    $version = str_starts_with($software, 'askr/') ? substr($software, 5) : 'unknown';
    $facts = [
        'askr version' => $version,
        'mode' => $cow ? 'CoW template (workers forked from one booted template)' : 'worker (each worker boots the app)',
        'worker pid' => getmypid(),
        'requests served by this worker' => $served,
        'app booted' => $booted,
        'PHP' => PHP_VERSION . ' (' . PHP_SAPI . ')',
        'app base (ASKR_APP_BASE)' => getenv('ASKR_APP_BASE') ?: '(not set)',
        'document root' => $_SERVER['DOCUMENT_ROOT'] ?? '',
        'worker script' => __FILE__,
    ];
    $title = $home ? 'askr is running' : 'Not Found';
    ?>
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title><?= $esc($title) ?></title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.8rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: .15rem 1rem .15rem 0; vertical-align: top; }
th { font-weight: normal; color: #666; }
pre, code { font: .9rem/1.4 ui-monospace, monospace; background: #f3f3f3; }
pre { padding: .6rem .8rem; overflow-x: auto; }
.note { color: #666; }
</style>
</head>
<body>
<h1><?= $esc($title) ?></h1>
<?php if (!$home): ?>
<p>Nothing here: no application is configured yet, so every path but <a href="/">/</a> is not found.</p>
<?php else: ?>
<p>This is askr's welcome page: askrd is serving PHP, and no application is configured yet.</p>
<table>
<?php foreach ($facts as $k => $v): ?>
<tr><th><?= $esc($k) ?></th><td><?= $esc($v) ?></td></tr>
<?php endforeach ?>
</table>

<h2>Serve your application</h2>
<ol>
<li>Give the app a worker script: it boots the app once, then loops on
<code>askr_handle_request()</code>. Examples are in <code>/usr/share/askr/examples/</code>
(<code>hello-worker.php</code>, and <code>laravel-worker.php</code> for the Laravel app next to it).</li>
<li>Point <code>/etc/askr.toml</code> at the app (every key is documented there and in
<code>man askr.toml</code>):
<pre>[server]
root = "/var/www/app/public"

[worker]
script = "/var/www/app/askr-worker.php"
app_base = "/var/www/app"</pre></li>
<li>Check the file: <code>askrd config-check /etc/askr.toml</code></li>
<li>askr runs as www-data with a read-only file system; list the paths the app writes to
(for Laravel, <code>storage/</code> and <code>bootstrap/cache/</code>) with
<code>systemctl edit askr</code>:
<pre>[Service]
ReadWritePaths=/var/www/app/storage /var/www/app/bootstrap/cache</pre></li>
<li>Restart: <code>systemctl restart askr</code> (connections wait in askr.socket meanwhile;
none is refused). Later code changes: <code>systemctl reload askr</code>, a rolling reload.</li>
</ol>

<h2>Another port</h2>
<p>askr.socket listens on port 80. To use another one, <code>systemctl edit askr.socket</code>:</p>
<pre>[Socket]
ListenStream=
ListenStream=8080</pre>
<p>then <code>systemctl restart askr.socket askr</code>.</p>

<p class="note">Logs: <code>journalctl -u askr</code>. Manual: <code>man askrd</code>,
<code>man askr.toml</code>.</p>
<?php endif ?>
</body>
</html>
<?php
};

askr_cow_ready();
while (askr_handle_request($handler)) {
    // nothing to reset between requests
}
