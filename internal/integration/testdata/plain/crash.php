<?php
// Kills its own PHP process (as a crash would), before any output.
posix_kill(getmypid(), SIGKILL);
echo "unreachable\n";
