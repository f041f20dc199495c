package integration

// Faults: a request that kills its worker costs one worker and gets 502 (no retry elsewhere); a
// worker script that cannot boot fails askrd serve at once; $request['body'] is the whole body.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/proc"
)

// faultsScript is testdata/faults.php.
func faultsScript(t testing.TB) string {
	return filepath.Join(repoRoot(t), "internal", "integration", "testdata", "faults.php")
}

// phpProcesses lists the live php-cgi processes that serve requests for askrd: its php-cgi children
// and, in CoW mode, their forked children instead of the template.
func phpProcesses(s *server) map[int]bool {
	out := map[int]bool{}
	var walk func(pid int)
	walk = func(pid int) {
		for _, c := range proc.Children(pid) {
			if proc.Comm(c) != "php-cgi" || !proc.Alive(c) {
				continue
			}
			if kids := proc.Children(c); len(kids) > 0 && cowMode() {
				walk(c) // the template: its children are the workers
				continue
			}
			out[c] = true
		}
	}
	walk(s.cmd.Process.Pid)
	return out
}

// queryOfDeath sends GET path, which kills the PHP process that runs it, to askrd with n
// processes and checks that the client gets 502, exactly one process was replaced and GET next
// is served.
func queryOfDeath(t *testing.T, s *server, n int, path, next string) {
	t.Helper()
	var before map[int]bool
	if !poll(30*time.Second, func() bool { before = phpProcesses(s); return len(before) == n }) {
		t.Fatalf("php-cgi processes before: %v; want %d", before, n)
	}
	if r := s.get(path); r.status != 502 {
		t.Errorf("GET %s (kills its process) = %d %q; want 502", path, r.status, r.body)
	}
	var after map[int]bool
	replaced := func() (gone []int) {
		for pid := range before {
			if !after[pid] {
				gone = append(gone, pid)
			}
		}
		return gone
	}
	if !poll(30*time.Second, func() bool { after = phpProcesses(s); return len(after) == n && len(replaced()) > 0 }) {
		t.Fatalf("php-cgi processes after GET %s: %v (before %v); want %d, one of them new", path, after, before, n)
	}
	if gone := replaced(); len(gone) != 1 {
		t.Errorf("GET %s ended %d processes (%v of %v); want exactly 1: a request that reached PHP is not run again elsewhere",
			path, len(gone), gone, before)
	}
	if r := s.get(next); r.status != 200 {
		t.Errorf("next request = %d %q; want 200", r.status, r.body)
	}
}

// A GET whose worker dies while it has it gets 502, and no other worker runs it (nor dies of it).
func TestQueryOfDeathKillsOneWorker(t *testing.T) {
	s := startAskrd(t, opts{script: faultsScript(t), args: []string{"--workers", "3"}})
	n := 3
	if cowMode() {
		n++ // the template keeps one spare worker forked ahead
	}
	queryOfDeath(t, s, n, "/kill", "/pid")
}

// The same in per-request mode: a script that kills its php-cgi process costs that process only.
func TestPerRequestCrashOnce(t *testing.T) {
	s := startPerRequest(t, "--workers", "3")
	queryOfDeath(t, s, 3, "/crash.php", "/pid.php")
}

// runUnbootable runs askrd serve, which is expected to fail at startup, under a fake NOTIFY_SOCKET,
// and returns its combined output and exit error. It fails the test if askrd runs past the deadline.
func runUnbootable(t *testing.T, n *fakeNotify, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, askrdBinary(t), append([]string{"serve", "--listen", freeAddr(t)}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir(), "NOTIFY_SOCKET="+n.path)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("askrd serve still running after 60s; want it to fail at once:\n%s", out)
	}
	if poll(500*time.Millisecond, func() bool { return !n.first("READY=1").IsZero() }) {
		t.Errorf("askrd sent READY=1 although it could not boot: %v", n.all(""))
	}
	return string(out), err
}

// statusOf is the process's exit status (0 for no error, -1 for no status).
func statusOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

// A worker script with a parse error ends askrd serve with PHP's error and status 1, and never
// READY=1 (under systemd the start fails), in worker and CoW mode alike.
func TestUnbootableScriptFailsServe(t *testing.T) {
	script := filepath.Join(t.TempDir(), "broken.php")
	if err := os.WriteFile(script, []byte("<?php\n$x = ;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--workers", "2", "--root", filepath.Join(repoRoot(t), "examples", "hello", "public"), "--worker-script", script}
	if cowMode() {
		args = append(args, "--cow")
	}
	out, err := runUnbootable(t, newFakeNotify(t), nil, args...)
	if code := statusOf(err); code != 1 {
		t.Errorf("askrd serve with a worker script that does not parse: exit %d (%v); want 1", code, err)
	}
	if !strings.Contains(out, "PHP Parse error:  syntax error") || !strings.Contains(out, "askrd failed") {
		t.Errorf("askrd's output lacks PHP's parse error in its failure:\n%s", out)
	}
	if c := strings.Count(out, "PHP Parse error"); c > 10 {
		t.Errorf("PHP's error appears %d times; want askrd to stop after the first generation:\n%s", c, out)
	}
}

// A worker that does not boot within boot_timeout fails askrd serve too (after boot_timeout).
func TestBootTimeoutFailsServe(t *testing.T) {
	args := []string{"--workers", "1", "--root", filepath.Join(repoRoot(t), "examples", "hello", "public"),
		"--worker-script", filepath.Join(repoRoot(t), "internal", "integration", "testdata", "worker.php")}
	if cowMode() {
		args = append(args, "--cow")
	}
	cfg := filepath.Join(t.TempDir(), "askr.toml")
	if err := os.WriteFile(cfg, []byte("[worker]\nboot_timeout = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runUnbootable(t, newFakeNotify(t), []string{"ASKR_TEST_BOOT_SLEEP=30"}, append(args, "--config", cfg)...)
	if code := statusOf(err); code != 1 || !strings.Contains(out, "within boot_timeout (1s)") {
		t.Errorf("askrd serve with a worker that boots for 30s and boot_timeout 1: exit %d (%v); want 1 naming boot_timeout:\n%s", code, err, out)
	}
}

// Per-request mode: php-cgi processes that never answer (here: a php_cgi that exits at once) end
// askrd serve with their output, as in worker mode.
func TestPerRequestUnstartablePHPFailsServe(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "php-cgi")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'php-cgi: cannot start on purpose' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "askr.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("[worker]\nphp_cgi = %q\n", fake)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runUnbootable(t, newFakeNotify(t), nil, "--workers", "2", "--root", plainRoot(t), "--config", cfg)
	if code := statusOf(err); code != 1 || !strings.Contains(out, "cannot start on purpose") || !strings.Contains(out, "askrd failed") {
		t.Errorf("askrd serve in per-request mode with a php-cgi that exits: exit %d (%v); want 1 with its output:\n%s", code, err, out)
	}
}

// Once a worker has booted, a worker that cannot boot again (the app broke while askrd served)
// is retried with back-off; meanwhile PHP requests get 503 at once and static files are served;
// once the app boots again askrd serves PHP again.
func TestLaterBootFailureKeepsServing(t *testing.T) {
	if cowMode() {
		t.Skip("CoW mode: the template's reboot is TestCowTemplateRebootFailsThenRecovers")
	}
	flag := filepath.Join(t.TempDir(), "fail-boot")
	s := startAskrd(t, opts{args: []string{"--workers", "1"}, env: []string{"ASKR_TEST_BOOT_FAIL_IF=" + flag},
		config: "[server]\nqueue_timeout = 60\n"})
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pidOf(t, s), syscall.SIGKILL)
	s.waitLog("boot failed on purpose", 15*time.Second)
	s.waitLog("worker failed to boot", 15*time.Second)
	if r := s.get("/hello.txt"); r.status != 200 {
		t.Errorf("static file while PHP fails to boot = %d; want 200", r.status)
	}
	start := time.Now()
	r := s.get("/")
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Errorf("PHP request while boot fails = %d (Retry-After %q); want 503 with Retry-After", r.status, r.header.Get("Retry-After"))
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("503 came after %v; want it at once, not after queue_timeout (60s)", d)
	}
	if !poll(10*time.Second, func() bool { return strings.Count(s.logs.String(), "worker failed to boot") >= 3 }) {
		t.Errorf("boot not retried:\n%s", s.logs.String())
	}
	select {
	case <-s.done:
		t.Fatalf("askrd exited (%v) on a boot failure after its workers had booted:\n%s", s.err, s.logs.String())
	default:
	}
	os.Remove(flag)
	if !poll(30*time.Second, func() bool { return s.get("/pid").status == 200 }) {
		t.Errorf("PHP not served again after the app boots again:\n%s", s.logs.String())
	}
}

// bodyAnswer is what faults.php's /body says.
type bodyAnswer struct {
	RequestSHA1   *string `json:"request_body_sha1"`
	RequestLength *int    `json:"request_body_length"`
	PassedLength  int     `json:"passed_body_length"`
	InputSHA1     string  `json:"input_sha1"`
	Peak          int     `json:"peak"`
}

func postBody(t *testing.T, s *server, body []byte) bodyAnswer {
	t.Helper()
	r := s.do(http.MethodPost, "/body", bytes.NewReader(body), "Content-Type", "application/octet-stream")
	var a bodyAnswer
	if err := json.Unmarshal([]byte(r.body), &a); r.status != 200 || err != nil {
		t.Fatalf("POST /body (%d bytes) = %d %q (%v)", len(body), r.status, r.body, err)
	}
	return a
}

// $request['body'] is the whole body whatever its size, as the original askr passes it: a body
// that askrd spooled to a file (over body_buffer_size) is read for the handler.
func TestRequestBodyWholeOverBufferSize(t *testing.T) {
	big := make([]byte, 3<<20)
	rand.Read(big)
	for _, tc := range []struct{ name, config string }{
		{"1M", ""},
		{"4K", "[server]\nbody_buffer_size = \"4K\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startAskrd(t, opts{script: faultsScript(t), args: []string{"--workers", "1"}, config: tc.config})
			for _, body := range [][]byte{big, big[:100<<10], big[:10]} {
				a := postBody(t, s, body)
				want := sha1hex(body)
				if a.RequestSHA1 == nil || *a.RequestSHA1 != want || *a.RequestLength != len(body) || a.InputSHA1 != want {
					t.Errorf("%d-byte body: $request['body'] %v (%v bytes), php://input %s; want sha1 %s in both",
						len(body), deref(a.RequestSHA1), deref(a.RequestLength), a.InputSHA1, want)
				}
			}
		})
	}
}

// A handler that declares no parameter never has a spooled body read for it: php://input streams
// it, and the array it is passed (func_get_args()) has an empty 'body'.
func TestRequestBodyNotLoadedWithoutParameter(t *testing.T) {
	s := startAskrd(t, opts{script: faultsScript(t), args: []string{"--workers", "1"}, env: []string{"ASKR_TEST_NO_PARAM=1"}})
	big := make([]byte, 3<<20)
	rand.Read(big)
	a := postBody(t, s, big)
	if a.InputSHA1 != sha1hex(big) || a.RequestSHA1 != nil {
		t.Fatalf("php://input sha1 %s (request %v); want %s", a.InputSHA1, deref(a.RequestSHA1), sha1hex(big))
	}
	if a.PassedLength != 0 {
		t.Errorf("a handler without the parameter was passed a %d-byte body; want none read", a.PassedLength)
	}
	if a.Peak >= len(big) {
		t.Errorf("peak memory %d after a %d-byte body; want the body never held whole", a.Peak, len(big))
	}
	// A body that stayed in askrd's memory comes in the frame: passing it on costs nothing.
	small := []byte("small body")
	if a := postBody(t, s, small); a.PassedLength != len(small) || a.InputSHA1 != sha1hex(small) {
		t.Errorf("small body: passed %d bytes, php://input %s; want %d, %s", a.PassedLength, a.InputSHA1, len(small), sha1hex(small))
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
