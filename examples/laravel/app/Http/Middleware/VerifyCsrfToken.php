<?php

namespace App\Http\Middleware;

use Illuminate\Foundation\Http\Middleware\VerifyCsrfToken as Middleware;

class VerifyCsrfToken extends Middleware
{
    /** URIs exempt from CSRF verification (the JSON API lives in the "api" group, which has none). */
    protected $except = [];
}
