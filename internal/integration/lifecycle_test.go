package integration

import (
	"fmt"
	"io"
	"net/http"
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

// Process lifecycle: what askrd starts or forks, directly or not, ends with it (issue 12).

// process is a process seen at one moment: its pid and start time, so that a reused pid never
// passes for it.
type process struct {
	pid   int
	start uint64
	comm  string
}

func snapshot(pid int) process {
	st, _ := proc.ReadStat(pid)
	return process{pid: pid, start: st.StartTime, comm: st.Comm}
}

// running reports whether p still runs (a zombie has ended).
func (p process) running() bool {
	st, err := proc.ReadStat(p.pid)
	return err == nil && st.StartTime == p.start && proc.Alive(p.pid)
}

// tree returns pid's descendants.
func tree(pid int) []process {
	var out []process
	for _, c := range proc.Children(pid) {
		out = append(out, snapshot(c))
		out = append(out, tree(c)...)
	}
	return out
}

// phpTree returns the php-cgi processes under askrd: in CoW mode the template and its workers
// (with the spare forked ahead), otherwise the workers.
func phpTree(t *testing.T, s *server) []process {
	t.Helper()
	var out []process
	for _, p := range tree(s.cmd.Process.Pid) {
		if p.comm == "php-cgi" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Fatalf("askrd %d has no php-cgi process under it", s.cmd.Process.Pid)
	}
	return out
}

// kill9 kills askrd with SIGKILL and waits for it.
func (s *server) kill9() {
	s.cmd.Process.Kill()
	<-s.done
}

// awaitGone fails the test unless every process of ps has ended within timeout; survivors are
// killed so that they do not outlive the test.
func awaitGone(t *testing.T, what string, ps []process, timeout time.Duration) {
	t.Helper()
	var left []process
	poll(timeout, func() bool {
		left = left[:0]
		for _, p := range ps {
			if p.running() {
				left = append(left, p)
			}
		}
		return len(left) == 0
	})
	for _, p := range left {
		t.Errorf("%s: %s %d still runs (state %c, parent %d) %v after", what, p.comm, p.pid, proc.State(p.pid), proc.Parent(p.pid), timeout)
		syscall.Kill(p.pid, syscall.SIGKILL)
	}
}

// background sends GET path from a goroutine and forgets the answer (askrd may be killed first).
func (s *server) background(path string) {
	go func() {
		resp, err := client.Get(s.URL + path)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
}

// await waits for a file a request touches once it runs.
func await(t *testing.T, file string) {
	t.Helper()
	if !poll(10*time.Second, func() bool { _, err := os.Stat(file); return err == nil }) {
		t.Fatalf("the request that touches %s did not start within 10 s", file)
	}
}

// lifecycleModes runs f in worker mode and in CoW mode, whatever ASKR_TEST_COW says.
func lifecycleModes(t *testing.T, f func(t *testing.T, start func(opts) *server)) {
	t.Run("worker", func(t *testing.T) {
		t.Setenv("ASKR_TEST_COW", "0")
		f(t, func(o opts) *server { return startAskrd(t, o) })
	})
	t.Run("cow", func(t *testing.T) {
		f(t, func(o opts) *server { return startCow(t, o) })
	})
	t.Run("cow-noext", func(t *testing.T) {
		f(t, func(o opts) *server { o.config = "[worker]\nextension = \"none\"\n"; return startCow(t, o) })
	})
}

// kill -9 of askrd with a busy, a spinning and an idle worker: no php-cgi is left 2 s later. In
// worker mode the workers' parent-death signal does it; in CoW mode the template's (SIGTERM: it
// kills the workers it forked, then exits) and, with the askr extension, each worker's own.
func TestKill9OfAskrdLeavesNoPHP(t *testing.T) {
	lifecycleModes(t, func(t *testing.T, start func(opts) *server) {
		s := start(opts{args: []string{"--workers", "3", "--ini", "max_execution_time = 120"}})
		marks := t.TempDir()
		s.background("/sleep?s=60&mark=" + filepath.Join(marks, "busy"))
		s.background("/burn?ms=60000&mark=" + filepath.Join(marks, "spin"))
		await(t, filepath.Join(marks, "busy"))
		await(t, filepath.Join(marks, "spin"))
		ps := phpTree(t, s)
		if len(ps) < 3 {
			t.Fatalf("%d php-cgi processes under askrd; want at least the 3 workers", len(ps))
		}
		s.kill9()
		awaitGone(t, "after kill -9 of askrd", ps, 2*time.Second)
	})
}

// Orphans of a killed template (askrd's children now, serving out their requests) still die with
// askrd: the askr extension gives each forked worker a parent-death rule that spares it when it is
// re-parented to askrd and kills it when askrd dies.
func TestKill9OfAskrdKillsOrphanedCowWorkers(t *testing.T) {
	s := startCow(t, opts{args: []string{"--workers", "2", "--ini", "max_execution_time = 120"}})
	if !strings.Contains(s.logs.String(), "askr.so") {
		if os.Getenv("CI") != "" {
			t.Fatal("askrd runs without the askr extension (make ext; needs php8.2-dev)")
		}
		t.Skip("the askr extension is not built (needs php8.2-dev)")
	}
	tmpl := templatePID(t, s)
	marks := t.TempDir()
	s.background("/sleep?s=60&mark=" + filepath.Join(marks, "a"))
	s.background("/burn?ms=60000&mark=" + filepath.Join(marks, "b"))
	await(t, filepath.Join(marks, "a"))
	await(t, filepath.Join(marks, "b"))
	ps := phpTree(t, s)
	syscall.Kill(tmpl, syscall.SIGKILL)
	s.waitLog("generation=2", 30*time.Second)
	var orphans []process
	for _, p := range ps {
		if p.pid != tmpl && p.running() {
			if ppid := proc.Parent(p.pid); ppid != s.cmd.Process.Pid {
				t.Fatalf("worker %d of the killed template is a child of %d, not of askrd %d", p.pid, ppid, s.cmd.Process.Pid)
			}
			orphans = append(orphans, p)
		}
	}
	if len(orphans) < 2 {
		t.Fatalf("%d workers of the killed template run on; want the 2 busy ones", len(orphans))
	}
	ps = append(orphans, phpTree(t, s)...)
	s.kill9()
	awaitGone(t, "after kill -9 of askrd", ps, 2*time.Second)
}

// A process PHP starts in the background ends when askrd stops gracefully (askrd, its subreaper,
// sweeps what is left once the workers have stopped). On kill -9 of askrd nothing of askrd runs:
// askr's own processes end by their parent-death rules, but a process PHP started has none and the
// kernel re-parents it (under systemd, the unit's cgroup is killed instead; see docs/design.md).
func TestPHPBackgroundProcessEnds(t *testing.T) {
	lifecycleModes(t, func(t *testing.T, start func(opts) *server) {
		spawn := func(s *server) process {
			t.Helper()
			r := s.get("/spawn")
			pid, err := strconv.Atoi(strings.TrimSpace(r.body))
			if r.status != 200 || err != nil {
				t.Fatalf("/spawn = %d %q", r.status, r.body)
			}
			p := snapshot(pid)
			if p.comm != "sleep" || !p.running() {
				t.Fatalf("/spawn answered pid %d, which is %q, not a running sleep", pid, p.comm)
			}
			t.Cleanup(func() {
				if p.running() {
					syscall.Kill(p.pid, syscall.SIGKILL)
				}
			})
			return p
		}

		s := start(opts{args: []string{"--workers", "2"}})
		sleep := spawn(s)
		if !poll(5*time.Second, func() bool { return proc.Parent(sleep.pid) == s.cmd.Process.Pid }) {
			t.Fatalf("the background sleep %d is a child of %d, not of askrd %d (its subreaper)", sleep.pid, proc.Parent(sleep.pid), s.cmd.Process.Pid)
		}
		s.stop()
		if s.err != nil {
			t.Errorf("askrd exited with %v after SIGTERM; want 0", s.err)
		}
		awaitGone(t, "after SIGTERM to askrd", []process{sleep}, 2*time.Second)
		if !strings.Contains(s.logs.String(), "ended processes PHP left running") {
			t.Errorf("askrd did not log the processes it ended")
		}

		s = start(opts{args: []string{"--workers", "2"}})
		spawn(s)
		ps := phpTree(t, s)
		s.kill9()
		awaitGone(t, "after kill -9 of askrd", ps, 2*time.Second)
	})
}

// 1 000 exit() requests: every worker that exits is waited for, so the template's children are
// exactly its live workers (the pool's and the spare forked ahead), none a zombie; in worker mode
// askrd's are exactly its workers.
func TestExitRequestsLeaveNoZombie(t *testing.T) {
	const workers, requests, conc = 4, 1000, 4
	run := func(t *testing.T, s *server, parent func() int, want int) {
		statuses := countStatuses(s.URL+"/exit", conc, requests, nil)
		if statuses[http.StatusOK] != requests {
			t.Errorf("%d exit() requests answered %v (status: count); want all 200", requests, statuses)
		}
		// Settled: the same running php-cgi children before and after a few requests, and the
		// workers that serve those requests among them (a worker that has answered its exit()
		// may still be running a moment, its successor not forked yet).
		var states []string
		list := func() (kids []int, clean bool) {
			states = states[:0]
			clean = true
			for _, c := range proc.Children(parent()) {
				st := proc.State(c)
				kids = append(kids, c)
				states = append(states, fmt.Sprintf("%d:%c:%s", c, st, proc.Comm(c)))
				clean = clean && st != 'Z' && proc.Comm(c) == "php-cgi"
			}
			return kids, clean
		}
		ok := poll(10*time.Second, func() bool {
			kids, clean := list()
			if !clean || len(kids) != want {
				return false
			}
			for range 2 * workers {
				if !slices.Contains(kids, pidOf(t, s)) {
					return false
				}
			}
			again, _ := list()
			return slices.Equal(kids, again)
		})
		if !ok {
			t.Fatalf("after %d exit() requests the parent's children are %v; want %d running php-cgi workers, the ones that serve", requests, states, want)
		}
	}
	t.Run("worker", func(t *testing.T) {
		t.Setenv("ASKR_TEST_COW", "0")
		s := startAskrd(t, opts{args: []string{"--workers", strconv.Itoa(workers)}})
		run(t, s, func() int { return s.cmd.Process.Pid }, workers)
	})
	t.Run("cow", func(t *testing.T) {
		s := startCow(t, opts{args: []string{"--workers", strconv.Itoa(workers)}})
		tmpl := templatePID(t, s)
		run(t, s, func() int { return tmpl }, workers+1) // the spare: see template.Start
		if p := templatePID(t, s); p != tmpl {
			t.Errorf("the template changed (%d → %d) during exit() requests", tmpl, p)
		}
	})
}

// A worker script whose error handler throws on every warning: in CoW mode the template sees
// SIGCHLD each time a worker exits, and the interrupted wait's warning must not reach that
// handler — the template (its pid) survives every exit() and a stop, with no fatal error logged.
func TestCowTemplateSurvivesAThrowingErrorHandler(t *testing.T) {
	script := filepath.Join(repoRoot(t), "internal", "integration", "testdata", "throwing-handler.php")
	s := startCow(t, opts{script: script, args: []string{"--workers", "2"}})
	for i := 0; i < 5; i++ {
		s.get("/exit")
	}
	if !poll(10*time.Second, func() bool { return s.get("/").status == 200 }) {
		t.Fatalf("no worker answered after the exit() requests:\n%s", s.logs.String())
	}
	s.stop()
	logs := s.logs.String()
	if n := strings.Count(logs, "template ready"); n != 1 {
		t.Errorf("%d templates booted; want 1 (the template died):\n%s", n, logs)
	}
	if strings.Contains(logs, "Fatal") || strings.Contains(logs, "ErrorException") {
		t.Errorf("an error reached the app's handler:\n%s", logs)
	}
	if s.err != nil {
		t.Errorf("askrd exit: %v; want 0", s.err)
	}
}
