package integration

// Issue 16's acceptance: a reload in CoW mode (a new template, a canary, the old generation
// replaced), the canary's verdict on real traffic in both modes, and refork. Every test sends a
// bounded load and counts each answer by the code version that gave it.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/admin"
	"github.com/askr-php/askr/internal/proc"
)

// versionWorker answers "VERSION PID", VERSION being the constant APP_VERSION of version.php
// beside it; with APP_FAIL_EVERY = N > 0 every Nth request of a worker is a 500 "fail VERSION".
// It requires version.php at boot, so in CoW mode the template holds the code.
const versionWorker = `<?php
declare(strict_types=1);
require __DIR__ . '/version.php';
$count = 0;
$handler = static function () use (&$count): void {
    $count++;
    header('Content-Type: text/plain');
    if (APP_FAIL_EVERY > 0 && $count % APP_FAIL_EVERY === 0) {
        http_response_code(500);
        echo 'fail ', APP_VERSION;
        return;
    }
    echo APP_VERSION, ' ', getmypid();
};
askr_cow_ready();
while (askr_handle_request($handler)) {
}
`

// versionFile is version.php for version v, failing every failEvery-th request (0: none).
func versionFile(v string, failEvery int) string {
	return fmt.Sprintf("<?php\nconst APP_VERSION = %q;\nconst APP_FAIL_EVERY = %d;\n", v, failEvery)
}

// writeApp writes the app (worker.php, version.php, public/) into dir.
func writeApp(t *testing.T, dir, version string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "public"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, filepath.Join(dir, "public", "hello.txt"), "static hello\n")
	writeAtomic(t, filepath.Join(dir, "worker.php"), versionWorker)
	writeAtomic(t, filepath.Join(dir, "version.php"), version)
}

// writeAtomic replaces path with a file holding s, as a deploy tool does (write, then rename).
func writeAtomic(t *testing.T, path, s string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// rolloutStatus is what the tests read of GET /status?full (the rollout object included).
type rolloutStatus struct {
	Generation  int64 `json:"generation"`
	TemplatePID int   `json:"template_pid"`
	Workers     struct {
		Total int `json:"total"`
		List  []struct {
			PID        int   `json:"pid"`
			Generation int64 `json:"generation"`
		} `json:"list"`
	} `json:"workers"`
	Rollout *struct {
		State   string          `json:"state"`
		Cause   string          `json:"cause"`
		From    int64           `json:"from"`
		To      int64           `json:"to"`
		Canary  int             `json:"canary"`
		Detail  string          `json:"detail"`
		Started json.RawMessage `json:"started"`
		Ended   json.RawMessage `json:"ended"`
	} `json:"rollout"`
}

func (s *server) rolloutStatus() rolloutStatus {
	s.t.Helper()
	st, err := s.tryRolloutStatus()
	if err != nil {
		s.t.Fatal(err)
	}
	return st
}

// tryRolloutStatus is rolloutStatus for another goroutine than the test's.
func (s *server) tryRolloutStatus() (rolloutStatus, error) {
	var st rolloutStatus
	req, _ := http.NewRequest("GET", "http://askrd/status?full", nil)
	resp, err := admin.Client(s.admin, 30*time.Second).Do(req)
	if err != nil {
		return st, fmt.Errorf("admin GET /status?full: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if resp.StatusCode != 200 || err != nil {
		return st, fmt.Errorf("admin GET /status?full = %d %q (%v); want 200 JSON", resp.StatusCode, clipBody(string(b)), err)
	}
	return st, nil
}

// rolloutState is the rollout's state ("" when /status has no rollout object).
func (st rolloutStatus) rolloutState() string {
	if st.Rollout == nil {
		return ""
	}
	return st.Rollout.State
}

func (st rolloutStatus) workerPIDs() []int {
	var out []int
	for _, w := range st.Workers.List {
		out = append(out, w.PID)
	}
	sort.Ints(out)
	return out
}

// processOf is pid now (process, snapshot: lifecycle_test.go); the test fails if it is not running.
func processOf(t *testing.T, pid int) process {
	t.Helper()
	p := snapshot(pid)
	if !p.running() {
		t.Fatalf("process %d is not running", pid)
	}
	return p
}

// oldGeneration is askrd's processes before a reload: its workers (and, in CoW mode, every child
// of the template: a spare forked ahead too) and its template.
func oldGeneration(t *testing.T, s *server) (workers []process, template process) {
	t.Helper()
	st := s.rolloutStatus()
	pids := st.workerPIDs()
	if st.TemplatePID > 0 {
		template = processOf(t, st.TemplatePID)
		for _, c := range proc.Children(st.TemplatePID) {
			if !containsInt(pids, c) && proc.Alive(c) {
				pids = append(pids, c)
			}
		}
	}
	if len(pids) == 0 {
		t.Fatalf("/status lists no worker: %+v", st)
	}
	for _, p := range pids {
		workers = append(workers, processOf(t, p))
	}
	return workers, template
}

func stillRunning(ps []process) []int {
	var out []int
	for _, p := range ps {
		if p.running() {
			out = append(out, p.pid)
		}
	}
	return out
}

// versionLoad sends GETs from several goroutines, each at most n and none after a deadline, and
// counts the answers by phase (set by the test) and code version.
type versionLoad struct {
	phase    atomic.Int32
	total    atomic.Int64
	stop     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
	mu       sync.Mutex
	ok       map[string]int // "PHASE VERSION" → 200 answers
	fail500  map[string]int // "PHASE VERSION" → the app's own 500 "fail VERSION"
	failed   int            // anything else: no answer, another status, an unknown body
	failures []string       // the first of them
}

var versionBody = regexp.MustCompile(`^(v\w+) [0-9]+$`)

func (s *server) startVersionLoad(conc, n int, limit time.Duration) *versionLoad {
	l := &versionLoad{stop: make(chan struct{}), ok: map[string]int{}, fail500: map[string]int{}}
	deadline := time.Now().Add(limit)
	for range conc {
		l.wg.Go(func() {
			for range n {
				select {
				case <-l.stop:
					return
				default:
				}
				if time.Now().After(deadline) {
					return
				}
				l.one(s.URL + "/v")
			}
		})
	}
	return l
}

func (l *versionLoad) one(url string) {
	phase := l.phase.Load()
	code, body, err := 0, "", error(nil)
	if resp, e := client.Get(url); e != nil {
		err = e
	} else {
		b, e := io.ReadAll(resp.Body)
		resp.Body.Close()
		code, body, err = resp.StatusCode, string(b), e
	}
	l.total.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch m := versionBody.FindStringSubmatch(body); {
	case err == nil && code == 200 && m != nil:
		l.ok[fmt.Sprint(phase, " ", m[1])]++
	case err == nil && code == 500 && strings.HasPrefix(body, "fail v"):
		l.fail500[fmt.Sprint(phase, " ", strings.TrimPrefix(body, "fail "))]++
	default:
		l.failed++
		if len(l.failures) < 10 {
			l.failures = append(l.failures, fmt.Sprintf("phase %d: %d %q %v", phase, code, clipBody(body), err))
		}
	}
}

// Stop ends the load and waits for its requests; it may be called again.
func (l *versionLoad) Stop() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// count is the answers of phase (-1: any) and version, 200s or the app's 500s.
func (l *versionLoad) count(m map[string]int, phase int, version string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for k, c := range m {
		p, v, _ := strings.Cut(k, " ")
		if (phase < 0 || p == strconv.Itoa(phase)) && v == version {
			n += c
		}
	}
	return n
}

// waitServed waits until the load has made n more requests.
func (l *versionLoad) waitServed(t *testing.T, n int64) {
	t.Helper()
	from := l.total.Load()
	if !poll(30*time.Second, func() bool { return l.total.Load() >= from+n }) {
		t.Fatalf("the load made %d requests in 30 s; want %d", l.total.Load()-from, n)
	}
}

// checkNoFailure fails the test for every request that got no answer or an answer the app did
// not give.
func (l *versionLoad) checkNoFailure(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != 0 {
		t.Errorf("%d of %d requests failed; want 0. The first: %s", l.failed, l.total.Load(), strings.Join(l.failures, "; "))
	}
}

// reloadCLI runs `askrd reload` against s's admin socket (ASKR_ADMIN_SOCKET) and returns its
// output and error.
func reloadCLI(t *testing.T, s *server) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, askrdBinary(t), "reload")
	cmd.Env = append(os.Environ(), "ASKR_ADMIN_SOCKET="+s.admin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// allVersion reports whether n requests in a row are answered by version v.
func allVersion(s *server, v string, n int) bool {
	for range n {
		if r := s.get("/v"); r.status != 200 || !strings.HasPrefix(r.body, v+" ") {
			return false
		}
	}
	return true
}

// reloadUnderLoad is the acceptance of a reload in CoW mode: under load from 4 clients, deploy
// (the function changes the code on disk from v1 to v2), `askrd reload`; no request fails, the
// answers switch from v1 to v2, every old worker and the old template exit, and the workers are
// back to 3.
func reloadUnderLoad(t *testing.T, s *server, deploy func()) {
	before := s.rolloutStatus()
	oldWorkers, oldTemplate := oldGeneration(t, s)
	if oldTemplate.pid == 0 {
		t.Fatalf("/status has no template_pid in CoW mode: %+v", before)
	}
	load := s.startVersionLoad(4, 20000, 2*time.Minute)
	defer load.Stop()
	load.waitServed(t, 50)
	// The workers never fall below workers - 1 while the generations change.
	var lowest atomic.Int64
	lowest.Store(1 << 30)
	sampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			select {
			case <-sampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if st, err := s.tryRolloutStatus(); err == nil && int64(st.Workers.Total) < lowest.Load() {
				lowest.Store(int64(st.Workers.Total))
			}
		}
	})
	deploy()
	out, err := reloadCLI(t, s)
	if err != nil {
		close(sampling)
		sampler.Wait()
		t.Fatalf("askrd reload in CoW mode: %v\n%s\nwant exit 0", err, out)
	}
	var st rolloutStatus
	rolled := poll(60*time.Second, func() bool {
		st = s.rolloutStatus()
		return len(stillRunning(oldWorkers)) == 0 && !oldTemplate.running() && st.rolloutState() != "rolling"
	})
	close(sampling)
	sampler.Wait()
	if !rolled {
		t.Fatalf("60 s after askrd reload: old workers still running %v, old template %d running %t, rollout %+v",
			stillRunning(oldWorkers), oldTemplate.pid, oldTemplate.running(), st.Rollout)
	}
	// Every request sent from now on meets the new generation only.
	load.phase.Store(1)
	load.waitServed(t, 200)
	load.Stop()
	load.checkNoFailure(t)
	if n := load.count(load.ok, 0, "v1"); n == 0 {
		t.Errorf("no answer from v1 before the reload")
	}
	if n := load.count(load.ok, 0, "v2"); n == 0 {
		t.Errorf("no answer from v2 during the roll")
	}
	if n, m := load.count(load.ok, 1, "v1"), load.count(load.ok, 1, "v2"); n != 0 || m == 0 {
		t.Errorf("after the old generation exited: %d answers from v1, %d from v2; want only v2", n, m)
	}
	if st.TemplatePID == 0 || st.TemplatePID == oldTemplate.pid {
		t.Errorf("template_pid after the reload = %d, before %d; want a new template", st.TemplatePID, oldTemplate.pid)
	}
	if st.Generation != before.Generation+1 {
		t.Errorf("generation after the reload = %d, before %d; want one more", st.Generation, before.Generation)
	}
	if r := st.Rollout; r == nil || r.State != "ok" || r.Cause != "reload" || r.From != before.Generation || r.To != before.Generation+1 {
		t.Errorf("/status rollout after the reload = %+v; want state ok, cause reload, from %d to %d", r, before.Generation, before.Generation+1)
	}
	// A worker that is being replaced may be missing for a moment, never one too many.
	if !poll(5*time.Second, func() bool { st = s.rolloutStatus(); return st.Workers.Total == 3 && len(st.Workers.List) == 3 }) {
		t.Errorf("after the reload /status has %d workers (%+v); want 3", st.Workers.Total, st.Workers.List)
	}
	for _, w := range st.Workers.List {
		if w.Generation != before.Generation+1 || proc.Parent(w.PID) != st.TemplatePID {
			t.Errorf("worker %d after the reload: generation %d, parent %d; want generation %d, forked by template %d",
				w.PID, w.Generation, proc.Parent(w.PID), before.Generation+1, st.TemplatePID)
		}
	}
	if n := lowest.Load(); n < 2 {
		t.Errorf("during the reload /status showed %d workers; want never fewer than workers - 1 = 2", n)
	}
	t.Logf("reload under load: v1 %d, v2 %d (%d after the roll), failed 0 of %d", load.count(load.ok, -1, "v1"),
		load.count(load.ok, -1, "v2"), load.count(load.ok, 1, "v2"), load.total.Load())
}

// Acceptance 1: askrd reload in CoW mode under continuous load, after the code changed on disk,
// and after a release was switched by replacing a symlink.
func TestCowReloadUnderLoad(t *testing.T) {
	t.Run("code changed", func(t *testing.T) {
		app := t.TempDir()
		writeApp(t, app, versionFile("v1", 0))
		s := startCow(t, opts{args: []string{"--workers", "3"}, root: filepath.Join(app, "public"), script: filepath.Join(app, "worker.php")})
		reloadUnderLoad(t, s, func() { writeAtomic(t, filepath.Join(app, "version.php"), versionFile("v2", 0)) })
	})
	t.Run("symlink release", func(t *testing.T) {
		app := t.TempDir()
		writeApp(t, filepath.Join(app, "releases", "1"), versionFile("v1", 0))
		writeApp(t, filepath.Join(app, "releases", "2"), versionFile("v2", 0))
		current := filepath.Join(app, "current")
		if err := os.Symlink("releases/1", current); err != nil {
			t.Fatal(err)
		}
		s := startCow(t, opts{args: []string{"--workers", "3"}, root: filepath.Join(current, "public"), script: filepath.Join(current, "worker.php")})
		reloadUnderLoad(t, s, func() {
			// The deploy: a new symlink renamed over the old one (atomic).
			if err := os.Symlink("releases/2", current+".new"); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(current+".new", current); err != nil {
				t.Fatal(err)
			}
		})
	})
}

// sameSet reports whether a and b hold the same pids.
func sameSet(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !containsInt(b, x) {
			return false
		}
	}
	return true
}

// stillServing fails the test unless the old generation is what runs and what /status lists.
func stillServing(t *testing.T, s *server, what string, workers []process, template process, listed []int) {
	t.Helper()
	if gone := len(workers) - len(stillRunning(workers)); gone != 0 {
		t.Errorf("%s: %d of the old workers %v exited; want all running", what, gone, workers)
	}
	st := s.rolloutStatus()
	if !sameSet(st.workerPIDs(), listed) {
		t.Errorf("%s: /status lists workers %v; want the old ones %v", what, st.workerPIDs(), listed)
	}
	if template.pid != 0 && (!template.running() || st.TemplatePID != template.pid) {
		t.Errorf("%s: template %d running %t, template_pid %d; want the old template", what, template.pid, template.running(), st.TemplatePID)
	}
	if r := st.Rollout; r == nil || r.State != "aborted" || r.Detail == "" {
		t.Errorf("%s: /status rollout = %+v; want state aborted and why", what, r)
	}
}

// Acceptance 2, a new template that fails to boot: askrd reload fails naming PHP's error, the old
// generation serves on (no request fails), and a good version is deployed after it.
func TestCowReloadBootFailure(t *testing.T) {
	app := t.TempDir()
	writeApp(t, app, versionFile("v1", 0))
	s := startCow(t, opts{args: []string{"--workers", "3"}, root: filepath.Join(app, "public"), script: filepath.Join(app, "worker.php")})
	workers, template := oldGeneration(t, s)
	listed := s.rolloutStatus().workerPIDs()
	load := s.startVersionLoad(4, 20000, 3*time.Minute)
	defer load.Stop()
	load.waitServed(t, 50)
	for _, c := range []struct{ name, code, want string }{
		{"parse error", "<?php\nconst APP_VERSION = 'v2'\nconst APP_FAIL_EVERY = 0;\n", "syntax error"},
		{"throws at boot", "<?php\nthrow new RuntimeException('v3 cannot boot: no database');\n", "v3 cannot boot: no database"},
	} {
		writeAtomic(t, filepath.Join(app, "version.php"), c.code)
		out, err := reloadCLI(t, s)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("askrd reload of a version with a %s: %v\n%s\nwant a failure naming PHP's error %q", c.name, err, out, c.want)
		}
		t.Logf("askrd reload of a version with a %s: %v: %s", c.name, err, strings.TrimSpace(out))
		load.waitServed(t, 50)
		stillServing(t, s, "after a reload with a "+c.name, workers, template, listed)
	}
	load.Stop()
	load.checkNoFailure(t)
	if n := load.count(load.ok, -1, "v1"); n == 0 || load.count(load.ok, -1, "v2") != 0 {
		t.Errorf("answers: %d from v1, %d from v2; want only v1", n, load.count(load.ok, -1, "v2"))
	}
	// A failed reload leaves nothing staged: the next one goes through.
	writeAtomic(t, filepath.Join(app, "version.php"), versionFile("v4", 0))
	if out, err := reloadCLI(t, s); err != nil {
		t.Fatalf("askrd reload of a good version after two failed ones: %v\n%s", err, out)
	}
	if !poll(60*time.Second, func() bool { return allVersion(s, "v4", 10) && !template.running() }) {
		t.Errorf("after a good reload: answers not all v4, or the old template %d still runs (%t)", template.pid, template.running())
	}
}
