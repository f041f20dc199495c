package integration

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// When shutdown_timeout ends the drain: requests waiting for a worker (they never reached PHP) get
// 503 with Retry-After, the request still running is cut, and askrd logs how many of each and
// exits 75 (EX_TEMPFAIL). Worker mode (CoW with ASKR_TEST_COW=1) and per-request mode.
func TestDrainCutShort(t *testing.T) {
	for _, perRequest := range []bool{false, true} {
		name := "worker"
		if perRequest {
			name = "per-request"
		}
		t.Run(name, func(t *testing.T) {
			n := newFakeNotify(t)
			o := opts{args: []string{"--workers", "1"}, config: "[server]\nshutdown_timeout = \"1s\"\n", env: []string{"NOTIFY_SOCKET=" + n.path}}
			mark := filepath.Join(t.TempDir(), "running")
			slow := "/sleep?s=4&mark=" + mark
			if perRequest {
				o.perRequest, o.root = true, plainRoot(t)
				slow = "/sleep.php?s=4&started=" + mark
			}
			s := startAskrd(t, o)
			type result struct {
				status int
				retry  string
				err    error
			}
			get := func(path string, out chan<- result) {
				resp, err := client.Get(s.URL + path)
				if err != nil {
					out <- result{err: err}
					return
				}
				resp.Body.Close()
				out <- result{status: resp.StatusCode, retry: resp.Header.Get("Retry-After")}
			}
			running := make(chan result, 1)
			go get(slow, running)
			if !poll(10*time.Second, func() bool { _, err := os.Stat(mark); return err == nil }) {
				t.Fatal("the slow request never started")
			}
			queued := make(chan result, 2)
			for range 2 {
				go get("/pid.php", queued) // worker mode: any path goes to the worker script
			}
			// The status line askrd sends systemd every second counts the requests waiting.
			if !poll(10*time.Second, func() bool {
				m := n.all("STATUS=")
				return len(m) > 0 && strings.Contains(m[len(m)-1].text, "waiting=2")
			}) {
				t.Fatalf("two requests never waited for the busy worker: %v", n.all("STATUS="))
			}
			s.cmd.Process.Signal(syscall.SIGTERM)
			for range 2 {
				r := <-queued
				if r.err != nil || r.status != http.StatusServiceUnavailable || r.retry == "" {
					t.Errorf("queued request when the drain was cut: %d (Retry-After %q), %v; want 503 with Retry-After", r.status, r.retry, r.err)
				}
			}
			if r := <-running; r.err == nil {
				t.Errorf("running request when the drain was cut: %d; want its connection closed", r.status)
			}
			select {
			case <-s.done:
			case <-time.After(30 * time.Second):
				t.Fatal("askrd did not exit after the drain was cut")
			}
			if code := statusOf(s.err); code != 75 {
				t.Errorf("askrd exit after a drain cut short: %d (%v); want 75", code, s.err)
			}
			logs := s.logs.String()
			if !strings.Contains(logs, `level=ERROR msg="drain cut short: shutdown_timeout reached`) || !strings.Contains(logs, "timeout=1s refused=2 cut=1") {
				t.Errorf("askrd's log does not say the drain was cut short, with refused=2 cut=1:\n%s", logs)
			}
			if strings.Contains(logs, "askrd failed") {
				t.Errorf("a drain cut short was logged as a failure too:\n%s", logs)
			}
		})
	}
}

// A connection that never sends a request (a browser's preconnect) outlasting shutdown_timeout
// is no cut drain: nothing was lost, askrd logs it at INFO and exits 0.
func TestDrainSilentConnectionIsNoCut(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}, config: "[server]\nshutdown_timeout = \"1s\"\n"})
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r := s.get("/pid"); r.status != 200 { // the silent connection has been accepted by now
		t.Fatalf("/pid = %d", r.status)
	}
	s.stop()
	if s.err != nil {
		t.Errorf("askrd exit: %v; want 0 (only a connection without a request was closed)", s.err)
	}
	logs := s.logs.String()
	if strings.Contains(logs, "drain cut short") {
		t.Errorf("a silent connection was reported as a cut drain:\n%s", logs)
	}
	if !strings.Contains(logs, "connections without a request closed") {
		t.Errorf("the drain's end at shutdown_timeout was not logged:\n%s", logs)
	}
}
