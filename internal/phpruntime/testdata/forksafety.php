<?php
// Run by php-cgi in plain CGI mode (see TestForkSafety*): opens what the test names in its
// environment, then prints what the fork-safety check finds, as JSON. ASKR_TEST_CHECK=1 runs
// ForkSafety::check() instead (ASKR_FORK_SAFETY decides what it does).
declare(strict_types=1);

require getenv('ASKR_RUNTIME_FILE'); // defines the classes; does nothing more outside askrd

use Askr\Runtime\ForkSafety;

$dir = (string) getenv('ASKR_TEST_DIR');
$held = [];
// What must be reported: a TCP connection and a Unix socket connection (to the test's listeners),
// an SQLite database, a pending alarm, a SIGTERM handler.
$held[] = stream_socket_client('tcp://' . getenv('ASKR_TEST_TCP'), $errno, $errstr, 5) ?: exit("tcp: $errstr\n");
if (getenv('ASKR_TEST_CHECK') === '1') {
    ForkSafety::check();
    echo json_encode(['checked' => true]);
    exit;
}
if (getenv('ASKR_TEST_CHECK') === 'promoted') {
    // A worker promoted to template (refork): its hooks set a handler and an alarm, which are undone
    // and not reported; the connection they left open is, worded for a refork.
    pcntl_alarm(100);
    pcntl_signal(SIGTERM, static function (): void {});
    ForkSafety::check(true);
    echo json_encode(['alarm' => pcntl_alarm(0), 'sigterm' => pcntl_signal_get_handler(SIGTERM)]);
    exit;
}
$held[] = stream_socket_client("unix://$dir/mysqld.sock", $errno, $errstr, 5) ?: exit("unix: $errstr\n");
$pdo = null;
if (extension_loaded('pdo_sqlite')) {
    $pdo = new PDO("sqlite:$dir/app.sqlite");
    $pdo->exec('PRAGMA journal_mode=WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1)');
}
pcntl_alarm(100);
pcntl_signal(SIGTERM, static function (): void {});
// What must not be: listening sockets, a UDP socket, a plain file, a handler for another signal;
// and askrd's channel (here a Unix socket connection to a path in ASKR_COW_SOCKET's directory).
$held[] = stream_socket_server('tcp://127.0.0.1:0');
$held[] = stream_socket_server("unix://$dir/listening.sock");
$held[] = stream_socket_client('udp://127.0.0.1:9');
$held[] = fopen("$dir/notes.db.txt", 'w');
$held[] = stream_socket_client('unix://' . getenv('ASKR_COW_SOCKET'), $errno, $errstr, 5) ?: exit("askrd: $errstr\n");
pcntl_signal(SIGUSR1, static function (): void {});
// An app's error handler that throws must not see the check's own warnings.
set_error_handler(static function (int $no, string $msg): never { throw new ErrorException($msg, 0, $no); });

$found = ForkSafety::find();
$alarm = pcntl_alarm(0); // the check put it back

// Closed, all of it: nothing left to report.
$held = [];
$pdo = null;
pcntl_signal(SIGTERM, SIG_DFL);
$after = ForkSafety::find();

// The decoding of /proc/net/tcp{,6} addresses.
$address = (new ReflectionClass(ForkSafety::class))->getMethod('address');
$address->setAccessible(true);
$decoded = [];
foreach (['0100007F:0CEA', '0A01A8C0:1538', '00000000000000000000000001000000:18EB', '0000000000000000FFFF00000100007F:2382'] as $hex) {
    $decoded[$hex] = implode(':', $address->invoke(null, $hex));
}
header('Content-Type: application/json');
echo json_encode(['found' => $found, 'alarm' => $alarm, 'after' => $after, 'decoded' => $decoded, 'sqlite' => $pdo !== null || extension_loaded('pdo_sqlite')]);
