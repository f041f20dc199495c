<?php

declare(strict_types=1);

namespace Doctrine\Persistence;

/** Test stand-in for doctrine/persistence's ConnectionRegistry (see Connection.php beside it). */
interface ConnectionRegistry
{
    public function getDefaultConnectionName();

    public function getConnection($name = null);

    public function getConnections();

    public function getConnectionNames();
}
