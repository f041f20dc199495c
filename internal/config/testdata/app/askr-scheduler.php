<?php
// The scheduler script of testdata/original-askr.toml: one run does nothing.
