package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// held is a Call function that reports its process and blocks until release is closed, then
// answers with o.
func held(got chan<- int, release <-chan struct{}, o Outcome) func(Process) Outcome {
	return func(p Process) Outcome {
		got <- p.PID()
		<-release
		return o
	}
}

// workerInfo returns the WorkerInfo of pid, if the pool lists it.
func workerInfo(p *Pool, pid int) (WorkerInfo, bool) {
	for _, w := range p.Workers() {
		if w.PID == pid {
			return w, true
		}
	}
	return WorkerInfo{}, false
}

// Call fills in the Visit (queue wait, upstream time, pid), the status shows the request while a
// process has it, and the counters count it.
func TestVisitAndStats(t *testing.T) {
	s := &convStarter{}
	began := time.Now()
	p := startPool(t, Options{Workers: 1, QueueSize: 4}, s)
	waitReady(t, p)
	booted := time.Now()

	start := time.Now().Add(-time.Second) // set by the caller: Call keeps it
	v1 := &Visit{Method: "POST", URI: "/first", Start: start}
	got, release1 := make(chan int, 1), make(chan struct{})
	done1 := make(chan error, 1)
	go func() {
		done1 <- p.Call(context.Background(), v1, held(got, release1, Outcome{Memory: 1000, Peak: 12345}))
	}()
	pid := <-got
	busySince := time.Now()
	info, _ := workerInfo(p, pid)
	if c := info.Current; !info.Busy || c == nil || c.Method != "POST" || c.URI != "/first" || !c.Start.Equal(start) || c.PID != pid {
		t.Errorf("WorkerInfo while busy = %+v, Current %+v; want Busy, Current POST /first, its Start, pid %d", info, c, pid)
	}
	if info.Started.Before(began) || info.Started.After(booted) {
		t.Errorf("WorkerInfo.Started = %v; want between %v and %v", info.Started, began, booted)
	}

	v2 := &Visit{Method: "GET", URI: "/second"}
	done2 := make(chan error, 1)
	go func() { done2 <- p.Call(context.Background(), v2, pidOf(new(int), Outcome{})) }()
	waitCond(t, "the second request waits", func() bool { return p.Stats().Waiting == 1 })
	waiting := time.Now()
	released := time.Now()
	close(release1)
	if err := <-done1; err != nil {
		t.Fatalf("first Call: %v", err)
	}
	if err := <-done2; err != nil {
		t.Fatalf("second Call: %v", err)
	}
	if v1.PID != pid || v1.Upstream < released.Sub(busySince) || v1.QueueWait >= v1.Upstream || !v1.Start.Equal(start) || v1.Slow {
		t.Errorf("first Visit = %+v; want pid %d, Upstream ≥ %v, QueueWait < Upstream, Start kept, not slow", v1, pid, released.Sub(busySince))
	}
	if v2.PID != pid || v2.QueueWait < released.Sub(waiting) || v2.Start.Before(began) || v2.Start.After(waiting) {
		t.Errorf("second Visit = %+v; want pid %d, QueueWait ≥ %v, Start set by Call", v2, pid, released.Sub(waiting))
	}
	info, _ = workerInfo(p, pid)
	if info.Busy || info.Current != nil || info.Last != v2.Upstream || info.Served != 2 || info.Recycling {
		t.Errorf("WorkerInfo after = %+v; want idle, no Current, Last = the second's Upstream (%v), Served 2", info, v2.Upstream)
	}
	st := p.Stats()
	if st.Accepted != 2 || st.Served != 2 || st.MaxWorkersReached != 1 || st.WaitingMax != 1 || st.QueueSize != 4 || st.Waiting != 0 {
		t.Errorf("Stats() = %+v; want Accepted 2, Served 2, MaxWorkersReached 1, WaitingMax 1, QueueSize 4", st)
	}
	// Peak and Memory are the last answered request's.
	if err := p.Call(context.Background(), nil, pidOf(new(int), Outcome{Memory: 2000, Peak: 54321})); err != nil {
		t.Fatal(err)
	}
	if info, _ := workerInfo(p, pid); info.Memory != 2000 || info.Peak != 54321 {
		t.Errorf("WorkerInfo Memory, Peak = %d, %d; want 2000, 54321", info.Memory, info.Peak)
	}
	if st := p.Stats(); st.Accepted != 3 || st.MaxWorkersReached != 1 {
		t.Errorf("Stats() after a request that found an idle process = %+v; want Accepted 3, MaxWorkersReached still 1", st)
	}
}

// exitLog records what Options.Exited and Options.Booted are told.
type exitLog struct {
	mu     sync.Mutex
	exits  map[int][]ExitReason
	booted int
}

func (l *exitLog) exited(pid int, r ExitReason) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.exits == nil {
		l.exits = map[int][]ExitReason{}
	}
	l.exits[pid] = append(l.exits[pid], r)
}

func (l *exitLog) boot(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d > 0 {
		l.booted++
	}
}

// Every process that ends after it booted is counted once, under why it ended, and Exited is told
// of it; Booted is told of every boot.
func TestExitReasons(t *testing.T) {
	s := &convStarter{}
	var log exitLog
	p := New(Options{Workers: 1, MaxRequests: 2, RequestTimeout: 100 * time.Millisecond, QueueSize: 4, QueueTimeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Exited: log.exited, Booted: log.boot}, s)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	defer func() { cancel(); <-ran }()
	waitReady(t, p)
	var want [numExitReasons]uint64
	step := func(r ExitReason, what string, do func()) {
		t.Helper()
		do()
		want[r]++
		waitCond(t, what+" counted as "+r.String(), func() bool { return p.Stats().Exits == want })
	}
	call := func(o Outcome) error { return p.Call(context.Background(), nil, pidOf(new(int), o)) }
	step(ExitMaxRequests, "two requests with max_requests 2", func() { call(Outcome{}); call(Outcome{}) })
	step(ExitExit, "exit() in a request", func() { call(Outcome{Exits: true}) })
	step(ExitCrash, "a process that broke", func() { call(Outcome{Err: errors.New("gone"), Broken: true}) })
	step(ExitTimeout, "a request past request_timeout", func() {
		p.Call(context.Background(), nil, func(proc Process) Outcome { <-proc.Done(); return Outcome{Err: io.EOF, Broken: true} })
	})
	step(ExitRecycle, "Recycle of an idle process", func() {
		waitCond(t, "a process ready", func() bool { return p.Stats().Ready == 1 })
		if err := p.Recycle(p.Workers()[0].PID); err != nil {
			t.Errorf("Recycle(idle) = %v", err)
		}
	})
	step(ExitReload, "Reload", func() {
		waitCond(t, "a process ready", func() bool { return p.Stats().Ready == 1 })
		if err := p.Reload(); err != nil {
			t.Errorf("Reload() = %v", err)
		}
	})
	step(ExitExit, "an idle process that exited", func() {
		waitCond(t, "a process ready", func() bool { return p.Stats().Ready == 1 && len(p.Workers()) == 1 })
		pid := p.Workers()[0].PID
		s.proc(pid - 2000).exit()
	})
	step(ExitAbort, "a process killed because its client left", func() {
		call(Outcome{Err: errors.New("client left"), Broken: true, ClientGone: true})
	})
	step(ExitCrash, "an idle process gone without a Bye, its status unknown (a CoW worker)", func() {
		waitCond(t, "a process ready", func() bool { return p.Stats().Ready == 1 && len(p.Workers()) == 1 })
		proc := s.proc(p.Workers()[0].PID - 2000)
		unknown := fmt.Errorf("%w (a fork)", ErrStatusUnknown)
		proc.err.Store(&unknown)
		proc.exit()
	})
	waitCond(t, "a process ready", func() bool { return p.Stats().Ready == 1 })
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	ran <- nil
	want[ExitStop]++
	if got := p.Stats().Exits; got != want {
		t.Errorf("Stats().Exits after the stop = %v; want %v", got, want)
	}
	var sum uint64
	for _, n := range want {
		sum += n
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if sum != uint64(s.started()) || len(log.exits) != s.started() || log.booted != s.started() {
		t.Errorf("%d processes started, %d exits counted, Exited told of %d, Booted of %d; want each once", s.started(), sum, len(log.exits), log.booted)
	}
	var told [numExitReasons]uint64
	for pid, rs := range log.exits {
		if len(rs) != 1 {
			t.Errorf("Exited told of pid %d %v; want once", pid, rs)
		}
		told[rs[0]]++
	}
	if told != want {
		t.Errorf("Exited told %v by reason; want %v", told, want)
	}
}

// Recycle retires a busy process after its request (answered, not killed), an idle one at once;
// both are replaced. An unknown pid is an error.
func TestRecycle(t *testing.T) {
	s := &convStarter{}
	p := startPool(t, Options{Workers: 2}, s)
	waitReady(t, p)
	if err := p.Recycle(99999); !errors.Is(err, ErrNoSuchWorker) {
		t.Errorf("Recycle(unknown pid) = %v; want ErrNoSuchWorker", err)
	}
	got, release := make(chan int, 1), make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- p.Call(context.Background(), nil, held(got, release, Outcome{})) }()
	busy := <-got
	if err := p.Recycle(busy); err != nil {
		t.Fatalf("Recycle(busy) = %v", err)
	}
	if info, _ := workerInfo(p, busy); !info.Recycling || !info.Busy {
		t.Errorf("WorkerInfo of a busy process asked to recycle = %+v; want Busy, Recycling", info)
	}
	bp := s.proc(busy - 2000)
	if bp.stopped.Load() || bp.killed.Load() {
		t.Errorf("busy process stopped (%v) or killed (%v) during its request", bp.stopped.Load(), bp.killed.Load())
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("request of the recycled process = %v; want it answered", err)
	}
	waitCond(t, "the busy process stopped after its request", func() bool { return bp.stopped.Load() })
	if bp.killed.Load() {
		t.Error("recycled process was killed; want Stop")
	}

	var idle int
	for _, w := range p.Workers() {
		if w.PID != busy {
			idle = w.PID
		}
	}
	if err := p.Recycle(idle); err != nil {
		t.Fatalf("Recycle(idle) = %v", err)
	}
	waitCond(t, "the idle process stopped", func() bool { return s.proc(idle - 2000).stopped.Load() })
	waitCond(t, "two new processes serve", func() bool {
		ws := p.Workers()
		return s.started() == 4 && len(ws) == 2 && p.Stats().Ready == 2 && p.Stats().Exits[ExitRecycle] == 2
	})
	for _, w := range p.Workers() {
		if w.PID == busy || w.PID == idle || w.Recycling {
			t.Errorf("after both recycled: %+v listed; want only new processes, not recycling", w)
		}
	}
}

// A request that ends while OnSlow reads its process waits for OnSlow: the process serves no
// other request meanwhile (the slow log would show that one's stack) and is not stopped.
func TestOnSlowEndsBeforeTheProcessServesAgain(t *testing.T) {
	inSlow, release := make(chan struct{}), make(chan struct{})
	var slowActive atomic.Bool
	p := startPool(t, Options{Workers: 1, SlowAfter: 20 * time.Millisecond,
		OnSlow: func(int, *Visit, time.Duration) {
			slowActive.Store(true)
			close(inSlow)
			<-release // the backtrace read takes a while
			slowActive.Store(false)
		}}, &convStarter{})
	waitReady(t, p)
	first := make(chan error, 1)
	go func() {
		first <- p.Call(context.Background(), &Visit{URI: "/slow"}, func(Process) Outcome { <-inSlow; return Outcome{} })
	}()
	<-inSlow
	second := make(chan bool, 1)
	go func() {
		p.Call(context.Background(), &Visit{URI: "/next"}, func(Process) Outcome { second <- slowActive.Load(); return Outcome{} })
	}()
	select {
	case <-first:
		t.Error("the slow request's Call returned while OnSlow still ran")
	case during := <-second:
		t.Errorf("the process served /next while OnSlow of /slow ran (%v)", during)
	case <-time.After(200 * time.Millisecond): // neither may happen while OnSlow runs
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("the slow request: %v", err)
	}
	if during := <-second; during {
		t.Error("the process served /next while OnSlow of /slow ran")
	}
}

// A request that a process has had for SlowAfter is marked slow, once, while it runs, and OnSlow
// is told on a goroutine of its own; a request that ends first is not.
func TestSlowAfter(t *testing.T) {
	type slowCall struct {
		pid int
		v   Visit
		ran time.Duration
	}
	slow := make(chan slowCall, 16)
	s := &convStarter{}
	const after = 30 * time.Millisecond
	p := startPool(t, Options{Workers: 1, SlowAfter: after, OnSlow: func(pid int, v *Visit, ran time.Duration) {
		slow <- slowCall{pid, *v, ran}
	}}, s)
	waitReady(t, p)
	for range 20 { // quick requests: never slow
		if err := p.Call(context.Background(), &Visit{URI: "/quick"}, pidOf(new(int), Outcome{})); err != nil {
			t.Fatal(err)
		}
	}
	v := &Visit{Method: "GET", URI: "/slow"}
	var pid int
	err := p.Call(context.Background(), v, func(proc Process) Outcome {
		pid = proc.PID()
		select {
		case c := <-slow: // OnSlow runs while the request does
			if c.pid != pid || c.v.URI != "/slow" || c.v.PID != pid || !c.v.Slow || c.ran < after {
				t.Errorf("OnSlow(%d, %+v, %v); want pid %d, the request's Visit marked slow, ran ≥ %v", c.pid, c.v, c.ran, pid, after)
			}
			info, _ := workerInfo(p, pid)
			if info.Current == nil || !info.Current.Slow {
				t.Errorf("WorkerInfo.Current of a slow request = %+v; want Slow", info.Current)
			}
		case <-time.After(5 * time.Second):
			t.Error("OnSlow not called within 5s of a request running past SlowAfter")
		}
		return Outcome{}
	})
	if err != nil || !v.Slow {
		t.Errorf("slow Call = %v, Visit.Slow %v; want nil, true", err, v.Slow)
	}
	if n := p.Stats().Slow; n != 1 {
		t.Errorf("Stats().Slow = %d; want 1 (the 20 quick requests ended before SlowAfter)", n)
	}
	if len(slow) != 0 {
		t.Errorf("OnSlow called %d more times; want once, for the slow request", len(slow))
	}
}
