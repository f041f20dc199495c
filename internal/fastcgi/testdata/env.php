<?php
// Reports where the process environment shows up.
declare(strict_types=1);
echo json_encode([
    'getenv' => getenv('ASKR_PROBE'),
    'server' => $_SERVER['ASKR_PROBE'] ?? null,
    'env' => $_ENV['ASKR_PROBE'] ?? null,
    'param' => $_SERVER['X_PARAM'] ?? null,
    'getenv_param' => getenv('X_PARAM'),
]), "\n";
file_put_contents('php://stderr', "to php://stderr\n");
file_put_contents('php://stdout', "to php://stdout\n");
