<?php

declare(strict_types=1);

namespace LeakTest\Controller;

use LeakTest\Hoard;
use LeakTest\StandIn\TokenStorage;
use LeakTest\WorkerTally;
use Symfony\Component\ErrorHandler\DebugClassLoader;
use Symfony\Component\ErrorHandler\ErrorHandler;
use Symfony\Component\HttpFoundation\JsonResponse;
use Symfony\Component\HttpKernel\HttpCache\Store;
use Symfony\Component\HttpKernel\HttpCache\StoreInterface;
use Symfony\Component\HttpFoundation\Request;

/** Routes about how the worker runs the kernel: HTTP cache, kernel.terminate, debug; and leaks for the detector. */
final class WorkerController
{
    public function __construct(private WorkerTally $tally)
    {
    }

    /** GET /cached: cacheable by a shared cache for a minute; says how many requests reached the app. */
    public function cached(): JsonResponse
    {
        $r = new JsonResponse(['served' => ++$this->tally->served, 'pid' => getmypid()]);
        $r->setPublic();
        $r->setSharedMaxAge(60);

        return $r;
    }

    /** GET /cache-keys: how many requests the HTTP cache's store remembers cache keys for (SplObjectStorage by Request). */
    public function cacheKeys(StoreInterface $store): JsonResponse
    {
        return new JsonResponse(['keys' => $store instanceof Store ? (fn (): int => \count($this->keyCache))->call($store) : null]);
    }

    /** GET /terminate?go=G&marker=M: see LeakTest\TerminateListener. */
    public function terminate(): JsonResponse
    {
        return new JsonResponse(['pid' => getmypid()]);
    }

    /** GET /debug: Symfony's debug tools in place: the error handler, the DebugClassLoader. */
    public function debug(): JsonResponse
    {
        $handler = set_error_handler('var_dump');
        restore_error_handler();
        $loader = false;
        foreach (spl_autoload_functions() as $fn) {
            $loader = $loader || (\is_array($fn) && $fn[0] instanceof DebugClassLoader);
        }

        return new JsonResponse([
            'error_handler' => \is_array($handler) && \is_object($handler[0]) ? \get_class($handler[0]) : get_debug_type($handler),
            'symfony_error_handler' => \is_array($handler) && $handler[0] instanceof ErrorHandler,
            'debug_class_loader' => $loader,
        ]);
    }

    /** GET /leak: a leak on purpose, for askr's detector: a static array grows. */
    public function leak(): JsonResponse
    {
        Hoard::$items[] = 'x';

        return new JsonResponse(['items' => \count(Hoard::$items)]);
    }

    /** GET /login: leaves a new token in the token storage (not reset here), for askr's detector. */
    public function login(TokenStorage $tokens): JsonResponse
    {
        $tokens->setToken(new \stdClass());

        return new JsonResponse(['pid' => getmypid()]);
    }
}
