<?php

declare(strict_types=1);

namespace LeakTest;

use Doctrine\Persistence\ConnectionRegistry;
use Psr\Container\ContainerInterface;

/** The "doctrine" service as DoctrineBundle shapes it: connection names => public service ids. */
final class Registry implements ConnectionRegistry
{
    private const CONNECTIONS = ['default' => 'doctrine.dbal.default_connection'];

    public function __construct(private ContainerInterface $container)
    {
    }

    public function getDefaultConnectionName()
    {
        return 'default';
    }

    public function getConnection($name = null)
    {
        return $this->container->get(self::CONNECTIONS[$name ?? 'default']);
    }

    public function getConnections()
    {
        return array_map([$this->container, 'get'], self::CONNECTIONS);
    }

    public function getConnectionNames()
    {
        return self::CONNECTIONS;
    }
}
