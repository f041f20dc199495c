<?php
// A POST: reports the body's length and hash, as php://input and as $_POST.
declare(strict_types=1);
$body = file_get_contents('php://input');
echo 'length=', strlen($body), "\n";
echo 'md5=', md5($body), "\n";
echo 'post=', json_encode($_POST), "\n";
