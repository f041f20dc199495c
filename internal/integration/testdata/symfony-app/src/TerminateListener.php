<?php

declare(strict_types=1);

namespace LeakTest;

use Symfony\Component\EventDispatcher\EventSubscriberInterface;
use Symfony\Component\HttpKernel\Event\TerminateEvent;
use Symfony\Component\HttpKernel\KernelEvents;

/**
 * kernel.terminate for GET /terminate?go=G&marker=M: waits (up to 5 s) for the file G, which the
 * test creates once it has the whole response, then writes to M whether it saw G. So M says "after
 * the response" only if the client had the response while this listener ran.
 */
final class TerminateListener implements EventSubscriberInterface
{
    public static function getSubscribedEvents(): array
    {
        return [KernelEvents::TERMINATE => 'onTerminate'];
    }

    public function onTerminate(TerminateEvent $event): void
    {
        $q = $event->getRequest()->query;
        if ($event->getRequest()->attributes->get('_route') !== 'terminate' || !$q->has('go') || !$q->has('marker')) {
            return;
        }
        $go = (string) $q->get('go');
        for ($i = 0; $i < 500 && !is_file($go); $i++) {
            usleep(10000);
        }
        file_put_contents((string) $q->get('marker'), is_file($go) ? 'after the response' : 'the client had no response');
    }
}
