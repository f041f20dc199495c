<?php
// The names of the process environment's variables (getenv()).
header('Content-Type: application/json');
echo json_encode(array_keys(getenv())), "\n";
