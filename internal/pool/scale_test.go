package pool

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// slowStarter starts convStarter's processes, each after delay (a boot takes time), and records
// how many starts were under way at once.
type slowStarter struct {
	convStarter
	delay    time.Duration
	inflight atomic.Int64
	most     atomic.Int64 // the most starts under way at once after the first
}

func (s *slowStarter) Start() (Process, error) {
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	if s.started() > 0 {
		for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
		}
	}
	time.Sleep(s.delay) // the boot's duration, not a wait for anything
	return s.convStarter.Start()
}

// burst sends n requests that each hold their process until release is closed; their errors
// come on the returned channel.
func burst(p *Pool, n int, release <-chan struct{}) <-chan error {
	errs := make(chan error, n)
	got := make(chan int, n)
	for range n {
		go func() { errs <- p.Call(context.Background(), nil, held(got, release, Outcome{})) }()
	}
	return errs
}

// collect waits for n results of burst and fails the test on any error but want.
func collect(t *testing.T, errs <-chan error, n int, want error) {
	t.Helper()
	for i := range n {
		select {
		case err := <-errs:
			if err != nil && !errors.Is(err, want) {
				t.Errorf("request %d: %v", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d requests did not end", n-i, n)
		}
	}
}

// A burst of waiting requests adds workers one at a time, up to MaxWorkers and never past it,
// with one INFO line each.
func TestScaleUpOnBurst(t *testing.T) {
	s := &slowStarter{delay: 5 * time.Millisecond}
	var logs logBuffer
	p := startPool(t, Options{Workers: 1, MinWorkers: 1, MaxWorkers: 3, ScaleDownAfter: time.Hour, Logger: logs.logger()}, s)
	waitReady(t, p)
	if st := p.Stats(); st.Target != 1 {
		t.Fatalf("Stats().Target before the burst = %d; want 1 (Workers)", st.Target)
	}
	release := make(chan struct{})
	errs := burst(p, 8, release)
	waitCond(t, "3 workers busy, 5 requests waiting", func() bool {
		st := p.Stats()
		return st.Busy == 3 && st.Waiting == 5
	})
	st := p.Stats()
	if st.Target != 3 || st.Ready != 3 || st.ScaledUp != 2 || s.started() != 3 {
		t.Errorf("during the burst: target %d, ready %d, scaled up %d times, %d started; want 3, 3, 2, 3 (MaxWorkers)",
			st.Target, st.Ready, st.ScaledUp, s.started())
	}
	close(release)
	collect(t, errs, 8, nil)
	if st := p.Stats(); st.Target != 3 || s.started() != 3 || st.Served != 8 {
		t.Errorf("after the burst: target %d, %d started, %d served; want 3, 3, 8", st.Target, s.started(), st.Served)
	}
	if m := s.most.Load(); m > 1 {
		t.Errorf("%d workers were booting at once while scaling up; want one at a time", m)
	}
	var ups []string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, `msg="scaled up"`) {
			ups = append(ups, line)
		}
	}
	if len(ups) != 2 || !strings.Contains(ups[0], "target=2 min=1 max=3") || !strings.Contains(ups[1], "target=3 min=1 max=3") {
		t.Errorf("log has %d \"scaled up\" lines %q; want 2, to target 2 then 3, with min=1 max=3", len(ups), ups)
	}
	checkQuiet(t, &logs)
}

// Idle workers above MinWorkers are retired after ScaleDownAfter, down to MinWorkers and not
// below; a pool that starts above MinWorkers is ready with Workers first.
func TestScaleDownWhenIdle(t *testing.T) {
	s := &convStarter{}
	var logs logBuffer
	p := startPool(t, Options{Workers: 3, MinWorkers: 1, MaxWorkers: 4, ScaleDownAfter: 100 * time.Millisecond, Logger: logs.logger()}, s)
	waitReady(t, p)
	release := make(chan struct{})
	errs := burst(p, 6, release)
	waitCond(t, "4 workers busy", func() bool { st := p.Stats(); return st.Busy == 4 && st.Target == 4 })
	close(release)
	collect(t, errs, 6, nil)
	waitCond(t, "the pool back at MinWorkers", func() bool {
		st := p.Stats()
		return st.Target == 1 && st.Ready == 1 && st.ScaledDown == 3 && st.Exits[ExitScaleDown] == 3
	})
	// Watched over several ScaleDownAfter: an observation, not a wait for something to happen.
	for end := time.Now().Add(5 * 100 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if st := p.Stats(); st.Target != 1 || st.ScaledDown != 3 {
			t.Fatalf("idle at MinWorkers: target %d, scaled down %d times; want 1, 3", st.Target, st.ScaledDown)
		}
	}
	if err := p.Call(context.Background(), nil, pidOf(new(int), Outcome{})); err != nil {
		t.Errorf("Call after scaling down: %v", err)
	}
	if n := strings.Count(logs.String(), `msg="scaled down" target=`); n != 3 {
		t.Errorf("log has %d \"scaled down\" lines; want 3:\n%s", n, logs.String())
	}
	checkQuiet(t, &logs)
}

// A pool whose workers are all in use at times within every ScaleDownAfter is not scaled down,
// though each worker is idle now and then (two clients, each 1 ms in PHP, then 1 ms away).
func TestNoScaleDownWhileEveryWorkerIsUsed(t *testing.T) {
	s := &convStarter{}
	const after = 200 * time.Millisecond
	p := startPool(t, Options{Workers: 2, MinWorkers: 1, MaxWorkers: 2, ScaleDownAfter: after}, s)
	waitReady(t, p)
	end := time.Now().Add(5 * after)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			for time.Now().Before(end) {
				if err := p.Call(context.Background(), nil, func(Process) Outcome { time.Sleep(time.Millisecond); return Outcome{} }); err != nil {
					errs <- err
					return
				}
				time.Sleep(time.Millisecond)
			}
			errs <- nil
		}()
	}
	for time.Now().Before(end) {
		if st := p.Stats(); st.Target != 2 || st.ScaledDown != 0 {
			t.Fatalf("two clients on two workers: target %d, scaled down %d times; want 2, 0", st.Target, st.ScaledDown)
		}
		time.Sleep(5 * time.Millisecond)
	}
	collect(t, errs, 2, nil)
}

// With MaxWorkers == MinWorkers (or both zero) the pool keeps Workers, whatever waits.
func TestNoScalingWithoutRange(t *testing.T) {
	for i, opt := range []Options{{Workers: 2}, {Workers: 2, MinWorkers: 2, MaxWorkers: 2, ScaleDownAfter: time.Millisecond}} {
		s := &convStarter{}
		p := startPool(t, opt, s)
		waitReady(t, p)
		if p.scale.nudge != nil || p.opt.scales() {
			t.Errorf("options %d: the pool scales; want not", i)
		}
		release := make(chan struct{})
		errs := burst(p, 5, release)
		waitCond(t, "2 busy, 3 waiting", func() bool { st := p.Stats(); return st.Busy == 2 && st.Waiting == 3 })
		close(release)
		collect(t, errs, 5, nil)
		if st := p.Stats(); st.Target != 2 || st.ScaledUp != 0 || st.ScaledDown != 0 || s.started() != 2 {
			t.Errorf("options %d: target %d, scaled up %d, down %d, %d started; want 2, 0, 0, 2", i, st.Target, st.ScaledUp, st.ScaledDown, s.started())
		}
	}
}

// A pool that stops while scaled up stops every worker, the added ones too; requests still
// waiting get ErrClosed.
func TestStopWhileScaledUp(t *testing.T) {
	s := &convStarter{}
	p := New(Options{Workers: 1, MinWorkers: 1, MaxWorkers: 3, ScaleDownAfter: time.Hour, QueueSize: 8, QueueTimeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, s)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	defer cancel()
	waitReady(t, p)
	release := make(chan struct{})
	errs := burst(p, 5, release)
	waitCond(t, "3 workers busy", func() bool { st := p.Stats(); return st.Busy == 3 && st.Target == 3 })
	cancel()
	close(release)
	collect(t, errs, 5, ErrClosed)
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the stop")
	}
	for i := range s.started() {
		select {
		case <-s.proc(i).done:
		default:
			t.Errorf("process %d still runs after Run returned", s.proc(i).pid)
		}
	}
	if st := p.Stats(); st.Exits[ExitStop] != 3 || s.started() != 3 {
		t.Errorf("%d started, %d stopped; want 3, 3", s.started(), st.Exits[ExitStop])
	}
}
