package integration

// Issue 16: the canary verdict of a reload in both modes, and refork (helpers: reload_test.go).

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/proc"
)

// reloadModes are the modes a reload's canary is judged in: worker mode (not in the suite's CoW
// run, where every askrd runs CoW mode) and CoW mode.
func reloadModes() []string {
	if cowMode() {
		return []string{"cow"}
	}
	return []string{"worker", "cow"}
}

// Acceptance 2, a canary that answers 500 to every second request: with [reload] canary the
// reload is rolled back after canary_window and askrd reload fails naming the error rate; the old
// generation serves on. Then a healthy version rolls on.
func TestReloadCanaryRollback(t *testing.T) {
	for _, mode := range reloadModes() {
		t.Run(mode, func(t *testing.T) {
			app := t.TempDir()
			writeApp(t, app, versionFile("v1", 0))
			o := opts{args: []string{"--workers", "3"}, root: filepath.Join(app, "public"), script: filepath.Join(app, "worker.php"),
				config: "[reload]\ncanary = true\ncanary_window = \"2s\"\ncanary_min_requests = 5\n"}
			var s *server
			if mode == "cow" {
				s = startCow(t, o)
			} else {
				s = startAskrd(t, o)
			}
			workers, template := oldGeneration(t, s)
			listed := s.rolloutStatus().workerPIDs()
			load := s.startVersionLoad(4, 20000, 3*time.Minute)
			defer load.Stop()
			load.waitServed(t, 50)

			writeAtomic(t, filepath.Join(app, "version.php"), versionFile("v2", 2))
			out, err := reloadCLI(t, s)
			if err == nil || !regexp.MustCompile(`(?i)5xx|error rate`).MatchString(out) {
				t.Errorf("askrd reload of a canary answering 500 to half its requests: %v\n%s\nwant a failure naming the error rate", err, out)
			}
			t.Logf("askrd reload of a canary answering 500 to half its requests: %v: %s", err, strings.TrimSpace(out))
			st := s.rolloutStatus()
			canary := 0
			if st.Rollout != nil {
				canary = st.Rollout.Canary
			}
			if !poll(30*time.Second, func() bool { return (canary == 0 || !proc.Alive(canary)) && allVersion(s, "v1", 20) }) {
				t.Fatalf("after the rollback: canary %d alive %t, or not only v1 answers", canary, canary != 0 && proc.Alive(canary))
			}
			load.phase.Store(1)
			load.waitServed(t, 200)
			stillServing(t, s, "after the rollback", workers, template, listed)
			if n := load.count(load.fail500, 0, "v2"); n == 0 {
				t.Errorf("the canary answered no request with 500; want it judged on real traffic")
			}
			if n, m := load.count(load.ok, 1, "v2"), load.count(load.fail500, 1, "v2"); n+m != 0 {
				t.Errorf("after the rollback v2 still answered %d requests (%d with 500)", n+m, m)
			}

			// A healthy version: the canary is judged and the others follow.
			writeAtomic(t, filepath.Join(app, "version.php"), versionFile("v3", 0))
			out, err = reloadCLI(t, s)
			if err != nil {
				t.Fatalf("askrd reload of a healthy version with canary = true: %v\n%s", err, out)
			}
			t.Logf("askrd reload of a healthy version: %s", strings.TrimSpace(out))
			if r := s.rolloutStatus().Rollout; r == nil || (r.State != "ok" && r.State != "inconclusive" && r.State != "rolling") {
				t.Errorf("/status rollout after a healthy canary = %+v; want it rolling on", r)
			}
			if !poll(60*time.Second, func() bool {
				return len(stillRunning(workers)) == 0 && s.rolloutStatus().rolloutState() != "rolling" && allVersion(s, "v3", 10)
			}) {
				t.Fatalf("after a healthy reload: old workers %v still running, or rollout %+v, or not only v3 answers",
					stillRunning(workers), s.rolloutStatus().Rollout)
			}
			if st := s.rolloutStatus().rolloutState(); st != "ok" && st != "inconclusive" {
				t.Errorf("rollout state after a healthy reload = %q; want ok (or inconclusive)", st)
			}
			st = s.rolloutStatus()
			if !poll(5*time.Second, func() bool { st = s.rolloutStatus(); return st.Workers.Total == 3 }) {
				t.Errorf("after the healthy reload /status has %d workers (%+v); want 3", st.Workers.Total, st.Workers.List)
			}
			load.Stop()
			load.checkNoFailure(t)
		})
	}
}

// Acceptance 4, refork: with refork_after = [50] a worker that has served 50 requests becomes the
// template; its forks replace the old workers and the old template exits. Only once: the list has
// one count.
func TestRefork(t *testing.T) {
	app := t.TempDir()
	writeApp(t, app, versionFile("v1", 0))
	s := startCow(t, opts{args: []string{"--workers", "2"}, root: filepath.Join(app, "public"), script: filepath.Join(app, "worker.php"),
		config: "[worker]\nrefork_after = [50]\n"})
	before := s.rolloutStatus()
	workers, template := oldGeneration(t, s)
	load := s.startVersionLoad(2, 1000, 2*time.Minute)
	defer load.Stop()
	var st rolloutStatus
	if !poll(60*time.Second, func() bool {
		st = s.rolloutStatus()
		return st.TemplatePID != template.pid && !template.running() && len(stillRunning(workers)) <= 1 && st.rolloutState() != "rolling"
	}) {
		t.Fatalf("no refork within 60 s and %d requests: template_pid %d (was %d, running %t), old workers running %v, rollout %+v",
			load.total.Load(), st.TemplatePID, template.pid, template.running(), stillRunning(workers), st.Rollout)
	}
	promoted := st.TemplatePID
	if still := stillRunning(workers); !containsInt(still, promoted) || len(still) != 1 {
		t.Errorf("old workers running after the refork: %v; want only the promoted one, the template %d", still, promoted)
	}
	if r := st.Rollout; r == nil || r.Cause != "refork" || r.State != "ok" || r.From != before.Generation || r.To != before.Generation+1 {
		t.Errorf("/status rollout after the refork = %+v; want cause refork, state ok, from %d to %d", r, before.Generation, before.Generation+1)
	}
	load.phase.Store(1)
	load.waitServed(t, 300)
	load.Stop()
	load.checkNoFailure(t)
	st = s.rolloutStatus()
	if st.TemplatePID != promoted || st.Generation != before.Generation+1 {
		t.Errorf("after 300 more requests: template %d, generation %d; want still %d and %d (refork_after has one count)",
			st.TemplatePID, st.Generation, promoted, before.Generation+1)
	}
	// A worker that is being replaced may be missing for a moment, never one too many.
	if !poll(5*time.Second, func() bool { st = s.rolloutStatus(); return st.Workers.Total == 2 }) {
		t.Errorf("after the refork /status has %d workers (%+v); want 2", st.Workers.Total, st.Workers.List)
	}
	for _, w := range st.Workers.List {
		if w.Generation != before.Generation+1 || proc.Parent(w.PID) != promoted {
			t.Errorf("worker %d after the refork: generation %d, parent %d; want generation %d, forked by the new template %d",
				w.PID, w.Generation, proc.Parent(w.PID), before.Generation+1, promoted)
		}
	}
	if n := load.count(load.ok, -1, "v1"); n < 300 {
		t.Errorf("%d answers from v1; want every one (≥ 300)", n)
	}
}
