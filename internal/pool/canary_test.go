package pool

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A canary whose requests outlast the window has answered none when it is judged: the request it
// has then counts, and one that has run past canary_max_latency_factor times the old workers'
// mean rolls it back (not "inconclusive", which would commit it).
func TestCanaryStuckInItsRequestRollsBack(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte {
		time.Sleep(time.Second) // the new code is stuck (its request ends after the window)
		return okResponse("new")
	})
	c := canaryOpts
	c.MaxLatencyFactor = 3
	p := startPool(t, Options{Workers: 2, Canary: c}, s)
	waitReady(t, p)
	failed, _, err := reloadUnderLoad(t, p)
	if err == nil || !strings.Contains(err.Error(), "rolled back") || !strings.Contains(err.Error(), "answered none") ||
		!strings.Contains(err.Error(), "canary_max_latency_factor 3") {
		t.Fatalf("Reload() = %v; want a rollback naming the request the canary still had", err)
	}
	if st := p.Stats(); failed != 0 || st.Generation != 0 || st.Rollout.State != RolloutAborted || s.commits.Load() != 0 {
		t.Errorf("%d failed, generation %d, Rollout %+v, %d commits; want 0, 0, aborted, 0", failed, st.Generation, st.Rollout, s.commits.Load())
	}
	waitCond(t, "the canary retired after its request", func() bool { return len(p.Workers()) == 2 })
}

// stagedProc is the ith worker forked from the staged template (0: the canary), or nil.
func (s *fakeStager) stagedProc(i int) *fakeProc {
	s.mu.Lock()
	t := s.staged
	s.mu.Unlock()
	if t == nil {
		return nil
	}
	return t.proc(i)
}

// A canary that dies between requests during its window is not passed: the reload is rolled back
// with its exit, nothing is committed and the old workers all go on serving (none retired in its
// place).
func TestCanaryDiesInItsWindow(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte { return okResponse("new") })
	c := canaryOpts
	c.Window, c.MinRequests = 500*time.Millisecond, 1
	p := startPool(t, Options{Workers: 2, Canary: c}, s)
	waitReady(t, p)
	old := pids(p)
	reloaded := make(chan error, 1)
	go func() { reloaded <- p.Reload() }()
	waitCond(t, "the canary serves", func() bool { return p.Stats().Ready == 3 })
	canary := s.stagedProc(0)
	canary.exit()
	err := <-reloaded
	if err == nil || !strings.Contains(err.Error(), "rolled back") || !strings.Contains(err.Error(), fmt.Sprintf("canary pid %d exited", canary.pid)) {
		t.Fatalf("Reload() = %v; want a rollback saying the canary exited", err)
	}
	if st := p.Stats(); st.Generation != 0 || st.Rollout.State != RolloutAborted || s.commits.Load() != 0 || s.abandons.Load() != 1 {
		t.Errorf("generation %d, Rollout %+v, %d commits, %d abandons; want 0, aborted, 0, 1", st.Generation, st.Rollout, s.commits.Load(), s.abandons.Load())
	}
	waitCond(t, "the canary gone", func() bool { return p.Stats().Ready == 2 })
	if now := pids(p); len(now) != 2 || now[canary.pid] != 0 {
		t.Errorf("workers %v; want the old ones %v", now, old)
	}
	for pid := range old {
		if _, ok := pids(p)[pid]; !ok {
			t.Errorf("old worker %d retired; want the old workers all serving", pid)
		}
	}
}

// A canary that answers 5xx to every request is rolled back even with fewer than
// canary_min_requests: its errors alone exceed the rate however the requests it missed had gone.
func TestFailingCanaryUnderLowTrafficRollsBack(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte { return statusResponse(500, "broken") })
	c := canaryOpts
	c.Window, c.MinRequests = time.Second, 20
	p := startPool(t, Options{Workers: 2, Canary: c}, s)
	waitReady(t, p)
	reloaded := make(chan error, 1)
	go func() { reloaded <- p.Reload() }()
	waitCond(t, "the canary serves", func() bool { return p.Stats().Ready == 3 })
	canary := s.stagedProc(0)
	for i := 0; canary.served.Load() < 5; i++ { // one client: the canary gets every third request
		if i == 100 {
			t.Fatalf("the canary served %d of 100 requests; want 5", canary.served.Load())
		}
		if err := serve(p, context.Background(), nil, &recorder{}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	err := <-reloaded
	if err == nil || !strings.Contains(err.Error(), "rolled back") || !strings.Contains(err.Error(), "5xx to 100.0% of 5 requests") {
		t.Fatalf("Reload() = %v; want a rollback for 5 of 5 requests answered 5xx", err)
	}
	if st := p.Stats(); st.Generation != 0 || st.Rollout.State != RolloutAborted || s.commits.Load() != 0 {
		t.Errorf("generation %d, Rollout %+v, %d commits; want 0, aborted, 0", st.Generation, st.Rollout, s.commits.Load())
	}
}

// A rollout's end (rollCheck, on the owner) does not touch a newer rollout that began meanwhile:
// the newer one stays active (no refork may start under it) and rolling.
func TestRollCheckLeavesANewerRolloutAlone(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte { return okResponse("new") })
	p := startPool(t, Options{Workers: 1}, s)
	waitReady(t, p)
	var began atomic.Bool
	testHookRollCheck = func(p *Pool) {
		if began.CompareAndSwap(false, true) { // the next reload begins just as the first one ends
			p.beginRollout(Rollout{State: RolloutRolling, Cause: "reload", From: 1, To: 2, Started: time.Now()})
		}
	}
	t.Cleanup(func() { testHookRollCheck = nil })
	if err := p.Reload(); err != nil {
		t.Fatalf("Reload() = %v", err)
	}
	waitCond(t, "the first rollout's end checked", began.Load)
	p.Workers() // the owner has finished the event that checked it
	if r := p.Stats().Rollout; !p.rollActive.Load() || r.State != RolloutRolling || r.To != 2 {
		t.Errorf("rollActive %v, Rollout %+v; want the newer rollout active and rolling", p.rollActive.Load(), r)
	}
}

// A reload asked for while a refork's canary is judged says so (and when to try again), not that
// a reload is running.
func TestReloadDuringReforkNamesIt(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte { return okResponse("new") })
	c := canaryOpts
	c.Window = time.Second
	p := startPool(t, Options{Workers: 1, ReforkAfter: []int{3}, Canary: c}, s)
	waitReady(t, p)
	for i := range 3 {
		if err := serve(p, context.Background(), nil, &recorder{}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	waitCond(t, "the refork's canary judged", func() bool { r := p.Stats().Rollout; return r.Cause == "refork" && r.Canary != 0 })
	err := p.Reload()
	if err == nil || !strings.Contains(err.Error(), "a refork's canary is being judged") || !strings.Contains(err.Error(), "canary_window 1s") {
		t.Errorf("Reload() during a refork = %v; want it to name the refork and canary_window", err)
	}
	waitCond(t, "the refork ended", func() bool { return p.Stats().Rollout.State != RolloutRolling })
	s.stagedFrom()[0].Kill() // the fake template's end
}

// With canary_min_requests 0 a canary that answered no request is not judged "ok" on nothing: the
// verdict is inconclusive (it rolls on, with a warning).
func TestCanaryWithoutTrafficIsInconclusive(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte { return okResponse("new") })
	c := canaryOpts
	c.MinRequests = 0
	p := startPool(t, Options{Workers: 1, Canary: c}, s)
	waitReady(t, p)
	if err := p.Reload(); err != nil {
		t.Fatalf("Reload() = %v; want nil (inconclusive rolls on)", err)
	}
	if r := p.Stats().Rollout; r.State != RolloutInconclusive && r.State != RolloutRolling || !strings.Contains(r.Detail, "answered no request") {
		t.Errorf("Rollout = %+v; want inconclusive, the canary having answered no request", r)
	}
	waitCond(t, "rollout inconclusive", func() bool { return p.Stats().Rollout.State == RolloutInconclusive })
}
