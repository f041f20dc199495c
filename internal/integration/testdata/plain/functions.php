<?php
// Which SAPI functions this PHP offers.
echo json_encode(['fastcgi_finish_request' => function_exists('fastcgi_finish_request')]), "\n";
