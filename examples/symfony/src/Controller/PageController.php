<?php

declare(strict_types=1);

namespace App\Controller;

use Symfony\Component\HttpFoundation\JsonResponse;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\Response;
use Symfony\Component\HttpKernel\Kernel;

/** The HTML page, arbitrary status codes and a controller that throws. */
final class PageController
{
    public function home(Request $request): Response
    {
        $name = htmlspecialchars((string) $request->query->get('name', 'world'), ENT_QUOTES);
        $version = Kernel::VERSION;
        $php = PHP_VERSION;
        $sapi = PHP_SAPI;
        $pid = getmypid();
        $html = <<<HTML
            <!DOCTYPE html>
            <html lang="en">
            <head><meta charset="utf-8"><title>Symfony on askr</title></head>
            <body>
            <h1>Hello, {$name}!</h1>
            <p>Symfony {$version} on PHP {$php} ({$sapi}), worker pid {$pid}.</p>
            <ul>
              <li><a href="/json?a=1">/json</a>: the request as JSON</li>
              <li>POST /echo: the SHA-1 and length of the body</li>
              <li>POST /upload (file field f): what Symfony makes of the upload</li>
              <li><a href="/session">/session</a>: a counter in the session</li>
              <li><a href="/stream">/stream</a>: a streamed response</li>
              <li><a href="/status/418">/status/418</a>, <a href="/exception">/exception</a></li>
            </ul>
            </body>
            </html>
            HTML;

        return new Response($html);
    }

    public function status(int $code): JsonResponse
    {
        return new JsonResponse(['status' => $code], $code);
    }

    public function exception(): never
    {
        throw new \RuntimeException('thrown on purpose by the /exception route');
    }
}
