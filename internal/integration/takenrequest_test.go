package integration

// A request a worker has read is that worker's: if it dies of it, the request gets one answer
// (500, or 502) and is never given to another worker, however the worker dies. Only a worker that
// ends before it read a request says Bye (see betweenrequests_test.go), and only the process that
// said Hello on the channel: a child it forks does not speak for it.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVarsOfDeath: a GET with more query variables than max_input_vars (1000) makes PHP warn
// while the runtime sets up $_GET, before the app's handler runs; an app whose error handler
// turns warnings into exceptions (Laravel's, Symfony's debug handler) throws there, or one that
// exits there ends the worker. Either way the request ran on one worker: the error handler
// counts the workers that saw it.
func TestVarsOfDeath(t *testing.T) {
	for _, c := range []struct {
		name, onWarning string
		want            int // the request's status
		wantBody        string
	}{
		// The exception is an uncaught one's: 500, the worker is kept.
		{"throw", "throw new ErrorException($str, 0, $no, $file, $line);", 500, ""},
		// exit() while the request is the worker's: its response so far (none: 200, empty), the
		// worker is replaced, as an exit() in the handler.
		{"exit", "exit(1);", 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			counter := filepath.Join(dir, "saw")
			script := filepath.Join(dir, "w.php")
			src := fmt.Sprintf(`<?php
declare(strict_types=1);
set_error_handler(static function (int $no, string $str, string $file = '', int $line = 0): bool {
    if (str_contains($str, 'Input variables exceeded')) {
        file_put_contents(%q, getmypid() . "\n", FILE_APPEND | LOCK_EX);
    }
    %s
});
while (askr_handle_request(static function (): void { echo 'ok ', count($_GET); })) {
}
`, counter, c.onWarning)
			if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			s := startAskrd(t, opts{script: script, args: []string{"--workers", "2"}})
			var q strings.Builder
			for i := range 1100 {
				fmt.Fprintf(&q, "&v%d=1", i)
			}
			r := s.get("/?" + q.String()[1:])
			if r.status != c.want || r.body != c.wantBody {
				t.Errorf("GET with 1100 query variables = %d %q; want %d %q", r.status, r.body, c.want, c.wantBody)
			}
			b, err := os.ReadFile(counter)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(b), "\n"); n != 1 {
				t.Errorf("%d workers ran the request (pids %q); want 1: a request a worker read is never run again", n, strings.Fields(string(b)))
			}
			if r := s.get("/?a=1"); r.status != 200 || r.body != "ok 1" {
				t.Errorf("GET /?a=1 after it = %d %q; want 200 \"ok 1\"", r.status, r.body)
			}
			s.stop()
			if strings.Contains(s.logs.String(), "ended between requests") {
				t.Errorf("the runtime said a worker ended between requests; want none (the request was read)")
			}
		})
	}
}

// TestForkBye: a child the worker forks (pcntl_fork() in an askr_defer() callback) and that exits
// says nothing on the channel it inherited: a Bye from it would make askrd give the worker's next
// request to another worker while the worker, still running, reads and runs it too. Every request
// runs once.
func TestForkBye(t *testing.T) {
	dir := t.TempDir()
	counter := filepath.Join(dir, "ran")
	script := filepath.Join(dir, "w.php")
	src := fmt.Sprintf(`<?php
declare(strict_types=1);
while (askr_handle_request(static function (): void {
    file_put_contents(%q, ($_GET['id'] ?? '?') . ' ' . getmypid() . "\n", FILE_APPEND | LOCK_EX);
    askr_defer(static function (): void {
        $pid = pcntl_fork();
        if ($pid === 0) {
            exit(0);
        }
        if ($pid > 0) {
            pcntl_waitpid($pid, $status);
        }
    });
    echo 'ok ', $_GET['id'] ?? '?';
})) {
}
`, counter)
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startAskrd(t, opts{script: script, args: []string{"--workers", "2"}})
	const requests = 20
	for i := range requests {
		if r := s.get(fmt.Sprintf("/?id=%d", i)); r.status != 200 || r.body != fmt.Sprintf("ok %d", i) {
			t.Errorf("GET /?id=%d = %d %q; want 200 \"ok %d\"", i, r.status, r.body, i)
		}
	}
	s.stop() // every worker has ended: the file is complete
	b, err := os.ReadFile(counter)
	if err != nil {
		t.Fatal(err)
	}
	runs := map[string][]string{}
	for line := range strings.Lines(string(b)) {
		id, pid, _ := strings.Cut(strings.TrimSpace(line), " ")
		runs[id] = append(runs[id], pid)
	}
	for i := range requests {
		if pids := runs[fmt.Sprint(i)]; len(pids) != 1 {
			t.Errorf("request %d ran on workers %v; want exactly one", i, pids)
		}
	}
	if strings.Contains(s.logs.String(), "ended between requests") {
		t.Errorf("a forked child said its worker ended between requests; want no such line")
	}
}
