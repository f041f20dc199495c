<?php
while (askr_handle_request()) {
    require __DIR__ . "/public/index.php";
}
