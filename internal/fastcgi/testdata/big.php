<?php
// A large output: 10 000 numbered lines (120 000 bytes, more than one record holds).
declare(strict_types=1);
header('Content-Type: text/plain');
for ($i = 0; $i < 10000; $i++) {
    printf("line %06d\n", $i);
}
