package integration

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/phpext"
)

// proofsScript is the worker script of the tests in this file.
func proofsScript(t testing.TB) string {
	return filepath.Join(repoRoot(t), "internal", "integration", "testdata", "proofs.php")
}

// fileSays polls until path holds want (or something else: then it fails at once).
func fileSays(t *testing.T, path, want string, timeout time.Duration) {
	t.Helper()
	var got string
	if !poll(timeout, func() bool {
		b, _ := os.ReadFile(path)
		got = string(b)
		return got != ""
	}) {
		t.Fatalf("%s not written within %v", path, timeout)
	}
	if got != want {
		t.Fatalf("%s = %q; want %q", path, got, want)
	}
}

// TestHandleRequestFalseOnStop: when askrd stops a worker — retired after max_requests, rolled
// over by a reload (worker mode), at askrd's shutdown — askr_handle_request() returns false and
// the code after the worker loop runs, in the worker itself.
func TestHandleRequestFalseOnStop(t *testing.T) {
	dir := t.TempDir()
	s := startAskrd(t, opts{script: proofsScript(t), args: []string{"--workers", "1", "--max-requests", "2"},
		env: []string{"ASKR_TEST_END_DIR=" + dir}})
	ended := func(pid int, why string) {
		t.Helper()
		if !poll(20*time.Second, func() bool {
			b, _ := os.ReadFile(filepath.Join(dir, "ended-"+strconv.Itoa(pid)))
			return string(b) == "loop ended"
		}) {
			entries, _ := os.ReadDir(dir)
			t.Fatalf("%s: worker %d did not run the code after its loop within 20 s (markers: %v)", why, pid, entries)
		}
	}
	first := pidOf(t, s)
	if second := pidOf(t, s); second != first {
		t.Fatalf("requests 1 and 2 served by %d and %d; want one worker until max_requests (2)", first, second)
	}
	ended(first, "max_requests")
	next := pidOf(t, s)
	if next == first {
		t.Fatalf("worker %d still serves after max_requests", first)
	}
	if !cowMode() { // in CoW mode SIGHUP drains and exits (TestCowSIGHUPDrains)
		s.cmd.Process.Signal(syscall.SIGHUP)
		ended(next, "reload")
		if next = pidOf(t, s); next == first {
			t.Fatalf("worker %d serves again", first)
		}
	}
	s.stop()
	if s.err != nil {
		t.Errorf("askrd exit after SIGTERM: %v; want status 0", s.err)
	}
	ended(next, "shutdown")
}

// TestDeferRunsAfterResponse: the client has the whole response while an askr_defer() callback
// still runs — the callback cannot end before the test, having read it all, says so — and the
// callback then completes. The worker takes its next request only afterwards.
func TestDeferRunsAfterResponse(t *testing.T) {
	s := startAskrd(t, opts{script: proofsScript(t), args: []string{"--workers", "1"}})
	for _, n := range []int{1000, 300 << 10} { // Content-Length, and a body net/http sends chunked
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			dir := t.TempDir()
			// rawClient: the framing is the point, which Go's own gzip decoding would hide.
			resp, err := rawClient.Get(fmt.Sprintf("%s/defer-wait?n=%d&dir=%s", s.URL, n, dir))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body) // returns only at the body's end (length or last chunk)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || len(body) != n || strings.Trim(string(body), "r") != "" {
				t.Fatalf("response: %v, status %d, %d bytes; want 200 and %d bytes", err, resp.StatusCode, len(body), n)
			}
			if resp.ContentLength != int64(n) && (len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked") {
				t.Errorf("Content-Length %d, Transfer-Encoding %v; want a delimited body", resp.ContentLength, resp.TransferEncoding)
			}
			if !poll(20*time.Second, func() bool { _, err := os.Stat(filepath.Join(dir, "started")); return err == nil }) {
				t.Fatal("the deferred callback did not start")
			}
			if _, err := os.Stat(filepath.Join(dir, "done")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the deferred callback ended before the test let it (%v)", err)
			}
			if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			fileSays(t, filepath.Join(dir, "done"), "after go", 20*time.Second)
			if r := s.get("/"); r.status != 200 || r.body != "proofs worker" {
				t.Errorf("next request: %d %q", r.status, r.body)
			}
		})
	}
}

// withoutExtension starts askrd with [worker] extension = "none".
func withoutExtension(t *testing.T, o opts) *server {
	t.Helper()
	o.config = "[worker]\nextension = \"none\"\n" + o.config
	s := startAskrd(t, o)
	if strings.Contains(s.logs.String(), "askr.so") {
		t.Fatalf("askrd loads askr.so with extension = \"none\":\n%s", s.logs.String())
	}
	return s
}

// TestWithoutExtension: the rows of docs/compatibility.md marked "without the askr extension".
func TestWithoutExtension(t *testing.T) {
	s := withoutExtension(t, opts{args: []string{"--workers", "1"}})
	t.Run("Uploads", func(t *testing.T) {
		// PHP has the file in $_FILES, but its upload functions do not know askrd's temp file.
		dest := filepath.Join(t.TempDir(), "moved.txt")
		a := postParts(t, s, "/uploads?move="+dest, part{"doc", "a.txt", "first file"})
		if len(a.Checks) != 1 || a.Checks[0].SHA1 != sha1hex([]byte("first file")) {
			t.Fatalf("$_FILES[doc] = %+v; want the uploaded file", a)
		}
		if a.Checks[0].IsUploadedFile || a.Moved || a.MovedSHA1 != "" {
			t.Errorf("is_uploaded_file() %v, move_uploaded_file() %v (%q); want false, false: without the extension PHP knows no upload",
				a.Checks[0].IsUploadedFile, a.Moved, a.MovedSHA1)
		}
		s.noTempFiles()
	})
	t.Run("Flush", func(t *testing.T) {
		// flush() sends nothing early: every event arrives after the last one was produced.
		resp, err := client.Get(s.URL + "/sse?n=3&gap_ms=300&via=flush")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		events := readSSE(t, resp)
		if len(events) != 3 {
			t.Fatalf("%d events; want 3", len(events))
		}
		for _, e := range events {
			if e.arrived.Before(events[2].flushed) {
				t.Errorf("event %d arrived %v before event 3 was flushed; want nothing sent early without the extension",
					e.n, events[2].flushed.Sub(e.arrived))
			}
		}
	})
}

// TestExtensionFallbackWarnsOnce: with extension = "auto" and no askr.so to be found, askrd
// serves without it and says once, as a warning, what PHP code loses; the uploads row shows it.
func TestExtensionFallbackWarnsOnce(t *testing.T) {
	if _, err := os.Stat(phpext.InstalledPath); err == nil {
		t.Skipf("%s is installed: auto finds it", phpext.InstalledPath)
	}
	// A link to the test's askrd in a directory without askr.so (os.Executable resolves symlinks).
	bin := filepath.Join(t.TempDir(), "askrd")
	if err := os.Link(askrdBinary(t), bin); err != nil {
		t.Fatal(err)
	}
	s := startAskrd(t, opts{bin: bin, args: []string{"--workers", "1"}, config: "[worker]\nextension = \"auto\"\n"})
	var warnings []string
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(l, phpext.Degraded) {
			warnings = append(warnings, l)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "level=WARN") {
		t.Errorf("lines saying %q: %q; want one warning", phpext.Degraded, warnings)
	}
	a := postParts(t, s, "/uploads", part{"doc", "a.txt", "first file"})
	if len(a.Checks) != 1 || a.Checks[0].IsUploadedFile {
		t.Errorf("/uploads = %+v; want the file, not recognised by is_uploaded_file()", a)
	}
}

// TestWithoutExtensionAbort: a client that leaves mid-stream (ob_flush() sends without the
// extension) is not seen by PHP: connection_aborted() stays 0 and the script runs to its end;
// askrd drops the rest of the response and keeps the worker.
func TestWithoutExtensionAbort(t *testing.T) {
	s := withoutExtension(t, opts{script: proofsScript(t), args: []string{"--workers", "1"}})
	pid := pidOf(t, s)
	marker := filepath.Join(t.TempDir(), "marker")
	conn, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /abort-ob?marker=%s HTTP/1.1\r\nHost: x\r\n\r\n", marker)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	conn.Close() // mid-stream
	fileSays(t, marker, "finished at 300 aborted=0", 30*time.Second)
	if got := pidOf(t, s); got != pid {
		t.Errorf("after the abort pid %d serves; want the same worker %d", got, pid)
	}
}

// TestWorkerWhosePidIsNotTheStartedOneIsRefused: php_cgi is a wrapper that runs php-cgi as its
// child instead of exec'ing it, so the worker's hello (and, in CoW mode, a fork's parent) names
// a process askrd did not start. askrd refuses it with a clear log line and serves nothing
// through it.
func TestWorkerWhosePidIsNotTheStartedOneIsRefused(t *testing.T) {
	askrdBinary(t) // skips (or fails in CI) without php-cgi
	phpCGI, err := exec.LookPath("php-cgi")
	if err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(t.TempDir(), "php-cgi-wrapper")
	os.WriteFile(wrapper, []byte("#!/bin/sh\n# php-cgi as a child, not exec'd\n"+phpCGI+" \"$@\"\n"), 0o755)
	s := startAskrd(t, opts{args: []string{"--workers", "1"}, noReady: true,
		config: fmt.Sprintf("[server]\nqueue_timeout = 1\n[worker]\nphp_cgi = %q\n", wrapper)})
	s.waitLog("peer check failed", 30*time.Second)
	var line string
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(l, "peer check failed") {
			line = l
			break
		}
	}
	// Worker mode: the hello's pid is not the wrapper's, so the only worker of the first generation
	// fails to boot and askrd serve ends with that error. CoW mode: the fork is not a template's
	// child and its connection is refused.
	want := "level=ERROR msg=\"askrd failed\""
	if cowMode() {
		want = "level=WARN msg=\"refused a worker connection\""
	}
	if !strings.Contains(line, want) {
		t.Errorf("log line %q; want %s", line, want)
	}
	if !cowMode() {
		select {
		case <-s.done:
			if s.err == nil {
				t.Errorf("askrd exited with status 0; want a failure")
			}
		case <-time.After(30 * time.Second):
			t.Errorf("askrd still runs 30 s after its only worker was refused")
		}
	}
	if cowMode() {
		if r := s.get("/pid"); r.status == 200 {
			t.Errorf("/pid = 200 %q; want no worker to serve", r.body)
		}
	}
	if strings.Contains(s.logs.String(), "workers ready") {
		t.Errorf("askrd says workers are ready:\n%s", s.logs.String())
	}
}

// TestRuntimeDirIsPrivate: askrd's private directory (runtime.php, workers.sock, the log FIFOs,
// per-request mode's FastCGI sockets) has mode 0700, and the workers, which run as askrd's user,
// serve from it — in worker mode, CoW mode (with ASKR_TEST_COW=1) and per-request mode.
func TestRuntimeDirIsPrivate(t *testing.T) {
	for _, perRequest := range []bool{false, true} {
		name := map[bool]string{false: "workers", true: "per-request"}[perRequest]
		t.Run(name, func(t *testing.T) {
			o := opts{args: []string{"--workers", "1"}}
			if perRequest {
				o = opts{perRequest: true, root: plainRoot(t), args: []string{"--workers", "1"}}
			}
			s := startAskrd(t, o)
			dirs, _ := filepath.Glob(filepath.Join(s.tmp, fmt.Sprintf("askr-runtime-%d-*", s.cmd.Process.Pid)))
			if len(dirs) != 1 {
				t.Fatalf("askrd's private directories in its TMPDIR: %v; want one", dirs)
			}
			check := []string{dirs[0]}
			if perRequest {
				check = append(check, filepath.Join(dirs[0], "fastcgi"))
			}
			for _, d := range check {
				st, err := os.Stat(d)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != 0o700 {
					t.Errorf("%s mode %v; want 0700", d, st.Mode().Perm())
				}
			}
			if cowMode() && !perRequest {
				if _, err := os.Stat(filepath.Join(dirs[0], "workers.sock")); err != nil {
					t.Errorf("CoW socket: %v", err)
				}
			}
			path := "/pid"
			if perRequest {
				path = "/index.php"
			}
			if r := s.get(path); r.status != 200 {
				t.Errorf("GET %s = %d %q; want a worker serving", path, r.status, r.body)
			}
		})
	}
}
