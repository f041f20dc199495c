<?php

declare(strict_types=1);

namespace Doctrine\DBAL;

/**
 * Test stand-in for the part of Doctrine DBAL's Connection that askr's Symfony worker calls
 * (isTransactionActive, getTransactionNestingLevel, rollBack, close); Debian's Symfony has no DoctrineBundle. It records what
 * was done to it. config/bootstrap.php loads it only for Doctrine\DBAL\Connection.
 */
class Connection
{
    public bool $connected = false;
    public int $connectedBy = 0; // the pid that opened the connection
    public int $level = 0;
    public int $closes = 0;
    public int $rollbacks = 0;

    public function connect(): bool
    {
        if (!$this->connected) {
            $this->connected = true;
            $this->connectedBy = getmypid();
        }
        return true;
    }

    public function isConnected(): bool
    {
        return $this->connected;
    }

    public function beginTransaction(): bool
    {
        $this->connect();
        $this->level++;
        return true;
    }

    public function getTransactionNestingLevel(): int
    {
        return $this->level;
    }

    public function isTransactionActive(): bool
    {
        return $this->level > 0;
    }

    public function rollBack(): bool
    {
        if ($this->level === 0) {
            throw new \LogicException('rollBack() without a transaction');
        }
        $this->level--;
        $this->rollbacks++;
        return true;
    }

    public function close(): void
    {
        $this->connected = false;
        $this->closes++;
    }
}
