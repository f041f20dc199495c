package pool

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lowestReady polls Stats().Ready until stop is closed and returns the lowest it saw.
func lowestReady(p *Pool, stop <-chan struct{}) func() int {
	var low atomic.Int64
	low.Store(int64(p.Stats().Ready))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if n := int64(p.Stats().Ready); n < low.Load() {
				low.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	return func() int { <-done; return int(low.Load()) }
}

// A reload under load keeps capacity: while the old workers are replaced by new ones that take
// 150 ms to boot, the pool never has fewer than workers − 1 ready (the rule), with the
// canary judged and without; the roll still ends with every worker new and no request failed.
func TestReloadKeepsCapacity(t *testing.T) {
	for _, judged := range []bool{true, false} {
		name := "judged"
		if !judged {
			name = "unjudged"
		}
		t.Run(name, func(t *testing.T) {
			work := func(body string) behaviour {
				return func([]byte) []byte { time.Sleep(2 * time.Millisecond); return okResponse(body) }
			}
			s := newFakeStager(work("old"), work("new"))
			s.boot = 150 * time.Millisecond
			c := canaryOpts
			c.Enabled, c.MinRequests = judged, 1
			const workers = 4
			p := startPool(t, Options{Workers: workers, Canary: c}, s)
			waitReady(t, p)
			stop := make(chan struct{})
			wait := load(p, workers, stop)
			waitCond(t, "every worker busy", func() bool { return p.Stats().Busy == workers })
			watched := make(chan struct{})
			low := lowestReady(p, watched)
			if err := p.Reload(); err != nil {
				t.Fatalf("Reload() = %v", err)
			}
			waitCond(t, "the rollout ended, every worker new and ready", func() bool {
				now := pids(p)
				for _, g := range now {
					if g != 1 {
						return false
					}
				}
				return len(now) == workers && p.Stats().Ready == workers && p.Stats().Rollout.State != RolloutRolling
			})
			close(watched)
			close(stop)
			failed, bodies := wait()
			if st := p.Stats().Rollout.State; st != RolloutOK {
				t.Errorf("Rollout.State = %s; want ok", st)
			}
			if n := low(); n < workers-1 {
				t.Errorf("lowest Stats().Ready during the roll = %d; want ≥ %d (workers − 1)", n, workers-1)
			}
			if failed != 0 || bodies["new"] == 0 {
				t.Errorf("%d requests failed, answers %v; want 0, some new", failed, bodies)
			}
		})
	}
}

// hold sends a request that holds its process until release is closed; it returns the pid that
// serves it, and the request's error comes on errs.
func hold(t *testing.T, p *Pool, release <-chan struct{}, errs chan<- error) int {
	t.Helper()
	got := make(chan int, 1)
	go func() { errs <- p.Call(context.Background(), nil, held(got, release, Outcome{Status: 200})) }()
	select {
	case pid := <-got:
		return pid
	case <-time.After(5 * time.Second):
		t.Fatal("a request got no process within 5s")
		return 0
	}
}

// Scaling down while a canary is judged retires an old worker, never the canary: the canary idle
// longest (first in the idle channel) is skipped.
func TestScaleDownSparesTheCanary(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte { return okResponse("new") })
	var mu sync.Mutex
	exits := map[int]ExitReason{}
	c := canaryOpts
	c.Window = 2 * time.Second
	p := startPool(t, Options{Workers: 2, MinWorkers: 1, MaxWorkers: 2, ScaleDownAfter: 100 * time.Millisecond, Canary: c,
		Exited: func(pid int, r ExitReason) { mu.Lock(); exits[pid] = r; mu.Unlock() }}, s)
	waitReady(t, p)
	errs := make(chan error, 3)
	oldDone, canaryDone := make(chan struct{}), make(chan struct{})
	hold(t, p, oldDone, errs) // both old workers in use: no scale-down yet
	hold(t, p, oldDone, errs)
	reloaded := make(chan error, 1)
	go func() { reloaded <- p.Reload() }()
	waitCond(t, "the canary serves", func() bool { return p.Stats().Ready == 3 })
	canary := hold(t, p, canaryDone, errs) // the only idle worker
	if canary != p.Stats().Rollout.Canary {
		t.Fatalf("the third request went to pid %d; want the canary %d", canary, p.Stats().Rollout.Canary)
	}
	close(canaryDone) // the canary goes back first: it is idle longest
	waitCond(t, "the canary idle", func() bool { return p.Stats().Busy == 2 })
	close(oldDone)
	collect(t, errs, 3, nil)
	waitCond(t, "a worker scaled down", func() bool { return p.Stats().Exits[ExitScaleDown] == 1 })
	mu.Lock()
	r, gone := exits[canary]
	mu.Unlock()
	if gone {
		t.Errorf("the canary exited (%v) during its window; want an old worker scaled down", r)
	}
	if err := <-reloaded; err != nil {
		t.Errorf("Reload() = %v", err)
	}
}

// A template that dies while its generation rolls the old one over is replaced by a newer
// generation: the rollout still ends (ok) once every worker is of the newest, not "rolling" for
// ever.
func TestRolloutEndsWhenTheTemplateDiesMidRoll(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte { return okResponse("new") })
	s.boot = 50 * time.Millisecond
	p := startPool(t, Options{Workers: 3}, s)
	waitReady(t, p)
	if err := p.Reload(); err != nil {
		t.Fatalf("Reload() = %v", err)
	}
	s.gen.Add(1) // the new template died and was replaced, as template.Template does, mid-roll
	p.Rotate()
	waitCond(t, "every worker of generation 2, the rollout ended ok", func() bool {
		now := pids(p)
		for _, g := range now {
			if g != 2 {
				return false
			}
		}
		return len(now) == 3 && p.Stats().Rollout.State == RolloutOK
	})
	if r := p.Stats().Rollout; r.Ended.IsZero() || r.To != 1 {
		t.Errorf("Rollout = %+v; want ended, to generation 1", r)
	}
}

// A rollout ends ok only once the roll is done: every worker of the new generation has booted,
// not when the last old one exits while its successor still boots.
func TestRolloutOKOnlyWhenEveryWorkerBooted(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte { return okResponse("new") })
	s.boot = 100 * time.Millisecond
	const workers = 3
	p := startPool(t, Options{Workers: workers}, s)
	waitReady(t, p)
	if err := p.Reload(); err != nil {
		t.Fatalf("Reload() = %v", err)
	}
	waitCond(t, "the rollout ended", func() bool { return p.Stats().Rollout.State != RolloutRolling })
	st, now := p.Stats(), pids(p)
	if st.Rollout.State != RolloutOK || st.Ready != workers || len(now) != workers {
		t.Fatalf("at the rollout's end: state %s, %d ready, workers %v; want ok, %d new workers ready", st.Rollout.State, st.Ready, now, workers)
	}
	for pid, g := range now {
		if g != 1 {
			t.Errorf("worker %d of generation %d at the rollout's end; want 1", pid, g)
		}
	}
}

// Reload after reload under load, with forks that boot at once: each roll ends with exactly the
// configured workers. (An old worker that came back from its request between the commit and the
// canary's arrival was replaced one for one, and the canary then found no old worker to take the
// place of: one worker too many, for good.)
func TestReloadsEndWithTheConfiguredWorkers(t *testing.T) {
	work := func(body string) behaviour {
		return func([]byte) []byte { time.Sleep(500 * time.Microsecond); return okResponse(body) }
	}
	s := newFakeStager(work("old"), work("new"))
	const workers = 2
	p := startPool(t, Options{Workers: workers}, s)
	waitReady(t, p)
	stop := make(chan struct{})
	wait := load(p, 2*workers, stop)
	for i := range 25 {
		if err := p.Reload(); err != nil {
			t.Fatalf("Reload() %d = %v", i, err)
		}
		waitCond(t, "the rollout ended with exactly the configured workers", func() bool {
			st := p.Stats()
			return st.Rollout.State == RolloutOK && len(pids(p)) == workers && st.Ready == workers
		})
	}
	close(stop)
	if failed, _ := wait(); failed != 0 {
		t.Errorf("%d requests failed; want 0", failed)
	}
}
