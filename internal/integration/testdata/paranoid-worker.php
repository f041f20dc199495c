<?php
/*
 * A plain worker that leaks on purpose, one route per kind the state-bleed detector watches
 * (paranoid_test.go). Every other path is clean. /mark?id=X writes "paranoid-test mark X" to the
 * log: once askrd has logged it, it has logged all this worker wrote before.
 */

declare(strict_types=1);

final class Leaky
{
    public static array $seen = [];
}

final class Secrets
{
    public static ?string $last = null;
}

final class Grown
{
    public static array $ids = [];
}

$booted = 'at boot'; // a global of the worker's own: part of the baseline
$store = new ArrayObject();

// A kind of the worker's own. With the detector off this must be a no-op: the probe never runs.
askr_paranoid_watch('store', static function () use ($store): array {
    if (!class_exists('Askr\Runtime\Paranoid', false)) {
        error_log('paranoid-test: the probe ran without the detector');
    }
    return ['items' => count($store)];
});

// A probe that fails from GET /break on.
$broken = false;
askr_paranoid_watch('fragile', static function () use (&$broken): array {
    if ($broken) {
        throw new RuntimeException('the store is gone');
    }
    return ['ok' => true];
});

$handler = static function () use ($store, &$broken): void {
    $path = explode('?', $_SERVER['REQUEST_URI'], 2)[0];
    if (isset($_GET['route'])) {
        askr_paranoid_route($_GET['route']); // the route a framework would name
    }
    if (preg_match('~^/(users|files|t|p)/~', $path) === 1) {
        Grown::$ids[] = $path; // a static that grows at every request of paths with an id
    }
    switch ($path) {
        case '/leak/static':
            Leaky::$seen[] = count(Leaky::$seen);
            break;
        case '/leak/global':
            $GLOBALS['leak'] = ($GLOBALS['leak'] ?? 0) + 1;
            break;
        case '/leak/ini':
            ini_set('user_agent', 'leak ' . count(Leaky::$seen) . ' ' . mt_rand());
            break;
        case '/leak/ob':
            // Not removable: the runtime cannot end it after the request, so it stays open.
            ob_start(null, 0, PHP_OUTPUT_HANDLER_STDFLAGS & ~PHP_OUTPUT_HANDLER_REMOVABLE);
            break;
        case '/leak/watch':
            $store[] = 1;
            break;
        case '/locale':
            \Locale::setDefault($_GET['l'] ?? 'en'); // as Symfony's Request::setLocale() at each request
            break;
        case '/sess':
            if (isset($_GET['open'])) { // as Symfony's NativeSessionStorage, built when first used
                ini_set('session.gc_maxlifetime', $_GET['open']);
            }
            break;
        case '/leak/secret': // a token left in a global and a static: its value must not reach the log
            $GLOBALS['token'] = Secrets::$last = 'tok-' . bin2hex(random_bytes(8));
            echo Secrets::$last;
            return;
        case '/break':
            $broken = true;
            break;
        case '/mark':
            error_log('paranoid-test mark ' . ($_GET['id'] ?? ''));
            break;
        case '/loaded':
            $files = array_filter(get_included_files(), static fn ($f) => basename($f) === 'paranoid.php');
            echo class_exists('Askr\Runtime\Paranoid', false) || $files !== [] ? 'loaded' : 'not loaded';
            return;
    }
    echo "ok $path";
};

while (askr_handle_request($handler)) {
}
