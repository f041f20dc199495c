package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A command a worker or a queue job runs (exec(), shell_exec(), proc_open() without a spec for
// fd 0) gets /dev/null as its stdin, never askrd's channel (fd 0 of a worker; in a CoW fork, the
// template's): reading it would take frames meant for PHP. The extension's askr_ext_stdin_null()
// does it; the channel is read through its own dup.
func TestChildProcessesGetDevNullStdin(t *testing.T) {
	dir := t.TempDir()
	const probe = `"fd0=" . readlink('/proc/self/fd/0') . " child=" . trim((string) shell_exec('readlink /proc/self/fd/0'))`
	worker := filepath.Join(dir, "worker.php")
	queue := filepath.Join(dir, "queue.php")
	os.WriteFile(worker, []byte("<?php\naskr_cow_ready();\nwhile (askr_handle_request(function () { echo "+probe+"; })) {}\n"), 0o644)
	os.WriteFile(queue, []byte("<?php\necho "+probe+", \"\\n\";\nwhile (true) { sleep(1); }\n"), 0o644)
	s := startAskrd(t, opts{script: worker, args: []string{"--workers", "1", "--queue", "1", "--queue-script", queue}})
	for range 3 { // every worker the pool lends
		if r := s.get("/probe"); r.status != 200 || r.body != "fd0=/dev/null child=/dev/null" {
			t.Fatalf("GET /probe = %d %q; want 200 \"fd0=/dev/null child=/dev/null\"", r.status, r.body)
		}
	}
	s.waitLog(`msg="fd0=/dev/null child=/dev/null" role=queue`, 20*time.Second)
	if strings.Contains(s.logs.String(), "socket:[") {
		t.Errorf("a process saw a socket as its stdin:\n%s", s.logs.String())
	}
}
