<?php
// The fixture's worker script: config tests only check that it exists.
