package integration

// Worker supervision as users see it: failures, recycling, the queue, graceful stop, orphans,
// timeouts and worker log lines.

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/proc"
)

func pidOf(t *testing.T, s *server) int {
	t.Helper()
	r := s.get("/pid")
	pid, err := strconv.Atoi(r.body)
	if err != nil {
		t.Fatalf("/pid = %d %q", r.status, r.body)
	}
	return pid
}

func TestFailuresLeaveAskrdServing(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1", "--request-timeout", "1"}})
	pid := pidOf(t, s)

	// Uncaught exception: 500, logged with PHP's message, the worker lives on.
	if r := s.get("/throw"); r.status != 500 {
		t.Errorf("/throw = %d; want 500", r.status)
	}
	s.waitLog("Uncaught RuntimeException: thrown on purpose", 5*time.Second)
	if p := pidOf(t, s); p != pid {
		t.Errorf("worker replaced after an exception (pid %d → %d); want it kept", pid, p)
	}
	if r := s.get("/undefined"); r.status != 500 {
		t.Errorf("/undefined = %d; want 500", r.status)
	}

	// exit(): what was produced is sent, the worker is replaced.
	if r := s.get("/exit"); r.status != 200 || r.body != "before exit" {
		t.Errorf("/exit = %d %q; want 200 \"before exit\"", r.status, r.body)
	}
	p2 := pidOf(t, s)
	if p2 == pid {
		t.Errorf("worker not replaced after exit()")
	}

	// Fatal error: 500, logged, worker replaced.
	if r := s.get("/fatal"); r.status != 500 {
		t.Errorf("/fatal = %d; want 500", r.status)
	}
	s.waitLog("Allowed memory size", 5*time.Second)
	p3 := pidOf(t, s)
	if p3 == p2 {
		t.Errorf("worker not replaced after a fatal error")
	}

	// Past the request timeout: 504, worker killed and replaced.
	if r := s.get("/sleep?s=30"); r.status != 504 {
		t.Errorf("/sleep = %d; want 504", r.status)
	}
	p4 := pidOf(t, s)
	if p4 == p3 {
		t.Errorf("worker not replaced after a timeout")
	}

	// Killed mid-request: 502 for that request only.
	errc := make(chan response, 1)
	mark := filepath.Join(t.TempDir(), "running")
	// A POST, which is not run again elsewhere (a GET would be, as nginx does).
	go func() { errc <- s.do("POST", "/sleep?s=5&mark="+mark, strings.NewReader("x")) }()
	if !poll(5*time.Second, func() bool { _, err := os.Stat(mark); return err == nil }) {
		t.Fatalf("the request never reached worker %d", p4)
	}
	syscall.Kill(p4, syscall.SIGKILL)
	if r := <-errc; r.status != 502 {
		t.Errorf("request whose worker was killed = %d; want 502", r.status)
	}
	if r := s.get("/"); r.status != 200 {
		t.Errorf("after a crash: %d; want 200", r.status)
	}
}

func TestWorkerOutputGoesToLog(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	pid := pidOf(t, s)
	if r := s.get("/log"); r.body != "logged" {
		t.Errorf("/log body = %q; want only what was echoed", r.body)
	}
	for _, line := range []string{"to stdout from worker", "to stderr from worker", "error_log from worker"} {
		s.waitLog(line, 5*time.Second)
		for _, l := range strings.Split(s.logs.String(), "\n") {
			if strings.Contains(l, line) && !strings.Contains(l, "pid="+strconv.Itoa(pid)) {
				t.Errorf("log line %q is not tagged with pid %d", l, pid)
			}
		}
	}
}

func TestMaxRequestsRecycles(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1", "--max-requests", "3"}})
	var pids []int
	for range 9 {
		pids = append(pids, pidOf(t, s))
	}
	for i := range pids {
		if same := pids[i] == pids[i/3*3]; !same {
			t.Errorf("request %d served by %d, request %d by %d; want one worker per 3 requests: %v", i, pids[i], i/3*3, pids[i/3*3], pids)
		}
	}
	if pids[0] == pids[3] || pids[3] == pids[6] {
		t.Errorf("workers not recycled after 3 requests: %v", pids)
	}
}

func TestQueueFullGets503(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}, config: "[server]\nqueue_size = 1\nqueue_timeout = \"300ms\"\n"})
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = s.get("/sleep?s=1").status
		}()
	}
	wg.Wait()
	n503 := 0
	for _, c := range codes {
		if c == 503 {
			n503++
		} else if c != 200 {
			t.Errorf("status %d; want 200 or 503", c)
		}
	}
	if n503 < 1 || n503 > 2 {
		t.Errorf("statuses %v; want one served and the others refused with 503", codes)
	}
}

func TestGracefulStop(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "2"}, config: "[server]\nshutdown_timeout = 5\n"})
	pids := map[int]bool{}
	for range 6 {
		pids[pidOf(t, s)] = true
	}
	mark := filepath.Join(t.TempDir(), "running")
	inflight := make(chan response, 1)
	go func() { inflight <- s.get("/sleep?s=1&mark=" + mark) }()
	if !poll(10*time.Second, func() bool { _, err := os.Stat(mark); return err == nil }) {
		t.Fatal("the slow request never started")
	}
	term := time.Now()
	s.cmd.Process.Signal(syscall.SIGTERM)
	if r := <-inflight; r.status != 200 || r.body != "slept" {
		t.Errorf("in-flight request during drain = %d %q; want 200 slept", r.status, r.body)
	}
	<-s.done
	if d := time.Since(term); d > 5*time.Second {
		t.Errorf("askrd took %v to drain and exit; want within shutdown_timeout (5 s)", d.Round(time.Millisecond))
	}
	if s.err != nil {
		t.Errorf("askrd exit after SIGTERM: %v; want status 0", s.err)
	}
	for pid := range pids {
		if st := proc.State(pid); st != 0 {
			t.Errorf("worker %d still exists (state %c) after askrd stopped", pid, st)
		}
	}
}

func TestOrphansAreReaped(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	if r := s.get("/orphan"); r.body != "orphaned" {
		t.Fatalf("/orphan = %d %q", r.status, r.body)
	}
	askrd := s.cmd.Process.Pid
	sawOrphan := false
	gone := poll(10*time.Second, func() bool {
		for _, c := range proc.Children(askrd) {
			if proc.Comm(c) == "sleep" {
				sawOrphan = true
				return false
			}
		}
		return sawOrphan
	})
	if !sawOrphan {
		t.Fatalf("the orphaned sleep never became askrd's child (not a subreaper?)")
	}
	if !gone {
		t.Errorf("orphan still a child of askrd (state %v)", proc.Children(askrd))
	}
}

func TestIdleWorkersStay(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1", "--ini", "default_socket_timeout = 1"}})
	pid := pidOf(t, s)
	if poll(2500*time.Millisecond, func() bool { return strings.Contains(s.logs.String(), "worker exited") }) {
		t.Fatalf("idle worker exited:\n%s", s.logs.String())
	}
	if p := pidOf(t, s); p != pid {
		t.Errorf("worker changed from %d to %d while idle", pid, p)
	}
}

func TestMaxExecutionTimePerRequest(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1", "--ini", "max_execution_time = 1"}})
	pid := pidOf(t, s)
	for i := range 3 { // 3 × 0.6 s of CPU: more than the limit in total, less in each request
		if r := s.get("/burn?ms=600"); r.status != 200 || r.body != "burnt" {
			t.Fatalf("request %d burning 0.6 s: %d %q", i, r.status, r.body)
		}
	}
	if p := pidOf(t, s); p != pid {
		t.Errorf("worker replaced (%d → %d) though no request ran past max_execution_time", pid, p)
	}
	if r := s.get("/burn?ms=2500"); r.status != 500 {
		t.Errorf("request past max_execution_time = %d; want 500", r.status)
	}
	s.waitLog("Maximum execution time of 1 second exceeded", 5*time.Second)
	if r := s.get("/"); r.status != 200 {
		t.Errorf("after a request past max_execution_time: %d", r.status)
	}
}

func TestDeferLimit(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	if r := s.get("/defer-many"); r.body != "256" {
		t.Errorf("askr_defer accepted %s of 300 callbacks; want 256", r.body)
	}
}

func TestLongLogLine(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	for range 3 {
		if r := s.get("/longlog"); r.body != "long" {
			t.Fatalf("/longlog = %d %q", r.status, r.body)
		}
	}
	s.waitLog("after the long line", 5*time.Second)
}

func TestRepeatedLogLines(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	if r := s.get("/noticeloop"); r.body != "looped" {
		t.Fatalf("/noticeloop = %d %q", r.status, r.body)
	}
	s.waitLog("a different line", 5*time.Second)
	if n := strings.Count(s.logs.String(), "the same line again"); n > 4 {
		t.Errorf("a repeated line was logged %d times; want at most 4", n)
	}
	if !regexp.MustCompile(`msg="previous line repeated".* times=996`).MatchString(s.logs.String()) {
		t.Errorf("no summary of the repeats in the log")
	}
	s.get("/fatal")
	s.waitLog("Allowed memory size", 5*time.Second)
	runtimeFile := regexp.MustCompile(`askr-runtime-[^/\s]*/\w+\.php`) // runtime.php or a class beside it
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(l, "PHP Fatal error") && !strings.Contains(l, "level=ERROR") {
			t.Errorf("fatal error not logged at ERROR: %s", l)
		}
		if strings.Contains(l, "runtime.php") || runtimeFile.MatchString(l) {
			t.Errorf("the runtime itself caused a log line: %s", l)
		}
	}
}

func TestIdleWorkerKilledCostsNoRequest(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "2"}})
	for _, method := range []string{"GET", "POST"} {
		pid := pidOf(t, s)
		syscall.Kill(pid, syscall.SIGKILL)
		if !poll(5*time.Second, func() bool { return !proc.Alive(pid) }) {
			t.Fatalf("worker %d did not die", pid)
		}
		for i := range 4 { // reaches the dead worker's slot whichever worker is picked first
			if r := s.do(method, "/pid", strings.NewReader("x=1"), "Content-Type", "application/x-www-form-urlencoded"); r.status != 200 {
				t.Errorf("%s %d after an idle worker was killed = %d %q; want 200", method, i, r.status, r.body)
			}
		}
	}
	if !strings.Contains(s.logs.String(), "exited unexpectedly") && !strings.Contains(s.logs.String(), "died before answering") {
		t.Errorf("the killed worker left no trace in the log")
	}
}
