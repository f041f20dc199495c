<?php
// SOURCE-MARKER: this line must never reach a client; running the script is fine.
echo "ran\n";
