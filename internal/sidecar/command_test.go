package sidecar

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/proc"
)

// Real processes: sh -c under the keeper (this test binary, see TestMain).

func spec(t *testing.T, command string) (CommandSpec, *logBuf) {
	log, lb := newLog()
	return CommandSpec{Name: "t", Command: command, Dir: t.TempDir(), Env: os.Environ(), Grace: time.Second, Logger: log}, lb
}

func TestCommandOutputAndExit(t *testing.T) {
	for _, c := range []struct {
		command, exit string
		failed        bool
	}{
		{`echo "out line in $PWD"; echo err line >&2; exit 3`, "exit status 3", true},
		{`echo out line; exit 0`, "exit status 0", false},
		{`kill -TERM $$`, "signal: terminated", true},
		{`kill -USR1 $$`, "signal: user defined signal 1", true},
		{`kill -PIPE $$`, "signal: broken pipe", true},
	} {
		sp, lb := spec(t, c.command)
		p, err := Command(sp)(0)
		if err != nil {
			t.Fatalf("Command(%q): %v", c.command, err)
		}
		select {
		case <-p.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%q: still running", c.command)
		}
		failed, text, known := p.Exit()
		if failed != c.failed || text != c.exit || !known {
			t.Errorf("%q: Exit() = %v, %q, %v; want %v, %q, true", c.command, failed, text, known, c.failed, c.exit)
		}
		if ownLauncher().Owns(p.PID()) {
			t.Errorf("%q: the launcher Owns(%d) after its exit", c.command, p.PID())
		}
		if !strings.Contains(c.command, "echo") {
			continue
		}
		pid := fmt.Sprintf("pid=%d", p.PID())
		if got := lb.lines(`msg="out line`, "name=t", "kind=sidecar", pid); len(got) != 1 {
			t.Errorf("%q: log lines of stdout: %q; want one tagged name=t kind=sidecar %s\nlog:\n%s", c.command, got, pid, lb)
		}
		if strings.Contains(c.command, "$PWD") && len(lb.lines("out line in "+sp.Dir)) != 1 {
			t.Errorf("%q did not run in %s; log:\n%s", c.command, sp.Dir, lb)
		}
		if strings.Contains(c.command, ">&2") && len(lb.lines(`msg="err line"`, pid)) != 1 {
			t.Errorf("%q: stderr line not logged; log:\n%s", c.command, lb)
		}
	}
}

func TestCommandRestartedWhenItFails(t *testing.T) {
	sp, lb := spec(t, `echo started; exit 1`)
	s := New([]Program{{Name: "t", Kind: KindCommand, Count: 1, Grace: time.Second, Launch: Command(sp)}}, sp.Logger)
	s.Start()
	defer s.Stop()
	waitFor(t, 5*time.Second, "3 exits logged", func() bool { return len(lb.lines("msg=exited", `exit="exit status 1"`)) >= 3 })
	st := s.Status()[0]
	if st.Restarts < 2 || st.LastExit != "exit status 1" {
		t.Errorf("Status() = %+v; want restarted, last exit \"exit status 1\"", st)
	}
	var pids []string
	for _, l := range lb.lines("msg=started") {
		pids = append(pids, l[strings.Index(l, "pid="):])
	}
	seen := map[string]bool{}
	for _, p := range pids {
		seen[p] = true
	}
	if len(pids) < 3 || len(seen) != len(pids) {
		t.Errorf("started lines %q; want 3 or more, each of a new pid", pids)
	}
}

// running starts a Supervisor of one command and returns the keeper's pid, its processes (keeper
// included) and their start times, once comm runs n times among them.
func running(t *testing.T, s *Supervisor, comm string, n int) (int, []int, map[int]uint64) {
	t.Helper()
	s.Start()
	waitFor(t, 5*time.Second, "running", func() bool { return s.Status()[0].State == StateRunning })
	keeper := s.Status()[0].PID
	pids, starts := tree(t, keeper, comm, n)
	st, _ := readStart(keeper)
	starts[keeper] = st
	return keeper, append(pids, keeper), starts
}

func readStart(pid int) (uint64, error) {
	st, err := proc.ReadStat(pid)
	return st.StartTime, err
}

func TestCommandKilledAfterGrace(t *testing.T) {
	sp, lb := spec(t, `trap '' TERM; sleep 60`)
	grace := 300 * time.Millisecond
	s := New([]Program{{Name: "t", Kind: KindCommand, Count: 1, Grace: grace, Launch: Command(sp)}}, sp.Logger)
	_, pids, starts := running(t, s, "sleep", 1)
	t0 := time.Now()
	s.Stop()
	if took := time.Since(t0); took < grace {
		t.Errorf("Stop took %s; want the grace, %s (the command ignores SIGTERM)", took, grace)
	}
	if !gone(pids, starts) {
		t.Errorf("after Stop, of %v still running: %v", pids, stillRunning(pids, starts))
	}
	if got := lb.lines(`msg="did not exit within grace 300ms after SIGTERM: killed"`, "name=t"); len(got) != 1 {
		t.Errorf("log lines of the kill: %q; want one\nlog:\n%s", got, lb)
	}
	if st := s.Status()[0]; st.LastExit != "signal: killed" || st.State != StateStopped {
		t.Errorf("Status() = %+v; want stopped, last exit \"signal: killed\"", st)
	}
}

// stillRunning lists those of pids still running.
func stillRunning(pids []int, starts map[int]uint64) []int {
	var out []int
	for _, pid := range pids {
		if !gone([]int{pid}, starts) {
			out = append(out, pid)
		}
	}
	return out
}

func TestStopLeavesNothing(t *testing.T) {
	// A background sleep in the command's group, one in a session of its own, one in the foreground.
	sp, _ := spec(t, `sleep 300 & setsid sleep 300 & sleep 300`)
	s := New([]Program{{Name: "t", Kind: KindCommand, Count: 1, Grace: 5 * time.Second, Launch: Command(sp)}}, sp.Logger)
	_, pids, starts := running(t, s, "sleep", 3)
	t0 := time.Now()
	s.Stop()
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("Stop took %s; want it at once (sh exits on SIGTERM)", took)
	}
	if !gone(pids, starts) {
		t.Errorf("after Stop, of %v still running: %v", pids, stillRunning(pids, starts))
	}
	if st := s.Status()[0]; st.LastExit != "signal: terminated" {
		t.Errorf("Status() = %+v; want last exit \"signal: terminated\"", st)
	}
}

func TestNothingLeftAfterKill9OfParent(t *testing.T) {
	// A stand-in for askrd (TestMain: testParent) starts the keeper (grace 300ms); the command
	// ignores SIGTERM, so only the keeper's SIGKILL after the grace ends it.
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), "ASKR_SIDECAR_TEST_PARENT=trap '' TERM; sleep 300 & setsid sleep 300 & sleep 300")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer parent.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	var keeper int
	if _, err2 := fmt.Sscanf(line, "keeper %d", &keeper); err != nil || err2 != nil {
		t.Fatalf("parent said %q, %v; want its keeper's pid", line, err)
	}
	pids, starts := tree(t, keeper, "sleep", 3)
	starts[keeper], _ = readStart(keeper)
	pids = append(pids, keeper)
	if err := parent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	parent.Wait()
	waitFor(t, 5*time.Second, fmt.Sprintf("all of %v gone after kill -9 of their keeper's parent", pids),
		func() bool { return gone(pids, starts) })
}

func TestRestartStartsNewProcesses(t *testing.T) {
	sp, _ := spec(t, `sleep 300`)
	s := New([]Program{{Name: "t", Kind: KindCommand, Count: 2, Grace: time.Second, Launch: Command(sp)}}, sp.Logger)
	s.Start()
	defer s.Stop()
	waitFor(t, 5*time.Second, "2 running", func() bool {
		st := s.Status()
		return st[0].State == StateRunning && st[1].State == StateRunning
	})
	var old []int
	starts := map[int]uint64{}
	for _, st := range s.Status() {
		pids, ss := tree(t, st.PID, "sleep", 1)
		old = append(old, append(pids, st.PID)...)
		for k, v := range ss {
			starts[k] = v
		}
		starts[st.PID], _ = readStart(st.PID)
	}
	s.Restart()
	for i, st := range s.Status() {
		if st.State != StateRunning || st.Restarts != 1 || slices.Contains(old, st.PID) || st.LastExit != "signal: terminated" {
			t.Errorf("slot %d after Restart: %+v; want running, a new pid, 1 restart, last exit \"signal: terminated\"", i, st)
		}
	}
	if !gone(old, starts) {
		t.Errorf("after Restart, of %v still running: %v", old, stillRunning(old, starts))
	}
}

func TestStopGivesTheProgramItsGrace(t *testing.T) {
	// sh stays the parent of the program (it has more to run after it) and dies of SIGTERM at
	// once; the program traps SIGTERM and takes a second to finish: the keeper must not kill it
	// when sh exits.
	sp, lb := spec(t, `sh -c 'trap "sleep 1; echo done >mark; exit 0" TERM; while :; do sleep .1; done'; echo after`)
	grace := 5 * time.Second
	s := New([]Program{{Name: "t", Kind: KindCommand, Count: 1, Grace: grace, Launch: Command(sp)}}, sp.Logger)
	_, pids, starts := running(t, s, "sh", 2)
	t0 := time.Now()
	s.Stop()
	if took := time.Since(t0); took >= grace {
		t.Errorf("Stop took %s; want less than the grace %s (the program ends a second after SIGTERM)", took, grace)
	}
	if b, err := os.ReadFile(sp.Dir + "/mark"); err != nil || string(b) != "done\n" {
		t.Errorf("the program's SIGTERM handler did not finish: mark: %q, %v\nlog:\n%s", b, err, lb)
	}
	if !gone(pids, starts) {
		t.Errorf("after Stop, of %v still running: %v", pids, stillRunning(pids, starts))
	}
	if got := lb.lines("killed"); len(got) != 0 {
		t.Errorf("log lines of a kill: %q; want none", got)
	}
	if st := s.Status()[0]; st.LastExit != "signal: terminated" {
		t.Errorf("Status() = %+v; want last exit \"signal: terminated\" (sh's)", st)
	}
}

func TestShDiesWithItsKeeper(t *testing.T) {
	sp, _ := spec(t, `sleep 300; echo after`)
	p, err := Command(sp)(0)
	if err != nil {
		t.Fatal(err)
	}
	pids, starts := tree(t, p.PID(), "sleep", 1)
	defer func() {
		for _, pid := range stillRunning(pids, starts) {
			syscall.Kill(pid, syscall.SIGKILL) // the sleep, now askrd's (here init's) to end
		}
	}()
	var sh int
	for _, pid := range pids {
		if proc.Comm(pid) == "sh" && proc.Parent(pid) == p.PID() {
			sh = pid
		}
	}
	if sh == 0 {
		t.Fatalf("no sh below the keeper %d among %v", p.PID(), pids)
	}
	if err := syscall.Kill(p.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, fmt.Sprintf("sh (pid %d) gone after kill -9 of its keeper", sh),
		func() bool { return gone([]int{sh}, starts) })
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the keeper was killed")
	}
}
