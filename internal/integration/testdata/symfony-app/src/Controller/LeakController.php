<?php

declare(strict_types=1);

namespace LeakTest\Controller;

use LeakTest\RequestLog;
use LeakTest\WorkerTally;
use Symfony\Component\HttpFoundation\JsonResponse;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\Response;
use Symfony\Component\HttpFoundation\StreamedResponse;

/**
 * Routes that leave state behind in a long-lived worker, and report what they find of the state
 * earlier requests left. Every answer says which worker served it and how many requests that
 * worker had served, so a test can tell a reset from a fresh process.
 */
final class LeakController
{
    public function __construct(private RequestLog $log, private WorkerTally $tally)
    {
    }

    /** GET /session: a counter in the session, incremented. */
    public function session(Request $request): JsonResponse
    {
        $session = $request->getSession();
        $counter = (int) $session->get('counter', 0) + 1;
        $session->set('counter', $counter);

        return $this->json(['counter' => $counter]);
    }

    /**
     * GET /session/open: starts the session and sets the counter to 100 while the response is sent,
     * after Symfony's session listener has had its turn (kernel.response), so nothing in Symfony
     * saves or closes it: the request ends with the session open.
     */
    public function sessionOpen(Request $request): StreamedResponse
    {
        $this->tally->served++;

        return new StreamedResponse(function () use ($request): void {
            $session = $request->getSession();
            $session->set('counter', 100);
            echo json_encode(['session_id' => $session->getId(), 'open' => session_status() === PHP_SESSION_ACTIVE, 'pid' => getmypid()]);
        }, 200, ['Content-Type' => 'application/json']);
    }

    /**
     * GET /seen[?add=x]: adds x to the request log (tagged kernel.reset), then reports the log and
     * what else a request could have left: the default timezone, the session module's state.
     */
    public function seen(Request $request): JsonResponse
    {
        if ($request->query->has('add')) {
            $this->log->add((string) $request->query->get('add'));
        }

        return $this->json([
            'seen' => $this->log->all(),
            'timezone' => date_default_timezone_get(),
            'session_status' => session_status(),
            'session_id' => session_id(),
        ]);
    }

    /**
     * GET /throw?add=x[&late=1]: leaves state everywhere (request log, session counter 50, the
     * default timezone), then throws: in the controller, where Symfony turns it into a 500, or with
     * late=1 while the response is sent, out of Kernel::handle() and the worker's handler.
     */
    public function throw(Request $request): Response
    {
        $this->tally->served++;
        $this->log->add((string) $request->query->get('add', 'thrown'));
        $request->getSession()->set('counter', 50);
        date_default_timezone_set('Pacific/Chatham');
        if ($request->query->getBoolean('late')) {
            return new StreamedResponse(static function (): void {
                echo 'half a response';
                throw new \RuntimeException('thrown on purpose while the /throw?late=1 response was sent');
            });
        }
        throw new \RuntimeException('thrown on purpose by the /throw route');
    }

    /** GET /reset-fails: the request log's reset after this request throws. */
    public function resetFails(): JsonResponse
    {
        $this->log->failNextReset();

        return $this->json([]);
    }

    private function json(array $data): JsonResponse
    {
        $this->tally->served++;

        return new JsonResponse($data + ['pid' => getmypid(), 'served' => $this->tally->served]);
    }
}
