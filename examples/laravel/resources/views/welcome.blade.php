<!DOCTYPE html>
<html lang="en">
<head>
    <meta charset="utf-8">
    <title>{{ config('app.name') }}</title>
</head>
<body>
    <h1>Hello, {{ $name }}!</h1>
    <p>Laravel {{ $laravel }} on PHP {{ $php }} ({{ $sapi }}), served by process {{ $pid }}
        (request {{ $served }} of this process).</p>
    <h2>Routes</h2>
    <ul>
        @foreach ($routes as $route)
            <li><code>{{ $route }}</code></li>
        @endforeach
    </ul>
</body>
</html>
