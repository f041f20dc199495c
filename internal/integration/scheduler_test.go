package integration

// [scheduler]: a run at every interval boundary, never two at once; a boundary that finds the
// previous run still going is skipped and logged (issue 17).

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// schedRun is one run as the scheduled script recorded it.
type schedRun struct {
	pid, ppid  int
	start, end float64 // Unix seconds
	role       string
}

func (r schedRun) String() string {
	return fmt.Sprintf("pid %d: %.3f–%.3f", r.pid, r.start, r.end)
}

// schedRuns reads the runs recorded in file, one a line: "PID START END [PPID ROLE]", by start.
func schedRuns(t *testing.T, file string) []schedRun {
	t.Helper()
	b, _ := os.ReadFile(file)
	var out []schedRun
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		var r schedRun
		var err error
		r.pid, err = strconv.Atoi(f[0])
		if err == nil {
			r.start, err = strconv.ParseFloat(f[1], 64)
		}
		if err == nil {
			r.end, err = strconv.ParseFloat(f[2], 64)
		}
		if err == nil && len(f) >= 5 {
			r.ppid, err = strconv.Atoi(f[3])
			r.role = f[4]
		}
		if err != nil {
			t.Fatalf("%s: bad line %q: %v", file, line, err)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start < out[j].start })
	return out
}

// waitRuns polls file until cond holds for its runs.
func waitRuns(t *testing.T, s *server, file, what string, timeout time.Duration, cond func([]schedRun) bool) []schedRun {
	t.Helper()
	var runs []schedRun
	if !poll(timeout, func() bool { runs = schedRuns(t, file); return cond(runs) }) {
		t.Fatalf("%s not within %v; runs: %v", what, timeout, runs)
	}
	return runs
}

// checkRuns fails unless every run started within late of a whole second (an interval of 1 s),
// each in a second of its own, and none overlapped the one before.
func checkRuns(t *testing.T, runs []schedRun, late time.Duration) {
	t.Helper()
	for i, r := range runs {
		if frac := r.start - math.Floor(r.start); frac > late.Seconds() {
			t.Errorf("run %v started %.0f ms after its boundary; want within %v", r, frac*1000, late)
		}
		if i == 0 {
			continue
		}
		p := runs[i-1]
		if r.start < p.end {
			t.Errorf("run %v overlaps run %v: never two at once", r, p)
		}
		if math.Floor(r.start) == math.Floor(p.start) {
			t.Errorf("runs %v and %v started at the same boundary", p, r)
		}
	}
}

// schedScript writes the plain PHP scheduled script into dir: it records its pid, start and end,
// its parent and askr_worker_role() in dir/runs.log, and takes dir/sleep seconds if that exists.
func schedScript(t *testing.T, dir string) string {
	t.Helper()
	script := filepath.Join(dir, "scheduled.php")
	err := os.WriteFile(script, []byte(`<?php
$start = microtime(true);
$role = function_exists('askr_worker_role') ? askr_worker_role() : 'none';
$sleep = is_file(__DIR__ . '/sleep') ? (float) file_get_contents(__DIR__ . '/sleep') : 0.0;
while (microtime(true) < $start + $sleep) {
    usleep(10000);
}
$line = sprintf("%d %.6f %.6f %d %s\n", getmypid(), $start, microtime(true), posix_getppid(), $role ?: 'none');
file_put_contents(__DIR__ . '/runs.log', $line, FILE_APPEND | LOCK_EX);
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return script
}

// The scheduler with a 1 s interval runs its script at each boundary (each run a new process, in
// CoW mode a fork of the template, with askr_worker_role() "scheduler"); once a run takes 2.5 s,
// the boundaries it spans are skipped (counted in /status, logged), and no two runs overlap.
func TestSchedulerRunsAtBoundariesNeverOverlapping(t *testing.T) {
	dir := t.TempDir()
	script := schedScript(t, dir)
	log := filepath.Join(dir, "runs.log")
	s := startAskrd(t, opts{args: []string{"--workers", "1"},
		config: fmt.Sprintf("[scheduler]\nscript = %q\ninterval = \"1s\"\n", script)})
	runs := waitRuns(t, s, log, "5 runs", 30*time.Second, func(r []schedRun) bool { return len(r) >= 5 })
	checkRuns(t, runs, 400*time.Millisecond)
	tmpl := s.adminStatus().TemplatePID
	pids := map[int]bool{}
	for _, r := range runs {
		pids[r.pid] = true
		if r.role != "scheduler" {
			t.Errorf("run %v: askr_worker_role() = %q; want scheduler", r, r.role)
		}
		if cowMode() && r.ppid != tmpl {
			t.Errorf("run %v: parent %d; want the template %d", r, r.ppid, tmpl)
		}
	}
	if len(pids) != len(runs) {
		t.Errorf("%d runs by %d processes; want a new process for each run", len(runs), len(pids))
	}

	// Slow runs: 2.5 s each, with a boundary every second.
	if err := os.WriteFile(filepath.Join(dir, "sleep"), []byte("2.5"), 0o644); err != nil {
		t.Fatal(err)
	}
	runs = waitRuns(t, s, log, "3 slow runs", 60*time.Second, slowRuns(3, 2.4))
	checkRuns(t, runs, 400*time.Millisecond)
	slots := s.scSlots("scheduler")
	if len(slots) != 1 || slots[0].Skipped < 2 || slots[0].Restarts < len(runs)-1 {
		t.Errorf("/status scheduler slots %+v; want one, with skipped ≥ 2 and restarts (runs) ≥ %d", slots, len(runs)-1)
	}
	if !strings.Contains(strings.ToLower(s.logs.String()), "skip") {
		t.Errorf("the log says nothing of the skipped boundaries")
	}
}

// The shipped Laravel scheduler (schedule:run) runs the example's scheduled command at every
// boundary, never two at once, also when a run outlasts the interval.
func TestSchedulerLaravel(t *testing.T) {
	lvSkipWithoutPHP(t)
	script := filepath.Join(repoRoot(t), "examples", "laravel-scheduler.php")
	s := lvStartConfig(t, fmt.Sprintf("[scheduler]\nscript = %q\ninterval = \"1s\"\n", script), "--workers", "1")
	log := filepath.Join(s.Base, "storage", "schedule-runs.log")
	runs := waitRuns(t, s.server, log, "4 runs of example:record", 30*time.Second, func(r []schedRun) bool { return len(r) >= 4 })
	checkRuns(t, runs, 500*time.Millisecond)

	if err := os.WriteFile(filepath.Join(s.Base, "storage", "schedule-sleep"), []byte("1.5"), 0o644); err != nil {
		t.Fatal(err)
	}
	runs = waitRuns(t, s.server, log, "2 slow runs", 60*time.Second, slowRuns(2, 1.4))
	checkRuns(t, runs, 500*time.Millisecond)
	if slots := s.scSlots("scheduler"); len(slots) != 1 || slots[0].Skipped < 1 {
		t.Errorf("/status scheduler slots %+v; want one, with skipped ≥ 1", slots)
	}
}

// slowRuns is a condition of waitRuns: n runs that each took at least seconds.
func slowRuns(n int, seconds float64) func([]schedRun) bool {
	return func(r []schedRun) bool {
		slow := 0
		for _, x := range r {
			if x.end-x.start >= seconds {
				slow++
			}
		}
		return slow >= n
	}
}
