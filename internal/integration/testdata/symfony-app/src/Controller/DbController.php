<?php

declare(strict_types=1);

namespace LeakTest\Controller;

use Doctrine\DBAL\Connection;
use Symfony\Component\HttpFoundation\JsonResponse;
use Symfony\Component\HttpFoundation\Request;

/** Transactions left open, and where the connection was opened (Doctrine stand-in). */
final class DbController
{
    public function __construct(private Connection $db)
    {
    }

    /** GET /db: the connection as this request finds it, then connected (by this process). */
    public function state(): JsonResponse
    {
        $found = ['connected_at_start' => $this->db->isConnected(), 'level' => $this->db->level];
        $this->db->connect();

        return new JsonResponse($found + [
            'connected_by_this_process' => $this->db->connectedBy === getmypid(),
            'closes' => $this->db->closes,
            'rollbacks' => $this->db->rollbacks,
            'pid' => getmypid(),
        ]);
    }

    /** GET /db/begin?n=N: opens N nested transactions and leaves them open; ?throw=1: then throws. */
    public function begin(Request $request): JsonResponse
    {
        for ($i = 0; $i < $request->query->getInt('n', 1); $i++) {
            $this->db->beginTransaction();
        }
        if ($request->query->getBoolean('throw')) {
            throw new \RuntimeException('thrown on purpose inside a transaction');
        }

        return new JsonResponse(['level' => $this->db->level]);
    }
}
