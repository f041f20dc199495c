<?php
// The front controller: what try_files falls back to.
require __DIR__ . '/request.php';
