<?php
// The pid of the PHP process serving the request.
echo getmypid();
