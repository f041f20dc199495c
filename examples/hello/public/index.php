<?php echo "front controller (used only without a worker script)\n";
