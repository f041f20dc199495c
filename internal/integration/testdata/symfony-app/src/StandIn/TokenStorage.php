<?php

declare(strict_types=1);

namespace LeakTest\StandIn;

/** Test stand-in for SecurityBundle's token storage (getToken/setToken); Debian has no SecurityBundle. */
final class TokenStorage
{
    private ?object $token = null;

    public function getToken(): ?object
    {
        return $this->token;
    }

    public function setToken(?object $token): void
    {
        $this->token = $token;
    }
}
