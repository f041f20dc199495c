<?php
// A GET with a query string: echoes what PHP made of it.
declare(strict_types=1);
header('Content-Type: application/json');
echo json_encode([
    'method' => $_SERVER['REQUEST_METHOD'],
    'query' => $_SERVER['QUERY_STRING'],
    'get' => $_GET,
]), "\n";
