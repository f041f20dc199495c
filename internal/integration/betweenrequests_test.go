package integration

// Between requests: a worker that ends in its loop body (exit(), break, an uncaught exception, an
// exit() in an askr_defer() callback) after its response has gone loses no request. askrd may
// already have written the next request to it; the worker never read it, says so (Bye), and the
// request is served by another worker instead of getting 502.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// brScripts are worker scripts that end between requests, each in its own way.
var brScripts = map[string]string{
	// A reset that fails and leaves: exit(1) in the loop body after every request.
	"exit": `while (askr_handle_request(static function (): void { echo 'ok ', getmypid(); })) {
    exit(1);
}`,
	// A loop that stops itself after a few requests, as users write for memory.
	"break": `$n = 0;
while (askr_handle_request(static function (): void { echo 'ok ', getmypid(); })) {
    if (++$n >= 3) {
        break;
    }
}`,
	// Deferred work that ends the worker after the response has gone.
	"defer": `while (askr_handle_request(static function (): void {
    askr_defer(static function (): void { exit(0); });
    echo 'ok ', getmypid();
})) {
}`,
	// A reset that throws: the worker dies of an uncaught exception in its loop body.
	"throw": `while (askr_handle_request(static function (): void { echo 'ok ', getmypid(); })) {
    throw new RuntimeException('reset failed on purpose');
}`,
}

// The test's name is short: CoW mode's socket path is under its temporary directory.
func TestLeaveBetweenRequests(t *testing.T) {
	const requests, conc = 300, 8
	for _, name := range []string{"exit", "break", "defer", "throw"} {
		for _, workers := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s%d", name, workers), func(t *testing.T) {
				script := filepath.Join(t.TempDir(), name+".php")
				if err := os.WriteFile(script, []byte("<?php\ndeclare(strict_types=1);\n"+brScripts[name]+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				s := startAskrd(t, opts{script: script, args: []string{"--workers", fmt.Sprint(workers)}})
				if st := countStatuses(s.URL+"/", conc, requests, func(b []byte) bool { return strings.HasPrefix(string(b), "ok ") }); st[200] != requests {
					t.Errorf("%d requests to workers that end between requests answered %v (status: count); want all 200", requests, st)
				}
				s.stop()
				// A line for each worker that left: the runtime's at INFO, or PHP's fatal error, which
				// is the event then.
				left := `level=INFO msg="askr: the worker script ended between requests; no request is lost, askrd replaces this worker"`
				if name == "throw" {
					left = `level=ERROR msg="PHP Fatal error:  Uncaught RuntimeException: reset failed on purpose`
				}
				if !strings.Contains(s.logs.String(), left) {
					t.Errorf("askrd's log has no %s", left)
				}
				for line := range strings.Lines(s.logs.String()) {
					// The uncaught exception is PHP's own fatal error, rightly an error; askrd has none.
					if strings.Contains(line, "PHP Fatal error:  Uncaught RuntimeException: reset failed on purpose") {
						continue
					}
					if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
						t.Errorf("askrd logged %q; want no warning or error for a worker that ends between requests", strings.TrimSpace(line))
					}
				}
			})
		}
	}
}

// TestOutputBetweenRequests: what the worker script outputs in its loop body (a reset that
// echoes, a warning with display_errors on) is no part of the next request's response: it is
// dropped with a line in the log, as output while booting is.
func TestOutputBetweenRequests(t *testing.T) {
	script := filepath.Join(t.TempDir(), "loop.php")
	src := `<?php
declare(strict_types=1);
while (askr_handle_request(static function (): void { echo 'req'; })) {
    echo 'between';
}
`
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startAskrd(t, opts{script: script, args: []string{"--workers", "1"}})
	for i := range 3 {
		if r := s.get("/"); r.status != 200 || r.body != "req" {
			t.Errorf("request %d = %d %q; want 200 \"req\" (nothing of the loop body's output)", i, r.status, r.body)
		}
	}
	s.waitLog("output between requests (discarded): between", 10*time.Second)
}
