<?php
// A worker whose own classes have the names of askr's runtime classes, in namespace Askr: the
// runtime (prepended before this file) keeps its classes in Askr\Runtime, so these still load.
// TestAppAskrNames serves with it.

declare(strict_types=1);

namespace Askr;

final class Request
{
    public static function name(): string
    {
        return self::class;
    }
}
class Channel {}
class Session {}
class Output {}
class Worker {}
class Template {}
class Log {}
class PhpStream {}
class Paranoid {}

$classes = [Channel::class, Session::class, Output::class, Worker::class, Template::class, Log::class, PhpStream::class, Paranoid::class];

while (\askr_handle_request(static function () use ($classes): void {
    \header('X-App-Class: ' . Request::name());
    $ours = \array_filter($classes, static fn (string $c): bool => (new \ReflectionClass($c))->getFileName() === __FILE__);
    echo \count($ours), ' ', $_GET['q'] ?? '', ' ', \file_get_contents('php://input');
})) {
}
