<?php
// The queue script of testdata/original-askr.toml: waits until askrd stops it.
while (true) {
    sleep(1);
}
