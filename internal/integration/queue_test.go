package integration

// [queue] with the shipped Laravel queue script on the example's database queue (SQLite): jobs
// dispatched through HTTP run exactly once; in CoW mode the queue workers are forks of the
// template and share its memory; a stop lets the running job finish; a reload brings the new
// code (issue 17). The helpers here are prefixed qu.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/proc"
)

// quConfig is an askr.toml with n queue workers running the shipped Laravel queue script.
func quConfig(t *testing.T, n int, extra string) string {
	return fmt.Sprintf("[queue]\nworkers = %d\nscript = %q\n%s", n, filepath.Join(repoRoot(t), "examples", "laravel-queue.php"), extra)
}

// quEvent is one line of the example's storage/queue-runs.log (App\Jobs\RecordRun).
type quEvent struct {
	event   string // ran, started, finished
	number  int
	pid     int
	version string
}

func quEvents(t *testing.T, s *lvServer) []quEvent {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(s.Base, "storage", "queue-runs.log"))
	var out []quEvent
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 4 {
			t.Fatalf("queue-runs.log: bad line %q", line)
		}
		n, err1 := strconv.Atoi(f[1])
		pid, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			t.Fatalf("queue-runs.log: bad line %q", line)
		}
		out = append(out, quEvent{f[0], n, pid, f[3]})
	}
	return out
}

// quWait polls the runs log until cond holds.
func quWait(t *testing.T, s *lvServer, what string, timeout time.Duration, cond func([]quEvent) bool) []quEvent {
	t.Helper()
	var ev []quEvent
	if !poll(timeout, func() bool { ev = quEvents(t, s); return cond(ev) }) {
		t.Fatalf("%s: not within %v; %d events: %v", what, timeout, len(ev), ev)
	}
	return ev
}

// quDispatch dispatches n jobs numbered from through HTTP, each taking seconds.
func quDispatch(t *testing.T, s *lvServer, n, from int, seconds float64) {
	t.Helper()
	r := s.send(nil, "POST", fmt.Sprintf("/api/queue/dispatch?n=%d&from=%d&seconds=%g", n, from, seconds), nil, "Accept", "application/json")
	if r.status != 200 || int(r.json(t)["dispatched"].(float64)) != n {
		t.Fatalf("POST /api/queue/dispatch?n=%d = %d %.300s; want %d dispatched", n, r.status, r.body, n)
	}
}

// quQueue is GET /api/queue: jobs waiting or running, jobs failed.
func quQueue(t *testing.T, s *lvServer) (jobs, failed int) {
	t.Helper()
	r := s.send(nil, "GET", "/api/queue", nil)
	if r.status != 200 {
		t.Fatalf("GET /api/queue = %d %.300s", r.status, r.body)
	}
	m := r.json(t)
	return int(m["jobs"].(float64)), int(m["failed"].(float64))
}

// quPSS is pid's proportional set size in kB.
func quPSS(t *testing.T, pid int) int64 {
	t.Helper()
	m, err := proc.ReadMemory(pid)
	if err != nil {
		t.Fatalf("smaps_rollup of %d: %v", pid, err)
	}
	return m.Pss >> 10
}

// A route dispatches 200 jobs; two queue workers run every one exactly once, and both take part.
// In CoW mode each queue worker is a child of the template, and its PSS is well below that of a
// cold php-cli queue worker running the same script on the same app (both printed).
func TestQueueLaravelExactlyOnce(t *testing.T) {
	lvSkipWithoutPHP(t)
	s := lvStartConfig(t, quConfig(t, 2, ""), "--workers", "2")
	workers := s.scRunning("queue", 2, 30*time.Second)
	// 30 ms each: one worker alone would take 6 s, past the 3 s a worker idles between polls of
	// an empty queue (queue:work --sleep), so both take part.
	quDispatch(t, s, 200, 1, 0.03)
	quWait(t, s, "200 jobs run", 2*time.Minute, func(ev []quEvent) bool { return len(ev) >= 400 })
	if !poll(30*time.Second, func() bool { jobs, _ := quQueue(t, s); return jobs == 0 }) {
		jobs, _ := quQueue(t, s)
		t.Errorf("%d jobs still in the jobs table after all 200 ran", jobs)
	}
	ran := map[string]int{}
	by := map[int]int{}
	ranBy := map[int]int{}
	for _, e := range quEvents(t, s) {
		if e.event != "started" && e.event != "finished" || e.version != "v1" {
			t.Errorf("unexpected event %+v", e)
		}
		ran[fmt.Sprint(e.event, e.number)]++
		if e.event == "finished" {
			by[e.pid]++
		}
		if p, ok := ranBy[e.number]; ok && p != e.pid {
			t.Errorf("job %d: events by pids %d and %d", e.number, p, e.pid)
		}
		ranBy[e.number] = e.pid
	}
	for i := 1; i <= 200; i++ {
		if ran[fmt.Sprint("started", i)] != 1 || ran[fmt.Sprint("finished", i)] != 1 {
			t.Errorf("job %d started %d times, finished %d times; want exactly once", i, ran[fmt.Sprint("started", i)], ran[fmt.Sprint("finished", i)])
		}
	}
	if len(ranBy) != 200 {
		t.Errorf("%d job numbers ran; want 200", len(ranBy))
	}
	if _, failed := quQueue(t, s); failed != 0 {
		t.Errorf("%d failed jobs; want none", failed)
	}
	for pid := range by {
		if !slices.Contains(workers, pid) {
			t.Errorf("pid %d ran %d jobs but is not one of the queue workers %v in /status", pid, by[pid], workers)
		}
	}
	if len(by) != 2 {
		t.Errorf("jobs by process: %v; want both queue workers %v to have run some", by, workers)
	}
	// queue:work's lines are in askrd's log, tagged with the role and the worker's pid.
	for pid := range by {
		tag := fmt.Sprintf("Processed:  App\\\\Jobs\\\\RecordRun\" role=queue pid=%d", pid)
		if !strings.Contains(s.logs.String(), tag) {
			t.Errorf("no log line %s", tag)
		}
	}
	if got := s.scRunning("queue", 2, 5*time.Second); !slices.Equal(got, workers) {
		t.Errorf("queue workers %v after the jobs; want the same %v (none restarted)", got, workers)
	}
	if !cowMode() {
		return
	}

	tmpl := s.adminStatus().TemplatePID
	for _, pid := range workers {
		if parent := proc.Parent(pid); parent != tmpl || tmpl == 0 {
			t.Errorf("queue worker %d: parent %d; want the template %d", pid, parent, tmpl)
		}
	}
	// The cold one: askrd outside CoW mode runs the same script on a copy of the app in php-cli.
	t.Setenv("ASKR_TEST_COW", "0")
	cold := lvStartConfig(t, quConfig(t, 1, ""), "--workers", "1")
	coldPID := cold.scRunning("queue", 1, 30*time.Second)[0]
	if c := proc.Comm(coldPID); !strings.HasPrefix(c, "php") || strings.Contains(c, "cgi") {
		t.Fatalf("the cold queue worker %d is %q; want php-cli", coldPID, c)
	}
	quDispatch(t, cold, 3, 1, 0)
	quWait(t, cold, "the cold worker's 3 jobs", time.Minute, func(ev []quEvent) bool { return len(ev) == 3 })
	coldPSS := quPSS(t, coldPID)
	for _, pid := range workers {
		warm := quPSS(t, pid)
		t.Logf("PSS: CoW queue worker %d: %d kB; cold php-cli queue worker %d: %d kB (%.0f %%)",
			pid, warm, coldPID, coldPSS, 100*float64(warm)/float64(coldPSS))
		if warm*100 > coldPSS*60 {
			t.Errorf("PSS of CoW queue worker %d is %d kB, cold php-cli's %d kB; want below 60 %%", pid, warm, coldPSS)
		}
	}
}

// SIGTERM while a job runs: the job finishes, then the queue worker exits, askrd exits 0, and
// the log shows the HTTP drain before the queue worker stopped.
func TestQueueStopDuringJob(t *testing.T) {
	lvSkipWithoutPHP(t)
	s := lvStartConfig(t, quConfig(t, 1, ""), "--workers", "1")
	pid := s.scRunning("queue", 1, 30*time.Second)[0]
	worker := snapshot(pid)
	quDispatch(t, s, 1, 1, 4)
	quWait(t, s, "the slow job started", 30*time.Second, func(ev []quEvent) bool { return len(ev) >= 1 })
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("askrd still runs 60 s after SIGTERM")
	}
	if s.err != nil {
		t.Errorf("askrd exited with %v; want 0", s.err)
	}
	ev := quEvents(t, s)
	want := []quEvent{{"started", 1, pid, "v1"}, {"finished", 1, pid, "v1"}}
	if !slices.Equal(ev, want) {
		t.Errorf("events %v; want %v: the job finished by its worker", ev, want)
	}
	if worker.running() {
		t.Errorf("queue worker %d still runs after askrd exited", pid)
	}
	logs := s.logs.String()
	drain, stopped := strings.Index(logs, "draining"), strings.LastIndex(logs, "stopped")
	exit := quExitLine(logs, pid)
	if drain < 0 || exit < 0 || stopped < 0 || !(drain < exit && exit < stopped) {
		t.Errorf("log: draining at %d, the queue worker's exit at %d, stopped at %d; want them in that order", drain, exit, stopped)
	}
}

// quExitLine is where the log says the queue worker pid ended, or -1.
func quExitLine(logs string, pid int) int {
	at := 0
	for line := range strings.SplitSeq(logs, "\n") {
		l := strings.ToLower(line)
		if strings.Contains(l, strconv.Itoa(pid)) && (strings.Contains(l, "exit") || strings.Contains(l, "stopped")) {
			return at
		}
		at += len(line) + 1
	}
	return -1
}

// After askrd reload with the job's code changed on disk, newly dispatched jobs run the new code,
// on new queue workers (in CoW mode: children of the new template).
func TestQueueReloadRunsNewCode(t *testing.T) {
	lvSkipWithoutPHP(t)
	s := lvStartConfig(t, quConfig(t, 2, ""), "--workers", "1")
	before := s.scRunning("queue", 2, 30*time.Second)
	oldTmpl := s.adminStatus().TemplatePID
	quDispatch(t, s, 4, 1, 0)
	quWait(t, s, "4 jobs on the old code", time.Minute, func(ev []quEvent) bool { return len(ev) == 4 })

	job := filepath.Join(s.Base, "app", "Jobs", "RecordRun.php")
	code, err := os.ReadFile(job)
	if err != nil {
		t.Fatal(err)
	}
	newCode := strings.Replace(string(code), "VERSION = 'v1'", "VERSION = 'v2'", 1)
	if newCode == string(code) {
		t.Fatalf("%s has no VERSION = 'v1'", job)
	}
	if err := os.WriteFile(job, []byte(newCode), 0o644); err != nil {
		t.Fatal(err)
	}
	r := s.adminDo("POST", "/reload")
	if r.status != 200 || !strings.Contains(r.body, `"ok": true`) {
		t.Fatalf("POST /reload = %d %q; want 200 ok", r.status, r.body)
	}
	var after []int
	if !poll(60*time.Second, func() bool {
		after = nil
		for _, sl := range s.scSlots("queue") {
			if sl.State == "running" && sl.PID > 0 && !slices.Contains(before, sl.PID) {
				after = append(after, sl.PID)
			}
		}
		return len(after) == 2
	}) {
		t.Fatalf("queue workers after the reload: %+v; want 2 new ones (before: %v)", s.scSlots("queue"), before)
	}
	for _, pid := range before {
		if proc.Alive(pid) && proc.State(pid) != 'Z' {
			t.Errorf("old queue worker %d still runs after the new ones started", pid)
		}
	}
	if cowMode() {
		tmpl := s.adminStatus().TemplatePID
		if tmpl == oldTmpl {
			t.Errorf("template %d after the reload; want a new one", tmpl)
		}
		for _, pid := range after {
			if parent := proc.Parent(pid); parent != tmpl {
				t.Errorf("queue worker %d after the reload: parent %d; want the new template %d", pid, parent, tmpl)
			}
		}
	}
	quDispatch(t, s, 6, 101, 0)
	ev := quWait(t, s, "6 jobs after the reload", time.Minute, func(ev []quEvent) bool { return len(ev) == 10 })
	for _, e := range ev[4:] {
		if e.number < 101 || e.version != "v2" || !slices.Contains(after, e.pid) {
			t.Errorf("job after the reload: %+v; want version v2, run by one of the new workers %v", e, after)
		}
	}
}
