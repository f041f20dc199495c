<?php
// A counter in the session.
declare(strict_types=1);
session_start();
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
header('Content-Type: application/json');
echo json_encode(['n' => $_SESSION['n'], 'name' => session_name(), 'id_length' => strlen(session_id()),
    'status' => session_status()]), "\n";
