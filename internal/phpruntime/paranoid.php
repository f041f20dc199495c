<?php
/*
 * askr's state-bleed detector (askrd serve --paranoid, [worker] paranoid = true), for development
 * and staging. The runtime (Worker::boot()) loads this file only when askrd sets ASKR_PARANOID=1.
 *
 * At every askr_handle_request() call, i.e. after the worker's own resets of the previous request
 * and before it waits for the next, check() takes a snapshot of the long-lived state PHP code can
 * see, kind by kind (key => fingerprint), and compares it with the previous snapshot; a difference
 * was left by the previous request, whose method and route the line names (see served()). The
 * first snapshot, taken at the worker's first call (in CoW mode in the forked worker), is the
 * baseline. Each kind reports its first difference in one line to the worker's log, then stays
 * quiet for a minute and counts what it did not report; its next line says how many.
 *
 * Warm-up: a framework resolves services, sets ini settings and fills caches lazily, the first
 * time a route needs them. So after the first request of each route in a worker (up to
 * MAX_ROUTES routes), the kinds that grow that way (statics, globals, ini, askr_paranoid_watch()
 * kinds) only take their baseline; they report what the route's later requests leave. A class
 * first declared during a request, and a key a probe returns for the first time, start their own
 * baseline. Laravel's container has no warm-up: it is compared with its state after boot (a
 * singleton resolved for the first time is not counted: it was bound at boot and fills once).
 * The kinds whose clean state is "nothing left" (ob, session, auth, cookies, transactions) report
 * from the first request.
 *
 * ASKR_PARANOID_QUIET (seconds, default 60) shortens the quiet period for askr's own tests.
 */

declare(strict_types=1);

namespace Askr\Runtime;

final class Paranoid
{
    /** How many routes a worker remembers as warmed up; later new ones are not warm-ups. */
    private const MAX_ROUTES = 1000;
    /** Kinds whose clean state is empty: no warm-up. */
    private const CLEAN = ['ob' => true, 'session' => true, 'auth' => true, 'cookies' => true, 'transactions' => true];
    private const BUILTIN = ['statics' => true, 'globals' => true, 'ini' => true, 'container' => true] + self::CLEAN;
    private const SUPERGLOBALS = ['GLOBALS' => true, '_GET' => true, '_POST' => true, '_COOKIE' => true,
        '_FILES' => true, '_SERVER' => true, '_ENV' => true, '_REQUEST' => true, '_SESSION' => true,
        'argv' => true, 'argc' => true];

    /** @var array<string,array<string,?string>>|null the previous snapshot, by kind */
    private static ?array $prev = null;
    /**
     * Laravel's container instances after boot: at the first snapshot, or, when the app was not
     * bootstrapped yet (a worker that leaves it to the first Kernel::handle()), at the first
     * snapshot after.
     *
     * @var array<string,?string>|null
     */
    private static ?array $booted = null;
    /** Whether the Laravel app of the latest snapshot had been bootstrapped. */
    private static bool $bootstrapped = false;
    /** @var array<string,true> the routes this worker has served */
    private static array $routes = [];
    /** Whether the request just served was its route's first (see Warm-up above). */
    private static bool $first = false;
    /** The request just served, as reports name it: its method and route. */
    private static string $route = '';
    /** The request being served: its method, its path, the route a worker named (askr_paranoid_route()). */
    private static string $method = '';
    private static string $path = '';
    private static ?string $named = null;
    /** Whether MAX_ROUTES was reached and said so. */
    private static bool $full = false;
    private static int $quiet = 60;
    /** @var array<string,int> kind => time until which it is quiet */
    private static array $quietUntil = [];
    /** @var array<string,int> kind => differences not reported while it was quiet */
    private static array $suppressed = [];
    /** @var array<string,true> the session.* ini settings changed once (see settleSessionIni()) */
    private static array $sessionIni = [];
    /** The key of fp()'s string hashes. */
    private static ?int $seed = null;
    /** @var array<string,true> the probes whose failure was logged */
    private static array $failed = [];
    /** @var array<string,callable> askr_paranoid_watch() probes */
    private static array $watches = [];
    /** How many declared classes have been looked at, and the static properties of the app's. */
    private static int $classes = 0;
    /** @var list<\ReflectionProperty> */
    private static array $statics = [];

    public static function watch(string $kind, callable $probe): void
    {
        if (isset(self::BUILTIN[$kind]) || preg_match('/^[\w.-]{1,40}$/', $kind) !== 1) {
            Log::line("askr_paranoid_watch(): kind \"$kind\" is built in or not a short name; not watched", 'askr paranoid: ');
            return;
        }
        self::$watches[$kind] = $probe;
    }

    /** The request this worker now serves (before its handler runs). */
    public static function serving(string $method, string $uri): void
    {
        self::$method = $method;
        self::$path = explode('?', $uri, 2)[0];
        self::$named = null;
    }

    /** askr_paranoid_route(): the framework's route of the request being served. */
    public static function route(string $route): void
    {
        self::$named = $route === '' ? null : $route; // '': none
    }

    /**
     * The request's handler has returned (before the worker's own resets, after the response):
     * the next check() attributes what it finds to this request's route, which is, in this order,
     * the one a worker named with askr_paranoid_route(), Laravel's route matched for the request
     * (its URI, e.g. /users/{id}), or the path with its numeric, UUID and long hex segments
     * collapsed (/users/{n}), so that /users/1 and /users/2 are one route.
     */
    public static function served(): void
    {
        $route = self::$named;
        if ($route === null && class_exists(\Illuminate\Foundation\Application::class, false)) {
            try {
                // The request's own route (Router::current() would still be the previous
                // request's after a 404): Router::runRoute() sets it as the request's resolver.
                // The request is read from the container's instances: make() would run its
                // resolving callbacks, which look the name up as a class (the autoloader's).
                $app = \Illuminate\Container\Container::getInstance();
                $request = (fn () => $this->instances['request'] ?? null)->call($app);
                if ($request instanceof \Illuminate\Http\Request && ($r = $request->route()) instanceof \Illuminate\Routing\Route) {
                    $route = '/' . ltrim($r->uri(), '/');
                }
            } catch (\Throwable $e) {
                self::failed('route', $e);
            }
        }
        $route ??= preg_replace(['~/\d+(?=/|$)~', '~/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?=/|$)~i',
            '~/[0-9a-f]{16,}(?=/|$)~i'], ['/{n}', '/{uuid}', '/{hex}'], self::$path) ?? self::$path;
        self::$route = preg_replace('/[^\x21-\x7e]/', '?', substr(self::$method, 0, 20)) . ' '
            . preg_replace('/[^\x21-\x7e]/', '?', substr($route, 0, 200));
        self::$first = false;
        if (!isset(self::$routes[self::$route])) {
            if (count(self::$routes) < self::MAX_ROUTES) {
                self::$routes[self::$route] = self::$first = true;
            } elseif (!self::$full) {
                self::$full = true;
                Log::line(sprintf('this worker has served %d routes; the first request of a route it has not '
                    . 'served is now checked too (no warm-up)', self::MAX_ROUTES), 'askr paranoid: ');
            }
        }
    }

    public static function check(): void
    {
        $now = self::snapshot();
        $prev = self::$prev;
        self::$prev = $now;
        if ($prev === null) {
            $q = (int) getenv('ASKR_PARANOID_QUIET');
            self::$quiet = $q > 0 ? $q : 60;
            self::$booted = self::$bootstrapped ? $now['container'] : null;
            return; // the baseline
        }
        foreach ($now as $kind => $map) {
            if ($kind === 'container' && self::$booted === null) {
                if (self::$bootstrapped) {
                    self::$booted = $map; // the request that bootstrapped the app: its bindings are boot's
                }
                continue;
            }
            $before = $prev[$kind] ?? [];
            if ($map === $before) {
                continue;
            }
            if ($kind === 'ini' && ($before = self::settleSessionIni($before, $map)) === $map) {
                continue;
            }
            if (self::$first && !isset(self::CLEAN[$kind]) && $kind !== 'container') {
                continue;
            }
            $diff = self::diff($kind, $before, $map);
            if ($diff !== '') {
                self::report($kind, $diff);
            }
        }
    }

    /**
     * A session.* ini setting's first change in a worker is a new baseline, not a leak: session
     * code sets them with ini_set() when it is first built (Symfony's NativeSessionStorage), in
     * whichever request first uses the session, not always its route's first; the values come
     * from the app's configuration and are the same every time. A later change is reported.
     *
     * @param array<string,?string> $before
     * @param array<string,?string> $now
     * @return array<string,?string> $before, with those first changes taken as they are now
     */
    private static function settleSessionIni(array $before, array $now): array
    {
        foreach ($now as $key => $value) {
            if (!isset(self::$sessionIni[$key]) && str_starts_with($key, 'session.')
                && array_key_exists($key, $before) && $before[$key] !== $value) {
                self::$sessionIni[$key] = true;
                $before[$key] = $value;
            }
        }
        return $before;
    }

    /** The first difference between two maps of one kind, or ''. */
    private static function diff(string $kind, array $before, array $now): string
    {
        if ($kind === 'container') {
            return self::containerDiff($before, $now);
        }
        foreach ($now as $key => $fp) {
            if (!array_key_exists($key, $before)) { // not isset(): an ini value may be null
                if ($kind === 'statics' || isset(self::$watches[$kind])) {
                    continue; // a class declared since, a key a probe returns first: its own baseline
                }
                return "$key new (" . self::show($kind, $fp) . ')';
            }
            if ($before[$key] !== $fp) {
                return "$key changed (" . self::show($kind, $before[$key]) . ' -> ' . self::show($kind, $fp) . ')';
            }
        }
        foreach ($before as $key => $fp) {
            if (!array_key_exists($key, $now)) {
                return "$key gone (was " . self::show($kind, $fp) . ')';
            }
        }
        return '';
    }

    /**
     * Laravel's container against its state after boot: an instance bound since boot (or bound
     * again to another object) that the previous request bound, changed or left. One the same as
     * after boot, or the same as before the previous request (an earlier request's, reported
     * then), is not its doing.
     */
    private static function containerDiff(array $before, array $now): string
    {
        foreach ($now as $key => $fp) {
            if ((array_key_exists($key, self::$booted) && self::$booted[$key] === $fp)
                || (array_key_exists($key, $before) && $before[$key] === $fp)) {
                continue;
            }
            return array_key_exists($key, $before) ? "$key changed ({$before[$key]} -> $fp)" : "$key new ($fp)";
        }
        foreach ($before as $key => $fp) {
            if (!array_key_exists($key, $now) && array_key_exists($key, self::$booted)) {
                return "$key gone (was $fp)"; // one bound at boot, forgotten
            }
        }
        return '';
    }

    /** A snapshot's value as a report shows it: ini values are kept raw, all else is a fingerprint. */
    private static function show(string $kind, ?string $value): string
    {
        return $kind === 'ini' ? self::fp($value, true) : (string) $value;
    }

    /**
     * A probe threw: said once per probe in a worker (it is tried again at every check, and its
     * later failures are not logged). Returns the kind's previous snapshot, so that a failure is
     * not taken for a change.
     *
     * @return array<string,?string>
     */
    private static function failed(string $probe, \Throwable $e): array
    {
        if (!isset(self::$failed[$probe])) {
            self::$failed[$probe] = true;
            $line = sprintf('the %s probe failed; %s is not checked while it fails (said once per worker): %s: %s at %s:%d',
                $probe, $probe, get_class($e), substr($e->getMessage(), 0, 200), $e->getFile(), $e->getLine());
            Log::line(preg_replace('/[\x00-\x1f\x7f]/', '?', $line) ?? '', 'askr paranoid: ');
        }
        return self::$prev[$probe] ?? [];
    }

    private static function report(string $kind, string $diff): void
    {
        $t = time();
        if ($t < (self::$quietUntil[$kind] ?? 0)) {
            self::$suppressed[$kind] = (self::$suppressed[$kind] ?? 0) + 1;
            return;
        }
        $more = self::$suppressed[$kind] ?? 0;
        self::$suppressed[$kind] = 0;
        self::$quietUntil[$kind] = $t + self::$quiet;
        $line = sprintf('%s left %s %s;%s further %s changes are not reported for %ds', self::$route, $kind,
            substr($diff, 0, 300), $more > 0 ? " $more more $kind changes were not reported;" : '', $kind, self::$quiet);
        Log::line(preg_replace('/[\x00-\x1f\x7f]/', '?', $line) ?? '', 'askr paranoid: '); // one line, whatever a key holds
    }

    /** @return array<string,array<string,?string>> */
    private static function snapshot(): array
    {
        // ini values are kept as they are (a string or null) and go through fp() only when reported.
        $ini = ini_get_all(null, false);
        // The runtime sets the first two at every request; \Locale::setDefault() sets the third, which
        // Symfony's Request::setLocale() calls at every request (its LocaleListener): per request
        // by design, set before it is used. (Laravel's App::setLocale() sets its translator's, not this.)
        unset($ini['max_execution_time'], $ini['ignore_user_abort'], $ini['intl.default_locale']);
        $s = ['statics' => self::statics(), 'globals' => [], 'ini' => $ini, 'ob' => ['level' => (string) ob_get_level()]];
        foreach ($GLOBALS as $name => $value) {
            if (!isset(self::SUPERGLOBALS[$name])) {
                $s['globals']['$' . $name] = self::fp($value);
            }
        }
        if (class_exists(\Illuminate\Foundation\Application::class, false)) {
            $app = \Illuminate\Container\Container::getInstance();
            if ($app instanceof \Illuminate\Foundation\Application) {
                $s += self::laravel($app);
            }
        }
        foreach (self::$watches as $kind => $probe) {
            $s[$kind] = [];
            try {
                foreach ($probe() as $key => $value) {
                    $s[$kind][(string) $key] = self::fp($value);
                }
            } catch (\Throwable $e) {
                $s[$kind] = self::failed($kind, $e);
            }
        }
        return $s;
    }

    /**
     * Static properties of the app's classes: user classes declared in a file outside vendor/,
     * /usr/share/php and askr's runtime. Classes are looked at once, when first declared.
     *
     * @return array<string,string>
     */
    private static function statics(): array
    {
        $declared = get_declared_classes();
        if (count($declared) !== self::$classes) {
            foreach (array_slice($declared, self::$classes) as $class) {
                $r = new \ReflectionClass($class);
                $file = $r->getFileName();
                if ($file === false || $r->isAnonymous() || str_contains($file, '/vendor/')
                    || str_starts_with($file, '/usr/share/php/') || dirname($file) === __DIR__) {
                    continue;
                }
                foreach ($r->getProperties(\ReflectionProperty::IS_STATIC) as $p) {
                    if ($p->getDeclaringClass()->getName() === $class) {
                        self::$statics[] = $p;
                    }
                }
            }
            self::$classes = count($declared);
        }
        $out = [];
        foreach (self::$statics as $p) {
            try {
                $fp = self::fp($p->getValue());
            } catch (\Error) {
                $fp = 'uninitialized';
            }
            $out[$p->class . '::$' . $p->name] = $fp;
        }
        return $out;
    }

    /**
     * Laravel: instances bound in the container (resolved singletons left out), session stores
     * holding attributes, guards holding a user, queued cookies, open transactions.
     *
     * @return array<string,array<string,string>>
     */
    private static function laravel(\Illuminate\Foundation\Application $app): array
    {
        [$instances, $bindings] = (fn (): array => [$this->instances, $this->bindings])
            ->call($app);
        self::$bootstrapped = $app->hasBeenBootstrapped();
        $s = ['container' => [], 'session' => [], 'auth' => [], 'cookies' => [], 'transactions' => []];
        // 'request' is left out: Kernel::handle() binds each request's. So are singletons, which
        // a request resolves (the first time they are needed) and keeps on purpose.
        foreach ($instances as $key => $value) {
            if ($key !== 'request' && !($bindings[$key]['shared'] ?? false)) {
                $s['container'][$key] = self::fp($value);
            }
        }
        $probes = [
            'session' => static function (array $instances): array {
                $out = [];
                foreach (isset($instances['session']) ? $instances['session']->getDrivers() : [] as $name => $store) {
                    if (($n = count($store->all())) > 0) {
                        $out["store $name"] = "$n attributes";
                    }
                }
                return $out;
            },
            'auth' => static function (array $instances): array {
                $out = [];
                $guards = isset($instances['auth']) ? (fn (): array => $this->guards)->call($instances['auth']) : [];
                foreach ($guards as $name => $guard) {
                    if (method_exists($guard, 'hasUser') && $guard->hasUser()) {
                        $out["guard $name"] = 'a user';
                    }
                }
                return $out;
            },
            'cookies' => static fn (array $instances): array => isset($instances['cookie'])
                && ($n = count($instances['cookie']->getQueuedCookies())) > 0 ? ['queued' => (string) $n] : [],
            'transactions' => static function (array $instances): array {
                $out = [];
                foreach (isset($instances['db']) ? $instances['db']->getConnections() : [] as $name => $connection) {
                    if (($level = $connection->transactionLevel()) > 0) {
                        $out["connection $name"] = "level $level";
                    }
                }
                return $out;
            },
        ];
        foreach ($probes as $kind => $probe) {
            try {
                $s[$kind] = $probe($instances);
            } catch (\Throwable $e) { // a Laravel unlike 8+
                $s[$kind] = self::failed($kind, $e);
            }
        }
        return $s;
    }

    /**
     * A cheap, stable fingerprint of a value. A string is its length and a short hash, keyed with
     * a random seed of this worker's, so that a change shows and its value (a token, a session id,
     * an email address) does not reach the log; ini values ($raw) are shown as they are when
     * short and printable.
     */
    private static function fp(mixed $v, bool $raw = false): string
    {
        return match (true) {
            $v === null => 'null',
            is_bool($v) => $v ? 'true' : 'false',
            is_int($v) => "int:$v",
            is_float($v) => "float:$v",
            is_string($v) => $raw && strlen($v) <= 64 && preg_match('/^[\x20-\x7e]*$/', $v) === 1 ? "string:\"$v\""
                : 'string(' . strlen($v) . '):' . substr(hash('xxh3', $v, false, ['seed' => self::$seed ??= random_int(0, PHP_INT_MAX)]), 0, 8),
            is_array($v) => 'array:' . count($v),
            $v instanceof \Closure => 'Closure',
            is_object($v) => get_class($v) . '#' . spl_object_id($v),
            default => get_debug_type($v),
        };
    }
}
