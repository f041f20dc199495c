package pool

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/channel"
)

// convProc is a process without a channel (as per-request mode's php-cgi): it greets, pings and
// stops as its starter says, and each Call's function talks to it directly.
type convProc struct {
	pid     int
	s       *convStarter
	done    chan struct{}
	once    sync.Once
	killed  atomic.Bool
	stopped atomic.Bool
	pings   atomic.Int64
	err     atomic.Pointer[error] // what Err returns once exited (nil: none)
}

func (p *convProc) PID() int   { return p.pid }
func (p *convProc) Left() bool { return false }
func (p *convProc) Kill() error {
	p.killed.Store(true)
	p.exit()
	return nil
}
func (p *convProc) exit()                 { p.once.Do(func() { close(p.done) }) }
func (p *convProc) Done() <-chan struct{} { return p.done }
func (p *convProc) Err() error {
	if e := p.err.Load(); e != nil {
		return *e
	}
	return nil
}
func (p *convProc) Tail() string { return "" }
func (p *convProc) Close() error { return nil }
func (p *convProc) Greet(time.Duration) (channel.Hello, error) {
	if p.s.greetHangs.Load() {
		<-p.done // until killed
		return channel.Hello{}, errors.New("killed before it answered")
	}
	if p.s.greetFails.Load() {
		p.exit()
		return channel.Hello{}, errors.New("no answer on purpose")
	}
	return channel.Hello{PID: p.pid}, nil
}
func (p *convProc) Ping(time.Duration) error {
	p.pings.Add(1)
	if p.s.pingFails.Load() {
		return errors.New("no pong on purpose")
	}
	return nil
}
func (p *convProc) Stop() error {
	p.stopped.Store(true)
	p.exit()
	return nil
}

type convStarter struct {
	mu         sync.Mutex
	procs      []*convProc
	greetFails atomic.Bool
	greetHangs atomic.Bool // Greet waits until the process is killed (boot_timeout 0: no limit)
	pingFails  atomic.Bool
}

func (s *convStarter) Start() (Process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &convProc{pid: 2000 + len(s.procs), s: s, done: make(chan struct{})}
	s.procs = append(s.procs, p)
	return p, nil
}

func (s *convStarter) started() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.procs)
}

func (s *convStarter) proc(i int) *convProc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[i]
}

// waitCond polls cond for up to 5 s.
func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// pidOf is a Call function that records which process served it.
func pidOf(got *int, o Outcome) func(Process) Outcome {
	return func(p Process) Outcome {
		*got = p.PID()
		return o
	}
}

// Processes without a channel are greeted, serve Calls, and are stopped (their Stop, not killed)
// when max_requests retires them.
func TestCallAndMaxRequests(t *testing.T) {
	s := &convStarter{}
	p := startPool(t, Options{Workers: 1, MaxRequests: 2}, s)
	waitReady(t, p)
	var pids []int
	for i := range 4 {
		var pid int
		if err := p.Call(context.Background(), nil, pidOf(&pid, Outcome{})); err != nil {
			t.Fatalf("Call %d: %v", i, err)
		}
		pids = append(pids, pid)
	}
	if pids[0] != pids[1] || pids[2] != pids[3] || pids[1] == pids[2] {
		t.Errorf("pids of 4 Calls with max_requests 2 = %v; want two processes, two Calls each", pids)
	}
	if first := s.proc(0); !first.stopped.Load() || first.killed.Load() {
		t.Errorf("retired process: stopped %v, killed %v; want Stop, no kill", first.stopped.Load(), first.killed.Load())
	}
	if st := p.Stats(); st.Served != 4 {
		t.Errorf("Stats().Served = %d; want 4", st.Served)
	}
	// The second process retired at its second Call too; a third one replaces it.
	waitCond(t, "one fresh process listed", func() bool {
		ws := p.Workers()
		return s.started() == 3 && len(ws) == 1 && ws[0].PID == s.proc(2).pid && ws[0].Served == 0
	})
}

// A Call that gives its worker back to a request waiting for it lets that request run at once
// (runtime.Gosched): the worker must not then count as busy twice, for the Call giving it back and
// for the one it was just lent to (Stats().Busy 2 of 1 ready in askrd status and the busy gauge).
// One P, so that the waiter runs exactly where the giving Call yields.
func TestBusyCountsAWorkerOnce(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	s := &convStarter{}
	p := startPool(t, Options{Workers: 1}, s)
	waitReady(t, p)
	ctx := context.Background()
	in, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- p.Call(ctx, nil, func(Process) Outcome { close(in); <-release; return Outcome{} })
	}()
	<-in
	seen := make(chan Stats, 1)
	second := make(chan error, 1)
	go func() {
		second <- p.Call(ctx, nil, func(Process) Outcome { seen <- p.Stats(); return Outcome{} })
	}()
	waitCond(t, "a second Call waiting for the worker", func() bool { return p.Stats().Waiting == 1 })
	close(release)
	if st := <-seen; st.Busy > st.Ready {
		t.Errorf("Stats() within the Call lent the worker given back: Busy %d of Ready %d; want each worker counted once", st.Busy, st.Ready)
	}
	for _, c := range []chan error{first, second} {
		if err := <-c; err != nil {
			t.Errorf("Call: %v", err)
		}
	}
}

// A Broken outcome kills and replaces the process and is reported as ErrWorkerDied; an error of a
// process that is fine (a bad response, a client gone) is returned as it is and keeps the process.
func TestCallOutcomes(t *testing.T) {
	s := &convStarter{}
	p := startPool(t, Options{Workers: 1}, s)
	waitReady(t, p)
	bad := errors.Join(ErrBadResponse, errors.New("no head"))
	var pid int
	if err := p.Call(context.Background(), nil, pidOf(&pid, Outcome{Err: bad})); err != bad {
		t.Errorf("Call with a bad response = %v; want it as returned", err)
	}
	if err := p.Call(context.Background(), nil, pidOf(&pid, Outcome{Err: errors.New("crashed"), Broken: true})); !errors.Is(err, ErrWorkerDied) {
		t.Errorf("Call with a Broken outcome = %v; want ErrWorkerDied", err)
	}
	if first := s.proc(0); !first.killed.Load() {
		t.Errorf("broken process not killed")
	}
	var next int
	if err := p.Call(context.Background(), nil, pidOf(&next, Outcome{})); err != nil || next == pid {
		t.Errorf("Call after a broken process: %v on pid %d; want a new process (old %d)", err, next, pid)
	}
}

// An Unsent request goes to another process; a Broken one that was sent does not.
func TestCallRetriesUnsent(t *testing.T) {
	s := &convStarter{}
	p := startPool(t, Options{Workers: 2}, s)
	waitReady(t, p)
	var tries []int
	err := p.Call(context.Background(), nil, func(proc Process) Outcome {
		tries = append(tries, proc.PID())
		if len(tries) == 1 {
			return Outcome{Err: errors.New("connection refused"), Broken: true, Unsent: true}
		}
		return Outcome{}
	})
	if err != nil || len(tries) != 2 || tries[0] == tries[1] {
		t.Errorf("Call whose first process was gone: %v after tries on %v; want success on a second process", err, tries)
	}
}

// A request that broke the process it reached is not tried on another one: one process dies.
func TestCallQueryOfDeathKillsOneProcess(t *testing.T) {
	s := &convStarter{}
	p := startPool(t, Options{Workers: 3}, s)
	waitReady(t, p)
	var tries []int
	err := p.Call(context.Background(), nil, func(proc Process) Outcome {
		tries = append(tries, proc.PID())
		proc.Kill()
		return Outcome{Err: io.ErrUnexpectedEOF, Broken: true}
	})
	if !errors.Is(err, ErrWorkerDied) || len(tries) != 1 {
		t.Errorf("Call whose process died with the request: %v after tries on %v; want ErrWorkerDied after one try", err, tries)
	}
	waitCond(t, "the dead process replaced", func() bool { return s.started() == 4 && p.Stats().Ready == 3 })
	killed := 0
	for i := range s.started() {
		if s.proc(i).killed.Load() {
			killed++
		}
	}
	if killed != 1 {
		t.Errorf("%d processes killed; want 1", killed)
	}
}

func TestCallTimeoutKillsProcess(t *testing.T) {
	s := &convStarter{}
	p := startPool(t, Options{Workers: 1, RequestTimeout: 50 * time.Millisecond}, s)
	waitReady(t, p)
	err := p.Call(context.Background(), nil, func(proc Process) Outcome {
		<-proc.Done() // runs until killed
		return Outcome{Err: errors.New("connection reset"), Broken: true}
	})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Call past request_timeout = %v; want ErrTimeout", err)
	}
	var pid int
	if err := p.Call(context.Background(), nil, pidOf(&pid, Outcome{})); err != nil || pid == s.proc(0).pid {
		t.Errorf("Call after a timeout: %v on pid %d; want a new process", err, pid)
	}
}

// Greet failures are boot failures (fatal in the first generation, then backing off with
// ErrUnavailable); Ping goes through the process's Ping and a process that fails it is replaced.
func TestConversationGreetAndPing(t *testing.T) {
	s := &convStarter{}
	p := startPool(t, Options{Workers: 1}, s)
	waitReady(t, p)
	s.greetFails.Store(true)
	s.proc(0).Kill()
	waitCond(t, "three greet attempts", func() bool { return s.started() >= 4 })
	if err := p.Call(context.Background(), nil, pidOf(new(int), Outcome{})); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Call while no process answers = %v; want ErrUnavailable", err)
	}
	s.greetFails.Store(false)
	waitCond(t, "a process greeted again", func() bool { return p.Stats().Ready == 1 })
	n := s.started()
	first := s.proc(n - 1)
	// Ping checks an idle process: the new one is idle once run has taken in its greeting.
	waitCond(t, "a ping of the idle process", func() bool { p.Ping(); return first.pings.Load() > 0 })
	if first.pings.Load() != 1 || !p.Healthy(time.Minute) {
		t.Errorf("after Ping: %d pings, Healthy %v; want 1, true", first.pings.Load(), p.Healthy(time.Minute))
	}
	s.pingFails.Store(true)
	p.Ping()
	waitCond(t, "a process that failed its ping replaced", func() bool { return first.killed.Load() && s.started() == n+1 })
}

// A rolling reload greets and pings a canary process without a channel, then replaces the others.
// Per-request mode's rule is worker mode's: processes of which none ever answers end Run.
func TestConversationFirstGreetFailureIsFatal(t *testing.T) {
	s := &convStarter{}
	s.greetFails.Store(true)
	p := New(Options{Workers: 2, QueueSize: 1, QueueTimeout: time.Minute, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, s)
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no answer on purpose") {
			t.Errorf("Run when no process ever answers = %v; want the greeting's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running 10s after every first process failed to answer")
	}
	if n := s.started(); n != 2 {
		t.Errorf("%d processes started for 2; want 2", n)
	}
}

func TestConversationReload(t *testing.T) {
	s := &convStarter{}
	p := startPool(t, Options{Workers: 2}, s)
	waitReady(t, p)
	if err := p.Reload(); err != nil {
		t.Fatalf("Reload() = %v", err)
	}
	waitCond(t, "both old processes stopped", func() bool { return s.proc(0).stopped.Load() && s.proc(1).stopped.Load() })
	// A stopped process leaves the list when the pool has seen it exit, a moment later.
	waitCond(t, "two processes, all of generation 1", func() bool {
		ws := p.Workers()
		for _, w := range ws {
			if w.Generation != 1 {
				return false
			}
		}
		return len(ws) == 2
	})
}

// A reload whose canary is still booting when the pool stops does not keep askrd from exiting:
// the canary is killed (with boot_timeout 0 its greeting would be awaited forever) and Reload says so.
func TestReloadEndsWhenThePoolStops(t *testing.T) {
	s := &convStarter{}
	p := New(Options{Workers: 1, QueueSize: 1, QueueTimeout: time.Minute, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, s)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	waitReady(t, p)
	s.greetHangs.Store(true)
	reloaded := make(chan error, 1)
	go func() { reloaded <- p.Reload() }()
	waitCond(t, "the canary started", func() bool { return s.started() == 2 })
	cancel()
	select {
	case err := <-reloaded:
		if err == nil {
			t.Error("Reload() = nil while the pool stopped before its canary answered; want an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Reload() still waits for its canary 10s after the pool stopped")
	}
	if !s.proc(1).killed.Load() {
		t.Error("the canary was not killed")
	}
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

// A replacement still booting when the pool stops does not keep Run from returning: the process
// is killed (with boot_timeout 0 its greeting would be awaited forever).
func TestStopEndsABootInProgress(t *testing.T) {
	s := &convStarter{}
	p := New(Options{Workers: 1, QueueSize: 1, QueueTimeout: time.Minute, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, s)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	waitReady(t, p)
	s.greetHangs.Store(true)
	s.proc(0).Kill() // its replacement boots and never answers
	waitCond(t, "the replacement started", func() bool { return s.started() == 2 })
	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still waits for a booting worker 10s after the pool stopped")
	}
	if !s.proc(1).killed.Load() {
		t.Error("the booting worker was not killed")
	}
}

// A request past request_timeout gets ErrTimeout (504) even when its function, after the kill,
// reports an error without calling the process broken (php-cgi answered, then was killed), and the
// process is not lent again.
func TestTimeoutWinsOverAnErrorOutcome(t *testing.T) {
	s := &convStarter{}
	p := startPool(t, Options{Workers: 1, RequestTimeout: 50 * time.Millisecond}, s)
	waitReady(t, p)
	err := p.Call(context.Background(), nil, func(proc Process) Outcome {
		<-proc.Done()
		return Outcome{Err: errors.New("bad head")}
	})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Call() after request_timeout = %v; want ErrTimeout", err)
	}
	waitCond(t, "a second process replaces the killed one", func() bool { return s.started() == 2 })
	var lent int
	if err := p.Call(context.Background(), nil, func(proc Process) Outcome { lent = proc.PID(); return Outcome{} }); err != nil || lent != s.proc(1).pid {
		t.Errorf("next Call() = %v on pid %d; want nil on the new process %d", err, lent, s.proc(1).pid)
	}
}
