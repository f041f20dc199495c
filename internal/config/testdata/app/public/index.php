<?php
echo "original askr fixture\n";
