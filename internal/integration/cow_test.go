package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/proc"
)

// startCow starts askrd in CoW template mode whatever the suite's mode.
func startCow(t *testing.T, o opts) *server {
	t.Helper()
	if !cowMode() {
		o.args = append(o.args, "--cow")
	}
	return startAskrd(t, o)
}

// templatePID returns the pid of askrd's php-cgi child that is not a worker: the template.
func templatePID(t *testing.T, s *server) int {
	t.Helper()
	for _, c := range proc.Children(s.cmd.Process.Pid) {
		if proc.Comm(c) == "php-cgi" {
			return c
		}
	}
	t.Fatalf("askrd has no php-cgi child (template)")
	return 0
}

func TestCowKilledWorkerIsReplacedFast(t *testing.T) {
	s := startCow(t, opts{args: []string{"--workers", "1"}})
	var worst time.Duration
	for range 5 {
		pid := pidOf(t, s)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var got int
		if !poll(5*time.Second, func() bool {
			r := s.get("/pid")
			got, _ = strconv.Atoi(r.body)
			return r.status == 200 && got != pid && got != 0
		}) {
			t.Fatalf("no new worker served within 5 s of kill -9 %d", pid)
		}
		if d := time.Since(start); d > worst {
			worst = d
		}
		if ppid := proc.Parent(got); ppid != templatePID(t, s) {
			t.Errorf("new worker %d is a child of %d, not of the template", got, ppid)
		}
	}
	t.Logf("kill -9 → a new worker served: worst of 5: %v", worst.Round(time.Millisecond))
	if worst > 100*time.Millisecond {
		t.Errorf("a killed worker was replaced after %v; want ≤ 100 ms", worst.Round(time.Millisecond))
	}
}

func TestCowMaxRequestsOne(t *testing.T) {
	s := startCow(t, opts{args: []string{"--workers", "2", "--max-requests", "1"}})
	const n = 2000
	seen := make(map[int]bool, n)
	deadline := time.Now().Add(3 * time.Minute)
	for i := range n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests within 3 minutes", i, n)
		}
		r := s.get("/pid")
		pid, err := strconv.Atoi(r.body)
		if r.status != 200 || err != nil {
			t.Fatalf("request %d: %d %q", i, r.status, r.body)
		}
		if seen[pid] {
			t.Fatalf("request %d served by worker %d again; want a fresh fork for each request", i, pid)
		}
		seen[pid] = true
	}
}

// Killing the template under continuous load: the workers it forked go on serving, a new template
// boots and its workers replace the old ones.
func TestCowTemplateKilledUnderLoad(t *testing.T) {
	s := startCow(t, opts{args: []string{"--workers", "2"}})
	old := map[int]bool{pidOf(t, s): true, pidOf(t, s): true}
	tmpl := templatePID(t, s)
	load := s.startLoad("/pid", 4, 20000)
	if !poll(10*time.Second, func() bool { return load.ok.Load() > 50 }) {
		t.Fatal("load did not start")
	}
	syscall.Kill(tmpl, syscall.SIGKILL)
	s.waitLog("generation=2", 30*time.Second)
	rotated := poll(30*time.Second, func() bool {
		for range 6 {
			if old[pidOf(t, s)] {
				return false
			}
		}
		return true
	})
	load.Stop()
	t.Logf("template killed under load: %d requests served, %d failed", load.ok.Load(), load.failed.Load())
	if load.failed.Load() != 0 {
		t.Errorf("%d requests failed when the template was killed; want 0 (no worker was killed)", load.failed.Load())
	}
	if !rotated {
		t.Errorf("the first template's workers still serve 30 s after a new template booted")
	}
	if n := templatePID(t, s); n == tmpl {
		t.Errorf("template pid unchanged")
	}
}

func TestCowWorkersHaveTheirOwnRandomAndStartHook(t *testing.T) {
	s := startCow(t, opts{args: []string{"--workers", "2"}})
	type rnd struct {
		PID  int   `json:"pid"`
		Rand []int `json:"rand"`
	}
	seqs := map[int]string{}
	if !poll(10*time.Second, func() bool {
		var v rnd
		json.Unmarshal([]byte(s.get("/rand").body), &v)
		if _, ok := seqs[v.PID]; !ok && v.PID != 0 {
			seqs[v.PID] = fmt.Sprint(v.Rand)
		}
		return len(seqs) == 2
	}) {
		t.Fatalf("did not reach both workers: %v", seqs)
	}
	var a []string
	for _, v := range seqs {
		a = append(a, v)
	}
	if a[0] == a[1] {
		t.Errorf("two CoW workers drew the same mt_rand()/rand() sequence %s", a[0])
	}
	// The hook ran exactly once in each worker, however many requests it served.
	for range 10 {
		var v struct{ PID, Started int }
		json.Unmarshal([]byte(s.get("/started").body), &v)
		if v.Started != 1 {
			t.Errorf("worker %d ran its askr_on_worker_start hook %d times; want 1", v.PID, v.Started)
		}
	}
}

// A template that fails to boot fails askrd serve at startup, with the PHP error.
func TestCowBootFailureFailsServe(t *testing.T) {
	bin := askrdBinary(t)
	root := repoRoot(t)
	cmd := exec.Command(bin, "serve", "--cow", "--workers", "1", "--listen", freeAddr(t),
		"--root", filepath.Join(root, "examples", "hello", "public"),
		"--worker-script", filepath.Join(root, "internal", "integration", "testdata", "worker.php"))
	cmd.Env = append(os.Environ(), "ASKR_TEST_BOOT_FAIL=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "boot failed on purpose") || !strings.Contains(string(out), "CoW template") {
		t.Errorf("askrd serve --cow with a failing worker script: %v\n%s\nwant a non-zero exit naming the PHP error", err, out)
	}
}

// The memory of the template and the workers is logged at memory_report_interval.
func TestMemoryReport(t *testing.T) {
	s := startCow(t, opts{args: []string{"--workers", "2"}, config: "[worker]\nmemory_report_interval = \"200ms\"\n"})
	s.waitLog(`msg=memory`, 10*time.Second)
	var line string
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(l, "msg=memory") {
			line = l
		}
	}
	for _, want := range []string{"workers=2", "workers_pss=", "workers_private_dirty=", "workers_shared=", "template_pss=", "askrd_rss="} {
		if !strings.Contains(line, want) {
			t.Errorf("memory log line %q lacks %q", line, want)
		}
	}
}

// A template that dies and whose successor fails to boot: the old workers go on serving, the boot
// is retried with back-off and PHP's error is logged, and once the app boots again a new
// generation takes over.
func TestCowTemplateRebootFailsThenRecovers(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "fail-boot")
	s := startCow(t, opts{args: []string{"--workers", "2"}, env: []string{"ASKR_TEST_BOOT_FAIL_IF=" + flag}})
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(templatePID(t, s), syscall.SIGKILL)
	s.waitLog("template failed to boot", 10*time.Second)
	s.waitLog("boot failed on purpose", 10*time.Second)
	for range 10 {
		if r := s.get("/pid"); r.status != 200 {
			t.Errorf("while the new template fails to boot: %d %q; want the old workers to answer", r.status, r.body)
		}
	}
	if !poll(10*time.Second, func() bool { return strings.Count(s.logs.String(), "template failed to boot") >= 2 }) {
		t.Errorf("the template's boot was not retried")
	}
	os.Remove(flag)
	s.waitLog("generation=2", 30*time.Second)
	if r := s.get("/pid"); r.status != 200 {
		t.Errorf("after recovery: %d", r.status)
	}
}
