<?php
// A directory's index.
require dirname(__DIR__) . '/request.php';
