<?php

declare(strict_types=1);

namespace App\Controller;

use Symfony\Component\HttpFoundation\File\UploadedFile;
use Symfony\Component\HttpFoundation\JsonResponse;
use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\StreamedResponse;
use Symfony\Component\HttpKernel\Kernel;

/** JSON answers about the request, its body, an upload and the session; a streamed response. */
final class ApiController
{
    public function json(Request $request): JsonResponse
    {
        return new JsonResponse([
            'framework' => 'Symfony',
            'version' => Kernel::VERSION,
            'method' => $request->getMethod(),
            'path' => $request->getPathInfo(),
            'query' => $request->query->all(),
            'header' => $request->headers->get('X-Askr-Demo'),
            'pid' => getmypid(),
        ]);
    }

    /** Hashes the raw body as it reads it: the body is never held in memory as one string. */
    public function echo(Request $request): JsonResponse
    {
        $body = $request->getContent(true); // a stream over php://input
        $hash = hash_init('sha1');
        $length = hash_update_stream($hash, $body);
        fclose($body);

        return new JsonResponse(['sha1' => hash_final($hash), 'length' => $length, 'pid' => getmypid()]);
    }

    public function upload(Request $request): JsonResponse
    {
        $file = $request->files->get('f');
        if (!$file instanceof UploadedFile) {
            return new JsonResponse(['error' => 'no file in field f'], 400);
        }
        $ok = $file->getError() === UPLOAD_ERR_OK;

        return new JsonResponse([
            // isValid() also asks is_uploaded_file() whether PHP itself received this file.
            'valid' => $file->isValid(),
            'error' => $file->getError(),
            'size' => $ok ? $file->getSize() : 0,
            'sha1' => $ok ? sha1_file($file->getPathname()) : null,
            'name' => $file->getClientOriginalName(),
            'client_mime' => $file->getClientMimeType(),
            'mime' => $ok ? $file->getMimeType() : null, // guessed from the contents
        ]);
    }

    public function session(Request $request): JsonResponse
    {
        $session = $request->getSession();
        $counter = (int) $session->get('counter', 0) + 1;
        $session->set('counter', $counter);

        return new JsonResponse(['counter' => $counter, 'pid' => getmypid()]);
    }

    /** Five lines, each flushed to the client as it is produced (?gap_ms=N waits between them). */
    public function stream(Request $request): StreamedResponse
    {
        $gap = min(1000, max(0, $request->query->getInt('gap_ms')));

        return new StreamedResponse(static function () use ($gap): void {
            for ($i = 1; $i <= 5; $i++) {
                echo "line $i\n";
                flush();
                if ($i < 5) {
                    usleep($gap * 1000);
                }
            }
        }, 200, ['Content-Type' => 'text/plain; charset=UTF-8']);
    }
}
