<?php
/*
 * askr's Laravel worker: serves any Laravel app (8 and later) without edits. The package installs
 * it as /usr/share/askr/workers/laravel.php:
 *
 *     [worker]
 *     script = "/usr/share/askr/workers/laravel.php"
 *     app_base = "/var/www/app"          # the directory with artisan, bootstrap/ and public/
 *
 * It boots the app at ASKR_APP_BASE once (vendor/autoload.php if there is one, bootstrap/app.php,
 * the HTTP kernel, every deferred provider, then the services listed in WARM), and serves requests
 * in a loop. After each response has gone out it puts back what a request may leave in the
 * long-lived app, so that two visitors never share state (Laravel Octane's list, done in place on
 * the one app; resetAfterRequest() below is the list, one line per reset):
 *
 *   - the container as it was after boot: instances, bindings, aliases, tags, callbacks and
 *     terminating callbacks a request added are dropped (so are services first built during a
 *     request: the next request builds them again); scoped instances and auth.driver forgotten;
 *     facades resolve afresh
 *   - config: every item as it was after boot (config([...]) writes, new keys too)
 *   - event listeners added during a request, with Eloquent's boot state (models first used in a
 *     request boot again, registering their listeners and global scopes again)
 *   - Gate abilities, policies and before/after callbacks, validator extensions, Blade directives
 *     registered during a request (those of boot stay)
 *   - the router: the matched route's cached controller (Octane's flushController()), and its
 *     current route and request (a 404 would see the previous visitor's route)
 *   - database: open transactions rolled back (their locks released), query log, "record
 *     modified" flags, query-duration handlers
 *   - sessions: every store the request used emptied, with a new id; the database handler's
 *     "row exists" flag
 *   - queued cookies; auth guards and the users they resolved (Gate asks auth again)
 *   - views: render state and shared data as after boot; locale and fallback locale of app and
 *     translator (LocaleUpdated is dispatched: Carbon follows only if Carbon's Laravel service
 *     provider is registered); the translator's parsed keys
 *   - log context of every channel, Monolog handlers that can reset (buffers), shared context
 *     (Laravel 10+) and Context (11+); array cache stores flushed
 *   - the URL generator's forced root and scheme, route defaults (URL::defaults()), formatters;
 *     the request itself is replaced by the next one (Kernel::handle() rebinds url, auth, …)
 *   - Str's caches, Vite (9+), once() (11+); Livewire, Inertia, Scout and Socialite when installed
 *   - the app's own: every service tagged "askr.reset" that was resolved at boot gets reset() called
 *     (or is invoked, if it is callable). In a service provider:
 *         $this->app->singleton(Cart::class);
 *         $this->app->tag([Cart::class], 'askr.reset');   // Cart::reset() runs after every request
 *
 * Deliberately kept: booted providers, the compiled routes, services resolved at boot (and what
 * they cache, e.g. loaded translations, view paths, Gate abilities defined at boot), DB
 * connections, OPcache. Not reset: lines a request adds with Translator::addLines(),
 * Carbon::setLocale() called directly; and, by no worker, static properties of app and package
 * classes beyond Eloquent's boot state (askr's [worker] paranoid reports those that change).
 * Needs PHP 8.1+ (readonly, never).
 *
 * A reset that fails leaves state unknown: the worker logs one line and exits, and askrd starts a
 * clean one. In CoW mode (--cow) the app boots once in the template, which closes its database
 * (and Redis) connections before it forks the workers; each opens its own.
 */

declare(strict_types=1);

namespace Askr\Workers;

use Illuminate\Contracts\Http\Kernel as HttpKernel;
use Illuminate\Foundation\Application;
use Illuminate\Http\Request;

final class Laravel
{
    /**
     * The services resolved at boot, so that they persist: Octane's default warm list, and three
     * stateless singletons that nearly every request would otherwise build again (response(),
     * redirect(), the session middleware). Not 'date' (now()): Laravel 8 binds none, and the Date
     * facade's own, bound again by each request that asks the time, costs 0.2 µs.
     */
    private const WARM = ['auth', 'cache', 'cache.store', 'config', 'cookie', 'db', 'db.factory',
        'db.transactions', 'encrypter', 'files', 'hash', 'log', 'router', 'routes', 'session',
        'session.store', 'translator', 'url', 'view',
        'redirect', \Illuminate\Contracts\Routing\ResponseFactory::class,
        \Illuminate\Session\Middleware\StartSession::class];

    /** The container's properties as they were after boot (get_object_vars of the app). */
    private array $container = [];
    /**
     * The services resolved at boot, by name: the container's sandbox puts these very objects
     * back after each request, so the resets reach them without asking the container again. A
     * service first resolved during a request is dropped with it and needs no reset.
     */
    private array $boot = [];
    /*
     * The resets that put back non-public state, as closures bound once at boot to the object
     * they reach into (no closure made or bound per request). Each puts back only a property
     * whose value is no longer identical (===) to boot's: one the request left alone stays the
     * very array the object owns, and the next request's writes to it copy nothing.
     */
    private ?\Closure $restoreContainer = null;
    private ?\Closure $flushRouter = null;
    private ?\Closure $restoreConfig = null;
    private ?\Closure $restoreListeners = null;
    /** Eloquent's per-model boot state (Model's static properties) back as after boot. */
    private ?\Closure $restoreModels = null;
    /** @var list<\Closure> registries of services resolved at boot (Gate, validator, Blade) */
    private array $restoreRegistries = [];
    private ?\Closure $restoreViewShared = null;
    private ?\Closure $restoreUrl = null;
    private ?\Closure $cacheStores = null;
    /** @var array<string,string> each session store's id as its last reset left it */
    private array $sessionIds = [];
    private string $locale = '';
    private ?string $fallbackLocale = null;
    private array $tagged = [];
    private bool $once = false;
    public ?HttpKernel $kernel = null;

    public function __construct(public readonly Application $app)
    {
    }

    /** Boots the app at $base, or logs one line saying why it cannot and exits. */
    public static function boot(string|false $base): self
    {
        if ($base === false || $base === '') {
            self::fail('ASKR_APP_BASE is not set: set [worker] app_base to the Laravel app\'s directory');
        }
        $bootstrap = rtrim($base, '/') . '/bootstrap/app.php';
        if (!is_dir($base)) {
            self::fail("app_base $base (ASKR_APP_BASE) is not a directory");
        }
        if (!is_file($bootstrap)) {
            self::fail("$bootstrap not found: app_base (ASKR_APP_BASE) must be a Laravel app's base directory, "
                . 'the one with artisan and bootstrap/');
        }
        defined('LARAVEL_START') || define('LARAVEL_START', microtime(true));
        // Composer's autoloader. An app without vendor/ (Debian's packaged Laravel) loads its
        // own from bootstrap/app.php.
        if (is_file("$base/vendor/autoload.php")) {
            require_once "$base/vendor/autoload.php";
        }
        try {
            $app = require $bootstrap; // Laravel 11's Application::configure()->create() too
        } catch (\Throwable $e) {
            self::fail("$bootstrap failed: " . self::oneLine($e));
        }
        if (!$app instanceof Application) {
            self::fail("$bootstrap returned " . get_debug_type($app) . ', not an Illuminate\Foundation\Application');
        }
        $worker = new self($app);
        $worker->makeWritableDirs();
        try {
            $worker->bootstrap();
        } catch (\Throwable $e) {
            self::fail("booting the app at $base failed: " . self::oneLine($e));
        }
        $worker->snapshot();
        return $worker;
    }

    /** Logs $msg as one line (askrd relays the worker's stderr) and ends the worker. */
    public static function fail(string $msg): never
    {
        error_log('askr laravel worker: ' . $msg);
        exit(1);
    }

    public static function oneLine(\Throwable $e): string
    {
        return get_class($e) . ': ' . str_replace("\n", ' ', $e->getMessage()) . ' at ' . $e->getFile() . ':' . $e->getLine();
    }

    /** Laravel writes sessions, compiled views, cache, logs and its manifests here. */
    private function makeWritableDirs(): void
    {
        $storage = $this->app->storagePath();
        $dirs = ["$storage/framework/sessions", "$storage/framework/views", "$storage/framework/cache/data",
            "$storage/logs", dirname($this->app->getCachedPackagesPath())];
        foreach ($dirs as $dir) {
            if (!is_dir($dir) && !@mkdir($dir, 0775, true) && !is_dir($dir)) {
                $why = error_get_last()['message'] ?? 'mkdir failed';
                self::fail("cannot create $dir ($why): the workers' user must be able to write there "
                    . '(under systemd: ReadWritePaths=)');
            }
        }
    }

    private function bootstrap(): void
    {
        $app = $this->app;
        $kernel = $app->make(HttpKernel::class);
        // As Octane does: a request made from app.url is bound before the providers register, so
        // those that use request() or url() while booting work (under php-fpm they see the real
        // request). Kernel::handle() replaces it with each real one.
        $bootstrappers = (fn () => $this->bootstrappers())->call($kernel);
        $at = array_search(\Illuminate\Foundation\Bootstrap\RegisterProviders::class, $bootstrappers, true);
        if ($at !== false && !in_array(\Illuminate\Foundation\Bootstrap\SetRequestForConsole::class, $bootstrappers, true)) {
            array_splice($bootstrappers, $at, 0, [\Illuminate\Foundation\Bootstrap\SetRequestForConsole::class]);
        }
        $app->bootstrapWith($bootstrappers); // the kernel's own bootstrap() then has nothing to do

        // Deferred providers load now rather than during a request: what a request loads is dropped
        // with the container's sandbox and would be loaded again by every request that needs it.
        // One that fails to register stays unloaded (as under php-fpm, only what uses it fails).
        foreach (array_keys($app->getDeferredServices()) as $service) {
            try {
                $app->loadDeferredProvider($service);
            } catch (\Throwable $e) {
                error_log("askr laravel worker: deferred provider of $service not loaded: " . self::oneLine($e));
            }
        }
        // Warm: a service resolved at boot is built once per worker; one first built during a
        // request is built again by each request (the sandbox drops it). A service that cannot
        // be built (e.g. a session driver whose extension is missing) fails only the requests
        // that use it, as under php-fpm, not the boot.
        foreach (self::WARM as $service) {
            if ($app->bound($service)) {
                try {
                    $app->make($service);
                } catch (\Throwable $e) {
                    error_log("askr laravel worker: $service not resolved at boot: " . self::oneLine($e));
                }
            }
        }
        $this->kernel = $kernel;
    }

    /** Records the state resetAfterRequest() puts back. */
    private function snapshot(): void
    {
        $app = $this->app;
        // Arrays are copy-on-write: these copies cost nothing until the app changes its own.
        $this->container = (fn () => get_object_vars($this))->call($app);
        $this->restoreContainer = \Closure::bind(function (array $boot): void {
            $request = $this->instances['request'] ?? null;
            foreach ($boot as $property => $value) {
                if ($this->$property !== $value) {
                    $this->$property = $value;
                }
            }
            if ($request !== null) {
                $this->instances['request'] = $request;
            }
        }, $app, get_class($app));
        // Each by the method its reset calls: an app that replaced one with a class of its own
        // keeps it as it is.
        foreach (['db' => 'getConnections', 'config' => 'all', 'events' => 'listen', 'session' => 'getDrivers',
            'cookie' => 'flushQueuedCookies', 'auth' => 'forgetGuards', 'view' => 'flushState',
            'translator' => 'getLocale', 'log' => 'getChannels', 'cache' => 'store', 'url' => 'to',
            'router' => 'current'] as $name => $method) {
            if ($app->resolved($name) && method_exists($app[$name], $method)) {
                $this->boot[$name] = $app[$name];
            }
        }
        if (isset($this->boot['cache']) && !$this->boot['cache'] instanceof \Illuminate\Cache\CacheManager) {
            unset($this->boot['cache']); // its reset reads CacheManager's stores
        }
        $router = $this->boot['router'] ?? null;
        if ($router !== null) {
            $properties = array_values(array_filter(['current', 'currentRequest'],
                static fn (string $property) => property_exists($router, $property)));
            $this->flushRouter = \Closure::bind(function () use ($properties): void {
                foreach ($properties as $property) {
                    $this->$property = null;
                }
            }, $router, get_class($router));
        }
        $config = $this->boot['config'] ?? null;
        if ($config instanceof \Illuminate\Config\Repository) {
            $this->restoreConfig = $this->restorer($config, ['items' => $config->all()]);
        }
        $events = $this->boot['events'] ?? null;
        if ($events instanceof \Illuminate\Events\Dispatcher) {
            $listeners = (fn () => array_intersect_key(get_object_vars($this),
                ['listeners' => 1, 'wildcards' => 1, 'wildcardsCache' => 1]))->call($events);
            // wildcardsCache is what getListeners() found in the wildcards for each event name,
            // and every change to wildcards empties it (or its matching entries): while the
            // wildcards are boot's, the entries a request added are boot's answers, and stay.
            $this->restoreListeners = \Closure::bind(function () use ($listeners): void {
                foreach ($listeners as $property => $value) {
                    if ($property !== 'wildcardsCache' && $this->$property !== $value) {
                        $this->$property = $value;
                        if ($property === 'wildcards' && array_key_exists('wildcardsCache', $listeners)) {
                            $this->wildcardsCache = $listeners['wildcardsCache'];
                        }
                    }
                }
            }, $events, get_class($events));
        }
        if (class_exists(\Illuminate\Database\Eloquent\Model::class)) {
            $models = self::modelState();
            $this->restoreModels = \Closure::bind(static function () use ($models): void {
                foreach ($models as $property => $value) {
                    if (self::$$property !== $value) {
                        self::$$property = $value;
                    }
                }
            }, null, \Illuminate\Database\Eloquent\Model::class);
        }
        // What a request registers with these lasts for the process: Gate::before(fn () => true)
        // would allow everything to every later visitor. Only the registries, not the services'
        // collaborators (container, user resolver, translator, …).
        foreach ([
            \Illuminate\Contracts\Auth\Access\Gate::class => [\Illuminate\Auth\Access\Gate::class, ['abilities',
                'policies', 'beforeCallbacks', 'afterCallbacks', 'stringCallbacks', 'guessPolicyNamesUsingCallback']],
            'validator' => [\Illuminate\Validation\Factory::class, ['extensions', 'implicitExtensions',
                'dependentExtensions', 'replacers', 'fallbackMessages', 'resolver', 'excludeUnvalidatedArrayKeys']],
            'blade.compiler' => [\Illuminate\View\Compilers\BladeCompiler::class, ['extensions', 'customDirectives',
                'conditions', 'precompilers', 'echoHandlers', 'classComponentAliases', 'classComponentNamespaces',
                'anonymousComponentPaths', 'anonymousComponentNamespaces']],
        ] as $abstract => [$class, $properties]) {
            if ($app->resolved($abstract) && ($service = $app->make($abstract)) instanceof $class) {
                $this->restoreRegistries[] = $this->restorer($service, (fn () => array_intersect_key(
                    get_object_vars($this), array_flip($properties)))->call($service));
            }
        }
        if (isset($this->boot['view']) && $this->boot['view'] instanceof \Illuminate\View\Factory) {
            // 'app', '__env' and what providers shared
            $this->restoreViewShared = $this->restorer($this->boot['view'], ['shared' => $this->boot['view']->getShared()]);
        }
        $this->locale = (string) $app->getLocale();
        if (isset($this->boot['translator']) && method_exists($this->boot['translator'], 'getFallback')) {
            $this->fallbackLocale = $this->boot['translator']->getFallback();
        }
        $url = $this->boot['url'] ?? null;
        if ($url instanceof \Illuminate\Routing\UrlGenerator) {
            $state = (fn () => array_diff_key(get_object_vars($this), ['request' => 1, 'routes' => 1,
                'routeGenerator' => 1, 'cachedRoot' => 1, 'cachedScheme' => 1]))->call($url);
            $caches = array_values(array_filter(['cachedRoot', 'cachedScheme', 'routeGenerator'],
                static fn (string $property) => property_exists($url, $property)));
            $defaults = $url->getDefaultParameters();
            $this->restoreUrl = \Closure::bind(function () use ($state, $caches, $defaults): void {
                foreach ($state as $property => $value) {
                    if ($this->$property !== $value) {
                        $this->$property = $value;
                    }
                }
                foreach ($caches as $cache) {
                    $this->$cache = null;
                }
                if ($defaults !== []) {
                    $this->defaults($defaults); // kept by the route URL generator just dropped
                }
            }, $url, get_class($url));
        }
        if (isset($this->boot['cache'])) {
            $this->cacheStores = \Closure::bind(fn (): array => $this->stores, $this->boot['cache'],
                get_class($this->boot['cache']));
        }
        $this->tagged = (fn () => $this->tags['askr.reset'] ?? [])->call($app);
        $this->once = class_exists(\Illuminate\Support\Once::class); // Laravel 11+: asked once, not per request
    }

    /**
     * Eloquent's static boot state: which models booted, their global scopes and trait
     * initializers (what Model::clearBootedModels() and bootIfNotBooted() touch).
     */
    private static function modelState(): array
    {
        return \Closure::bind(static function (): array {
            $state = [];
            foreach (['booted', 'bootedCallbacks', 'globalScopes', 'traitInitializers'] as $property) {
                if (property_exists(self::class, $property)) {
                    $state[$property] = self::$$property;
                }
            }
            return $state;
        }, null, \Illuminate\Database\Eloquent\Model::class)();
    }

    /**
     * A closure bound to $object that puts back its properties in $state (name => value), each
     * only if its value is no longer identical to the one in $state.
     */
    private function restorer(object $object, array $state): \Closure
    {
        return \Closure::bind(function () use ($state): void {
            foreach ($state as $property => $value) {
                if ($this->$property !== $value) {
                    $this->$property = $value;
                }
            }
        }, $object, get_class($object));
    }

    /**
     * Closes connection $name of $db, so that it opens again when next used: at its next query,
     * and also when code asks for its PDO first (a health check's DB::connection()->getPdo(),
     * which after disconnect() alone returns null). Connects nothing now: the template holds no
     * database socket when it forks.
     */
    public static function disconnect(\Illuminate\Database\DatabaseManager $db, string $name): void
    {
        $db->disconnect($name);
        $connection = $db->getConnections()[$name] ?? null;
        if ($connection instanceof \Illuminate\Database\Connection) {
            $connection->setPdo(static function () use ($connection) {
                $connection->reconnect(); // the manager's reconnector: a fresh connection's (lazy) PDO
                return $connection->getPdo();
            });
        }
    }

    /**
     * Every reset, after each response has gone out. Each line says what would otherwise reach
     * the next request.
     */
    public function resetAfterRequest(): void
    {
        $app = $this->app;
        $boot = $this->boot;

        // The container's sandbox (as Octane's ApplicationSnapshot: every property of the app as
        // after boot): instances, bindings, aliases, tags, resolving/rebinding callbacks,
        // terminating callbacks a request added are dropped, and singletons it built first are
        // built again by the next one. The request stays bound on purpose: Kernel::handle()
        // binds the next one with instance(), which fires the rebinding callbacks (url, auth, …)
        // only for a bound abstract; unbound, global middleware would see this request through
        // url().
        ($this->restoreContainer)($this->container);
        if (method_exists($app, 'forgetScopedInstances')) {
            $app->forgetScopedInstances();             // $app->scoped(): per request by definition
        }
        $app->forgetInstance('auth.driver');           // the default guard, with its user
        \Illuminate\Support\Facades\Facade::clearResolvedInstances(); // facades cache their roots

        // The router: the route this request matched caches its controller, built with this
        // request (or a service holding it) in its constructor, for the next visitor of that route
        // (Octane flushes it too); and a request no route matches (a 404) would see this one's
        // route and parameters as current. Other routes' controllers were flushed after theirs.
        if (isset($boot['router'])) {
            $route = $boot['router']->current();
            if ($route instanceof \Illuminate\Routing\Route) {
                if (method_exists($route, 'flushController')) {
                    $route->flushController();
                } else {
                    (fn () => $this->controller = null)->call($route);
                }
            }
            ($this->flushRouter)();
        }

        // config([...]) writes: put back every item, in place (managers hold this Repository).
        if ($this->restoreConfig !== null) {
            ($this->restoreConfig)();
        }
        // Event::listen() during a request: the listener would run for every later visitor.
        if ($this->restoreListeners !== null) {
            ($this->restoreListeners)();
        }
        // Models register their listeners (and global scopes) in boot()/booted(), once per
        // process: one first used in this request registered them with the listeners just dropped,
        // so it must boot again. Models booted at boot keep theirs.
        if ($this->restoreModels !== null) {
            ($this->restoreModels)();
        }
        // Gate abilities, policies, before/after callbacks; validator extensions; Blade directives.
        foreach ($this->restoreRegistries as $restore) {
            $restore();
        }
        // An open transaction holds its locks (SQLite's write lock, row locks) and would swallow
        // the next request's writes. A connection lost meanwhile (MySQL's wait_timeout) cannot
        // roll back: Laravel then counts no transaction, and it is closed, to reconnect at its next
        // query (the server rolled back when it went). Any other failure leaves the worker's
        // state unknown, and it exits. (After the listeners: rolling back dispatches an event.)
        if (isset($boot['db'])) {
            foreach ($boot['db']->getConnections() as $name => $connection) {
                if ($connection->transactionLevel() > 0) {
                    try {
                        $connection->rollBack(0);
                    } catch (\Throwable $e) {
                        if ($connection->transactionLevel() > 0) {
                            throw $e;
                        }
                        self::disconnect($boot['db'], (string) $name);
                        continue;
                    }
                }
                $connection->flushQueryLog();                 // DB::enableQueryLog(): grows forever
                $connection->forgetRecordModificationState(); // "a write happened": sticky reads
                if (method_exists($connection, 'resetTotalQueryDuration')) { // Laravel 9+:
                    $connection->resetTotalQueryDuration(); // whenQueryingForLongerThan() counts per request,
                }
                if (method_exists($connection, 'restoreAlreadyRunQueryDurationHandlers')) {
                    $connection->restoreAlreadyRunQueryDurationHandlers(); // and fires once per request
                }
            }
        }

        // Sessions: StartSession reuses the manager's Store and merges what it reads into the
        // attributes the Store holds, so a request without a cookie would get the previous
        // visitor's session. Emptied in place, with a new id: the Redirector and others hold
        // this very object. (session.store is the default driver, so it is among them.) A store
        // the request left as the last reset did (the same id, no attributes: start() always
        // adds a _token) is left as it is: a new id costs a system call for random bytes.
        if (isset($boot['session'])) {
            foreach ($boot['session']->getDrivers() as $name => $store) {
                if (($this->sessionIds[$name] ?? null) !== $store->getId() || $store->all() !== []) {
                    $store->flush();
                    $store->setId(null);
                    $this->sessionIds[$name] = $store->getId();
                }
                $handler = $store->getHandler();
                if ($handler instanceof \Illuminate\Session\DatabaseSessionHandler) {
                    $handler->setExists(false); // read() sets it, never clears it: a new session's row would be "updated"
                }
            }
        }
        // Cookie::queue(): AddQueuedCookiesToResponse copies the queue but never empties it.
        if (isset($boot['cookie'])) {
            $boot['cookie']->flushQueuedCookies();
        }
        // Guards cache the user they resolved; Gate asks auth for the user, so it follows.
        if (isset($boot['auth'])) {
            $boot['auth']->forgetGuards();
        }
        // Views: sections, stacks and components of a render an exception cut short; and
        // View::share() (ShareErrorsFromSession shares the visitor's errors) back to boot's.
        if ($this->restoreViewShared !== null) {
            $boot['view']->flushState();
            ($this->restoreViewShared)();
        }
        // App::setLocale(): config is back already; setLocale() again puts back the translator's,
        // and dispatches LocaleUpdated (Carbon's Laravel provider, when registered, puts back
        // Carbon's). Then the fallback locale.
        if (isset($boot['translator'])) {
            $translator = $boot['translator'];
            if ((string) $translator->getLocale() !== $this->locale) {
                $app->setLocale($this->locale);
            }
            if ($this->fallbackLocale !== null && $translator->getFallback() !== $this->fallbackLocale) {
                $translator->setFallback($this->fallbackLocale);
            }
            if (method_exists($translator, 'flushParsedKeys')) {
                $translator->flushParsedKeys(); // a cache of every key ever parsed: memory
            }
        }
        // Log::withContext() is per channel and lasts for the process; Monolog handlers that
        // buffer (Buffer, FingersCrossed, …) reset; Log::shareContext() (10+); Context (11+).
        if (isset($boot['log'])) {
            $log = $boot['log'];
            foreach ($log->getChannels() as $channel) {
                if (method_exists($channel, 'withoutContext')) {
                    $channel->withoutContext();
                }
                $logger = method_exists($channel, 'getLogger') ? $channel->getLogger() : null;
                if ($logger instanceof \Monolog\ResettableInterface) {
                    $logger->reset();
                }
            }
            if (method_exists($log, 'flushSharedContext')) {
                $log->flushSharedContext();
            }
        }
        if ($app->resolved(\Illuminate\Log\Context\Repository::class)) {
            $app[\Illuminate\Log\Context\Repository::class]->flush();
        }
        // The "array" cache driver is a per-request cache: what one visitor cached, another read.
        if ($this->cacheStores !== null) {
            foreach (($this->cacheStores)() as $store) {
                $store = $store instanceof \Illuminate\Cache\Repository ? $store->getStore() : null;
                if ($store instanceof \Illuminate\Cache\ArrayStore) {
                    $store->flush();
                }
            }
        }
        // URL::forceRootUrl(), forceScheme(), defaults(), formatHostUsing() last for the process.
        if ($this->restoreUrl !== null) {
            ($this->restoreUrl)();
        }
        \Illuminate\Support\Str::flushCache(); // snake/camel/studly caches: memory
        if ($this->once) {
            \Illuminate\Support\Once::flush(); // once() results are per request (Laravel 11+)
        }
        if ($app->resolved(\Illuminate\Foundation\Vite::class)) {
            $vite = $app[\Illuminate\Foundation\Vite::class];
            if (method_exists($vite, 'flush')) {
                $vite->flush(); // preloaded assets, nonce (9+)
            }
        }

        // First-party packages, when installed (from their public APIs, as Octane calls them;
        // untested here: none is installed on the test machine). Sanctum keeps nothing beyond
        // its guard, which forgetGuards() dropped.
        if ($app->resolved(\Livewire\LivewireManager::class)) {
            $livewire = $app[\Livewire\LivewireManager::class];
            if (method_exists($livewire, 'flushState')) {
                $livewire->flushState(); // components rendered, the current component
            }
        }
        if ($app->resolved(\Inertia\ResponseFactory::class)) {
            $inertia = $app[\Inertia\ResponseFactory::class];
            if (method_exists($inertia, 'flushShared')) {
                $inertia->flushShared(); // Inertia::share(): props of this visitor
            }
        }
        if ($app->resolved(\Laravel\Scout\EngineManager::class)) {
            $scout = $app[\Laravel\Scout\EngineManager::class];
            if (method_exists($scout, 'forgetEngines')) {
                $scout->forgetEngines();
            }
        }
        if ($app->resolved(\Laravel\Socialite\Contracts\Factory::class)) {
            $socialite = $app[\Laravel\Socialite\Contracts\Factory::class];
            if (method_exists($socialite, 'forgetDrivers')) {
                $socialite->forgetDrivers(); // providers hold the request and the user's tokens
            }
        }

        // The app's own: services tagged askr.reset (at boot) that were resolved at boot; one a
        // request built was dropped with the sandbox above.
        foreach ($this->tagged as $abstract) {
            if ($app->resolved($abstract)) {
                $service = $app->make($abstract);
                if (method_exists($service, 'reset')) {
                    $service->reset();
                } elseif (is_callable($service)) {
                    $service();
                }
            }
        }
    }
}

$worker = Laravel::boot(getenv('ASKR_APP_BASE'));
$app = $worker->app;
$kernel = $worker->kernel;

// Database connections are not shared across a fork. A forked worker would inherit the template's
// PDO, i.e. its connection: for MySQL/MariaDB and PostgreSQL one socket shared by several processes
// (their queries and answers interleave); for SQLite the same file descriptors, page cache and
// SQLite's in-memory record of the POSIX locks the template holds. fcntl() locks are not inherited
// across fork(), so a worker using that handle believes it holds locks it does not (see "Carrying
// an open database connection across a fork()" in sqlite.org/howtocorrupt.html). Then nothing
// stops one process from closing "the last" connection while others still write: it checkpoints
// and deletes the WAL under them, and their committed writes are lost (seen with the template
// killed under load and --max-requests). So the template closes every connection before it forks
// (a connection closed by a child would send MySQL's or PostgreSQL's goodbye on the template's
// socket), and each worker closes any it still has before its first request. disconnect(), not
// purge(): the Connection objects stay, and reconnect at their next query; services built at boot
// hold them (the database session handler, cache and queue stores), and a purged one would stay
// without a PDO. Redis connections are forgotten the same way (Laravel opens them again on use).
// Outside CoW mode this costs one reconnect.
$disconnect = static function () use ($app): void {
    if ($app->resolved('db')) {
        foreach (array_keys($app['db']->getConnections()) as $name) {
            Laravel::disconnect($app['db'], (string) $name);
        }
    }
    if ($app->resolved('redis') && method_exists($app['redis'], 'connections')) {
        foreach (array_keys($app['redis']->connections() ?? []) as $name) {
            $app['redis']->purge($name); // untested here: no Redis on the test machine
        }
    }
};
askr_on_worker_start($disconnect);

// The runtime has set up $_SERVER, $_GET, $_POST, $_COOKIE, $_FILES and php://input as php-fpm
// would, so Request::capture() works unchanged. The response is sent as Response::send() does,
// without the flush() that ends it there (Symfony 6.4's send(flush: false)): askr's runtime sends
// the whole response in one write when the handler returns, with a Content-Length, where a flush()
// would stream it (Head, Body, then End: more writes here and a chunked answer from askrd). The
// app's own output buffers are ended then too, as send() would have.
$handler = static function () use ($kernel): void {
    $request = Request::capture();
    $response = $kernel->handle($request); // binds $request as app('request'): url, auth, … follow
    $response->sendHeaders();
    $response->sendContent();
    // Terminable middleware and terminating callbacks (dispatchAfterResponse() jobs …) run after
    // the client has its response (askr_defer(): after the End frame), as under php-fpm, where
    // send() calls fastcgi_finish_request().
    $terminate = static fn () => $kernel->terminate($request, $response);
    askr_defer($terminate) || $terminate();
};

$disconnect();
askr_cow_ready();
while (askr_handle_request($handler)) {
    // Runs after the response has gone out.
    try {
        $worker->resetAfterRequest();
    } catch (\Throwable $e) {
        $route = ($_SERVER['REQUEST_METHOD'] ?? '?') . ' ' . explode('?', (string) ($_SERVER['REQUEST_URI'] ?? '?'), 2)[0];
        Laravel::fail("a reset after $route failed, so this worker's state is unknown: it exits and askrd starts "
            . 'another: ' . Laravel::oneLine($e));
    }
}
