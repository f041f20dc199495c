package sidecar

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The supervisor's rules, with fake processes.

func failAtOnce(int) (*fakeProc, error) {
	p := newFakeProc()
	p.exit(true, "exit status 1")
	return p, nil
}

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		fails int
		want  time.Duration
	}{{0, 0}, {1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {3, 400 * time.Millisecond},
		{9, 25600 * time.Millisecond}, {10, 30 * time.Second}, {1000, 30 * time.Second}} {
		if got := backoff(c.fails); got != c.want {
			t.Errorf("backoff(%d) = %s; want %s", c.fails, got, c.want)
		}
	}
}

// checkGaps checks that the gaps between starts are the back-off's: each at least backoff(k),
// not much more, so each at least the one before and roughly doubling.
func checkGaps(t *testing.T, starts []time.Time) {
	t.Helper()
	var prev time.Duration
	for k := 1; k < len(starts); k++ {
		gap, want := starts[k].Sub(starts[k-1]), backoff(k)
		if gap < want || gap > want+want/2+200*time.Millisecond {
			t.Errorf("gap before start %d = %s; want %s (+ a little)", k, gap, want)
		}
		if gap < prev {
			t.Errorf("gap before start %d = %s; shorter than the one before, %s", k, gap, prev)
		}
		prev = gap
	}
}

func TestRestartsWithGrowingBackoff(t *testing.T) {
	log, lb := newLog()
	f := &fakeLaunch{make: failAtOnce}
	s := New([]Program{{Name: "fails", Kind: KindCommand, Count: 1, Grace: time.Second, Launch: f.Launch}}, log)
	s.Start()
	defer s.Stop()
	// Launch counts a start as it begins; the status, once Launch has returned.
	waitFor(t, 5*time.Second, "5 starts", func() bool { return f.count() >= 5 && s.Status()[0].Restarts >= 4 })
	checkGaps(t, f.times()[:5])
	st := s.Status()[0]
	if st.Restarts < 4 || st.LastExit != "exit status 1" || st.ExitedAt.IsZero() {
		t.Errorf("Status() = %+v; want restarts ≥ 4, last exit \"exit status 1\"", st)
	}
	if got := lb.lines("level=WARN", "msg=exited", "name=fails", "kind=sidecar", fmt.Sprintf("pid=%d", f.proc(0).pid),
		`exit="exit status 1"`, "restart_in=100ms"); len(got) != 1 {
		t.Errorf("log lines for the first exit: %q; want one\nlog:\n%s", got, lb)
	}
}

func TestBackoffResetsAfterStableRun(t *testing.T) {
	f := &fakeLaunch{make: func(n int) (*fakeProc, error) {
		p := newFakeProc()
		if n == 3 {
			time.AfterFunc(400*time.Millisecond, func() { p.exit(true, "exit status 1") })
		} else {
			p.exit(true, "exit status 1")
		}
		return p, nil
	}}
	s := New([]Program{{Name: "x", Kind: KindCommand, Count: 1, Launch: f.Launch}}, nil)
	s.stableAfter = 300 * time.Millisecond
	s.Start()
	defer s.Stop()
	waitFor(t, 5*time.Second, "6 starts", func() bool { return f.count() >= 6 })
	ts := f.times()
	checkGaps(t, ts[:4]) // 100ms, 200ms, 400ms
	// Start 3 ran 400ms ≥ 300ms: start 4 follows at once (not after 800ms), start 5 after 100ms.
	if d := ts[4].Sub(ts[3]); d > 400*time.Millisecond+300*time.Millisecond {
		t.Errorf("start 4 came %s after start 3 (which ran 400ms); want it at once after the stable run", d)
	}
	if d := ts[5].Sub(ts[4]); d < backoff(1) || d > backoff(1)+400*time.Millisecond {
		t.Errorf("start 5 came %s after start 4; want %s (back-off started again)", d, backoff(1))
	}
}

func TestOnFailure(t *testing.T) {
	exitWith := func(failed bool, text string) *fakeLaunch {
		return &fakeLaunch{make: func(int) (*fakeProc, error) {
			p := newFakeProc()
			p.exit(failed, text)
			return p, nil
		}}
	}
	log, lb := newLog()
	once, crash, always := exitWith(false, "exit status 0"), exitWith(true, "exit status 2"), exitWith(false, "exit status 0")
	s := New([]Program{
		{Name: "once", Kind: KindCommand, Count: 1, OnFailure: true, Launch: once.Launch},
		{Name: "crash", Kind: KindCommand, Count: 1, OnFailure: true, Launch: crash.Launch},
		{Name: "always", Kind: KindCommand, Count: 1, Launch: always.Launch},
	}, log)
	s.Start()
	defer s.Stop()
	waitFor(t, 5*time.Second, "crash and always restarted twice", func() bool {
		return crash.count() >= 3 && always.count() >= 3 && s.Status()[1].Restarts >= 2
	})
	st := s.Status()
	if once.count() != 1 || st[0].State != StateStopped || st[0].LastExit != "exit status 0" || st[0].Restarts != 0 {
		t.Errorf("on-failure after exit 0: %d starts, status %+v; want 1 start, stopped, last exit \"exit status 0\"", once.count(), st[0])
	}
	if len(lb.lines("name=once", "not restarted (restart = on-failure)")) != 1 {
		t.Errorf("no line saying once is not restarted; log:\n%s", lb)
	}
	if st[1].LastExit != "exit status 2" || st[1].Restarts < 2 {
		t.Errorf("on-failure after exit 2: status %+v; want restarted", st[1])
	}
}

func TestLaunchErrorsBackOff(t *testing.T) {
	log, lb := newLog()
	f := &fakeLaunch{make: func(int) (*fakeProc, error) { return nil, errors.New("exec: no such file") }}
	s := New([]Program{{Name: "broken", Kind: KindCommand, Count: 1, Launch: f.Launch}}, log)
	s.Start()
	defer s.Stop()
	waitFor(t, 5*time.Second, "4 tries", func() bool { return f.count() >= 4 })
	checkGaps(t, f.times()[:4])
	st := s.Status()[0]
	if st.LastExit != "start failed: exec: no such file" || st.PID != 0 || st.Restarts != 0 {
		t.Errorf("Status() = %+v; want last exit \"start failed: exec: no such file\", no pid, no restarts", st)
	}
	if got := lb.lines("level=WARN", `msg="cannot start"`, "name=broken", `err="exec: no such file"`, "retry_in=200ms"); len(got) != 1 {
		t.Errorf("log lines for the second failed start: %q; want one\nlog:\n%s", got, lb)
	}
}

func TestStopKillsAfterGrace(t *testing.T) {
	log, lb := newLog()
	stubborn := &fakeLaunch{make: func(int) (*fakeProc, error) {
		p := newFakeProc()
		p.onSignal = func(p *fakeProc, sig syscall.Signal) {
			if sig == syscall.SIGKILL {
				p.exit(true, "signal: killed")
			}
		}
		return p, nil
	}}
	polite := &fakeLaunch{make: func(int) (*fakeProc, error) { return newFakeProc(), nil }}
	grace := 300 * time.Millisecond
	s := New([]Program{
		{Name: "stubborn", Kind: KindQueue, Count: 2, Grace: grace, Launch: stubborn.Launch},
		{Name: "polite", Kind: KindCommand, Count: 1, Grace: grace, Launch: polite.Launch},
	}, log)
	s.Start()
	waitFor(t, 5*time.Second, "3 running", func() bool {
		return !slices.ContainsFunc(s.Status(), func(st Status) bool { return st.State != StateRunning })
	})
	t0 := time.Now()
	s.Stop()
	took := time.Since(t0)
	if took < grace || took > 2*grace+500*time.Millisecond {
		t.Errorf("Stop took %s; want the grace, %s, once (the processes are stopped together)", took, grace)
	}
	for i := range 2 {
		if p := stubborn.proc(i); !slices.Equal(p.signals, []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}) {
			t.Errorf("stubborn %d got %v; want SIGTERM, SIGKILL", i, p.signals)
		}
	}
	if p := polite.proc(0); !slices.Equal(p.signals, []syscall.Signal{syscall.SIGTERM}) {
		t.Errorf("polite got %v; want SIGTERM", p.signals)
	}
	if got := lb.lines("level=WARN", `msg="did not exit within grace 300ms after SIGTERM: killed"`, "name=stubborn", "kind=queue"); len(got) != 2 {
		t.Errorf("log lines of the kills: %q; want 2\nlog:\n%s", got, lb)
	}
	for _, st := range s.Status() {
		want := "signal: killed"
		if st.Name == "polite" {
			want = "signal: terminated"
		}
		if st.State != StateStopped || st.PID != 0 || st.LastExit != want || st.Restarts != 0 {
			t.Errorf("after Stop: %+v; want stopped, last exit %q, no restarts", st, want)
		}
	}
	if stubborn.count() != 2 || polite.count() != 1 {
		t.Errorf("%d and %d starts; want 2 and 1 (no restart after Stop)", stubborn.count(), polite.count())
	}
	s.Stop() // again: nothing
}

func TestStopBeforeStart(t *testing.T) {
	f := &fakeLaunch{make: func(int) (*fakeProc, error) { return newFakeProc(), nil }}
	s := New([]Program{{Name: "x", Kind: KindCommand, Count: 1, Launch: f.Launch}}, nil)
	s.Restart()
	s.Stop()
	s.Start()
	s.Restart()
	s.Stop()
	if n := f.count(); n != 0 {
		t.Errorf("%d starts; want none (stopped before Start)", n)
	}
	if st := s.Status(); len(st) != 1 || st[0].State != StateStopped {
		t.Errorf("Status() = %+v; want one slot, stopped", st)
	}
}

func TestRestart(t *testing.T) {
	log, lb := newLog()
	run := &fakeLaunch{make: func(int) (*fakeProc, error) { return newFakeProc(), nil }}
	// flaky fails 4 times (then waits 800ms), then runs.
	flaky := &fakeLaunch{make: func(n int) (*fakeProc, error) {
		if n < 4 {
			return failAtOnce(n)
		}
		return newFakeProc(), nil
	}}
	sched := &fakeLaunch{make: func(int) (*fakeProc, error) { return newFakeProc(), nil }}
	s := New([]Program{
		{Name: "run", Kind: KindQueue, Count: 2, Grace: time.Second, Launch: run.Launch},
		{Name: "flaky", Kind: KindCommand, Count: 1, Grace: time.Second, Launch: flaky.Launch},
		{Name: "sched", Kind: KindScheduler, Count: 1, Interval: time.Hour, Launch: sched.Launch},
	}, log)
	s.Start()
	defer s.Stop()
	waitFor(t, 5*time.Second, "run running, flaky in its 800ms back-off", func() bool {
		st := s.Status()
		return st[0].State == StateRunning && st[1].State == StateRunning && flaky.count() == 4 && st[2].State == StateBackoff
	})
	before := s.Status()
	t0 := time.Now()
	s.Restart()
	took := time.Since(t0)
	after := s.Status()
	if took > 700*time.Millisecond {
		t.Errorf("Restart took %s; want no back-off", took)
	}
	for i := range 2 {
		if before[i].PID == after[i].PID || after[i].State != StateRunning || after[i].Restarts != 1 {
			t.Errorf("run %d: before %+v, after %+v; want a new pid, running, 1 restart", i, before[i], after[i])
		}
		if p := run.proc(i); !slices.Equal(p.signals, []syscall.Signal{syscall.SIGTERM}) {
			t.Errorf("run %d got %v; want SIGTERM", i, p.signals)
		}
	}
	if flaky.count() != 5 || after[2].State != StateRunning {
		t.Errorf("flaky: %d starts, %+v; want started again at once by Restart", flaky.count(), after[2])
	}
	if sched.count() != 0 || after[3].State != StateWaiting {
		t.Errorf("scheduler: %d runs, %+v; want left alone, waiting", sched.count(), after[3])
	}
	if len(lb.lines("name=sched", "next run starts on the new code")) != 1 {
		t.Errorf("no line about the scheduler; log:\n%s", lb)
	}
}

func TestBoundary(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse("15:04:05.000", s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, c := range []struct {
		next, now string
		iv        time.Duration
		due       string // "": none yet
		missed    int
	}{
		{"12:01:00.000", "12:01:00.003", time.Minute, "12:01:00.000", 0},
		{"12:01:00.000", "12:01:59.999", time.Minute, "12:01:00.000", 0},
		{"12:01:00.000", "12:04:30.000", time.Minute, "12:04:00.000", 3},
		{"12:01:00.000", "12:00:59.990", time.Minute, "", 0},
		{"12:00:01.000", "12:00:03.100", time.Second, "12:00:03.000", 2},
	} {
		due, missed := boundary(at(c.next), at(c.now), c.iv)
		want := time.Time{}
		if c.due != "" {
			want = at(c.due)
		}
		if !due.Equal(want) || missed != c.missed {
			t.Errorf("boundary(%s, %s, %s) = %s, %d; want %s, %d", c.next, c.now, c.iv, due, missed, want, c.missed)
		}
	}
}

func TestSchedulerRunsAtBoundariesNeverTwice(t *testing.T) {
	log, lb := newLog()
	f, most := overlapLaunch(func(n int, end func(failed bool, text string)) {
		if n == 1 { // outlasts two boundaries, and fails
			time.AfterFunc(2500*time.Millisecond, func() { end(true, "exit status 1") })
		} else {
			go end(false, "exit status 0")
		}
	})
	s := New([]Program{{Name: "scheduler", Kind: KindScheduler, Count: 1, Interval: time.Second, Grace: time.Second, Launch: f.Launch}}, log)
	s.Start()
	defer s.Stop()
	// Launch counts a run as it starts; the status, once Launch has returned.
	waitFor(t, 8*time.Second, "3 runs", func() bool { return f.count() >= 3 && s.Status()[0].Restarts >= 3 })
	ts := f.times()
	for i, tm := range ts[:3] {
		if late := tm.Sub(tm.Truncate(time.Second)); late > 300*time.Millisecond {
			t.Errorf("run %d started %s after a whole second; want at a boundary", i, late)
		}
	}
	if d := ts[1].Truncate(time.Second).Sub(ts[0].Truncate(time.Second)); d != time.Second {
		t.Errorf("runs 0 and 1 at boundaries %s apart; want 1s", d)
	}
	if d := ts[2].Truncate(time.Second).Sub(ts[1].Truncate(time.Second)); d != 3*time.Second {
		t.Errorf("runs 1 and 2 at boundaries %s apart; want 3s (run 1 lasted 2.5s: two boundaries skipped)", d)
	}
	if m := most(); m != 1 {
		t.Errorf("%d runs at once; want 1", m)
	}
	st := s.Status()[0]
	if st.Skipped != 2 || st.Restarts < 3 || st.LastExit == "" {
		t.Errorf("Status() = %+v; want 2 skipped, 3 runs", st)
	}
	b1 := ts[1].Truncate(time.Second)
	// The first boundary is owed a run until the second finds it still waiting; the second is
	// skipped when run 1 ends, 500 ms after it, past the 100 ms a late start is allowed.
	for k, why := range map[int]string{1: "is still running", 2: "ran until "} {
		want := fmt.Sprintf("scheduler: the run due at %s is skipped: the run started at %s (pid %d) %s",
			b1.Add(time.Duration(k)*time.Second).Format("15:04:05"), b1.Format("15:04:05"), f.proc(1).pid, why)
		if got := lb.lines("level=WARN", want, "name=scheduler"); len(got) != 1 {
			t.Errorf("no WARN line %q\nlog:\n%s", want, lb)
		}
	}
	if got := lb.lines("level=WARN", "the run failed", `exit="exit status 1"`, fmt.Sprintf("pid=%d", f.proc(1).pid)); len(got) != 1 {
		t.Errorf("the failed run's log lines: %q; want one\nlog:\n%s", got, lb)
	}
	if strings.Contains(lb.String(), "missed") {
		t.Errorf("a boundary logged as missed; log:\n%s", lb)
	}
}

// A run that ends a little after the next boundary (Laravel's schedule:run with sub-minute tasks
// runs to the end of its minute) does not cost that boundary its run: it starts late, within a
// tenth of the interval, once, and never beside the previous run.
func TestSchedulerStartsAnOwedRunLate(t *testing.T) {
	log, lb := newLog()
	f, most := overlapLaunch(func(n int, end func(failed bool, text string)) {
		ok := func() { end(false, "exit status 0") }
		if n == 0 { // ends 30 ms after the next boundary
			time.AfterFunc(time.Until(time.Now().Truncate(time.Second).Add(time.Second+30*time.Millisecond)), ok)
		} else {
			go ok()
		}
	})
	s := New([]Program{{Name: "scheduler", Kind: KindScheduler, Count: 1, Interval: time.Second, Grace: time.Second, Launch: f.Launch}}, log)
	s.Start()
	defer s.Stop()
	waitFor(t, 6*time.Second, "3 runs", func() bool { return f.count() >= 3 })
	s.Stop()
	ts := f.times()
	if late := ts[1].Sub(ts[0].Truncate(time.Second).Add(time.Second)); late < 30*time.Millisecond || late > 100*time.Millisecond {
		t.Errorf("run 1 started %s after its boundary; want as run 0 ended, 30 ms after it", late)
	}
	if d := ts[2].Truncate(time.Second).Sub(ts[1].Truncate(time.Second)); d != time.Second {
		t.Errorf("runs 1 and 2 at boundaries %s apart; want 1s (run 2 on time)", d)
	}
	if m := most(); m != 1 {
		t.Errorf("%d runs at once; want 1", m)
	}
	if st := s.Status()[0]; st.Skipped != 0 {
		t.Errorf("Status() = %+v; want none skipped", st)
	}
	if got := lb.lines("level=INFO", "starts", "ms late, as the previous run has ended"); len(got) != 1 {
		t.Errorf("log lines of the late start: %q; want one\nlog:\n%s", got, lb)
	}
}

// overlapLaunch is a fakeLaunch whose n-th process ends when run calls end, and most, which
// reports the most processes that were alive at once.
func overlapLaunch(run func(n int, end func(failed bool, text string))) (f *fakeLaunch, most func() int) {
	var mu sync.Mutex
	live, peak := 0, 0
	f = &fakeLaunch{}
	f.make = func(n int) (*fakeProc, error) {
		p := newFakeProc()
		mu.Lock()
		live++
		peak = max(peak, live)
		mu.Unlock()
		run(n, func(failed bool, text string) {
			mu.Lock()
			live--
			mu.Unlock()
			p.exit(failed, text)
		})
		return p, nil
	}
	return f, func() int { mu.Lock(); defer mu.Unlock(); return peak }
}
