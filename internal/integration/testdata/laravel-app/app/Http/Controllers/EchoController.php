<?php

namespace Leaks\Http\Controllers;

use Illuminate\Http\Request;

/** Keeps the request it was built with: a worker that cached it would answer B with A's query. */
class EchoController
{
    private $v;

    public function __construct(Request $request)
    {
        $this->v = $request->query('v');
    }

    public function show(Request $request)
    {
        return ['built_with' => $this->v, 'request' => $request->query('v')];
    }
}
