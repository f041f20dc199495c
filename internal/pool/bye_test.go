package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// logBuffer collects a pool's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// checkQuiet fails the test if the log has a warning or an error.
func checkQuiet(t *testing.T, logs *logBuffer) {
	t.Helper()
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("pool logged %q; want no warning or error for a worker that left between requests", strings.TrimSpace(line))
		}
	}
}

// warm sends requests to a pool's n workers until each has answered one: the runtime says Bye
// only after an End.
func warm(t *testing.T, p *Pool, s *fakeStarter, n int) {
	t.Helper()
	waitCond(t, fmt.Sprintf("%d workers ready", n), func() bool { return p.Stats().Ready == n })
	cold := func() bool {
		for i := range n {
			if s.proc(i) == nil || s.proc(i).served.Load() == 0 {
				return true
			}
		}
		return false
	}
	for tries := 0; cold(); tries++ {
		if tries == 10*n {
			t.Fatalf("%d requests did not reach each of %d workers", tries, n)
		}
		var r recorder
		if err := serve(p, context.Background(), []byte("warm"), &r); err != nil || string(r.body) != "ok" {
			t.Fatalf("Serve(warm) = %v %q; want \"ok\"", err, r.body)
		}
	}
}

// A worker that answers a request with Bye never read it: the request goes to another worker, and
// the one that left is replaced without a warning.
func TestByeAnswerRetriedOnAnotherWorker(t *testing.T) {
	var calls atomic.Int64
	s := &fakeStarter{act: func(req []byte) []byte {
		if string(req) == "req" && calls.Add(1) == 1 {
			return bye
		}
		return okResponse("ok")
	}}
	var logs logBuffer
	p := startPool(t, Options{Workers: 2, Logger: logs.logger()}, s)
	warm(t, p, s, 2)
	before := p.Stats().Served
	var r recorder
	if err := serve(p, context.Background(), []byte("req"), &r); err != nil || r.status != 200 || string(r.body) != "ok" {
		t.Fatalf("Serve to a worker that says Bye = %v, %d %q; want 200 \"ok\" from another worker", err, r.status, r.body)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("the request reached %d workers; want 2 (the one that left, then another)", n)
	}
	waitCond(t, "a third worker started and two ready", func() bool { return s.started.Load() == 3 && p.Stats().Ready == 2 })
	if got := p.Stats().Served - before; got != 1 {
		t.Errorf("Stats().Served grew by %d; want 1 (the Bye is no answer)", got)
	}
	checkQuiet(t, &logs)
}

// Workers that all say Bye to the request: it is not tried for ever (maxLeft Byes in all), and it
// is a 502 (ErrWorkerDied), since no worker took it.
func TestByeAnswerRetriesBounded(t *testing.T) {
	var calls atomic.Int64
	noMore := make(chan struct{})
	s := &fakeStarter{
		gate: func(n int64) error {
			if n > maxLeft+2 {
				<-noMore // no replacement: the request meets only workers that have answered
			}
			return nil
		},
		act: func(req []byte) []byte {
			if string(req) == "warm" {
				return okResponse("ok")
			}
			calls.Add(1)
			return bye
		},
	}
	p := startPool(t, Options{Workers: maxLeft + 2}, s)
	t.Cleanup(func() { close(noMore) }) // before the pool's cleanup
	warm(t, p, s, maxLeft+2)
	var r recorder
	if err := serve(p, context.Background(), []byte("req"), &r); !errors.Is(err, ErrWorkerDied) {
		t.Fatalf("Serve when every worker says Bye = %v; want ErrWorkerDied", err)
	}
	if n := calls.Load(); n != maxLeft+1 {
		t.Errorf("the request reached %d workers; want %d", n, maxLeft+1)
	}
}

// A Bye from a worker that has answered no request is not believed (the runtime reads a worker's
// first request in the call that says Hello): the request may have killed it, so it is a 502 and
// is not run on another worker.
func TestByeBeforeFirstAnswer(t *testing.T) {
	var calls atomic.Int64
	s := &fakeStarter{act: func([]byte) []byte { calls.Add(1); return bye }}
	var logs logBuffer
	p := startPool(t, Options{Workers: 2, Logger: logs.logger()}, s)
	waitReady(t, p)
	var r recorder
	if err := serve(p, context.Background(), []byte("req"), &r); !errors.Is(err, ErrWorkerDied) {
		t.Fatalf("Serve to a fresh worker that says Bye = %v; want ErrWorkerDied", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the request reached %d workers; want 1", n)
	}
	const warning = `level=WARN msg="worker said Bye before answering any request; treated as a worker that died" pid=`
	if strings.Count(logs.String(), warning) != 1 {
		t.Errorf("log %q; want one %q", logs.String(), warning)
	}
}

// A worker that says Bye while idle (no request in flight) and exits is replaced without a warning;
// one that exits while idle without a Bye still gets its warning.
func TestByeWhileIdleReplacesQuietly(t *testing.T) {
	for _, saysBye := range []bool{true, false} {
		t.Run(fmt.Sprintf("bye=%v", saysBye), func(t *testing.T) {
			s := &fakeStarter{unix: true, act: func([]byte) []byte { return okResponse("ok") }}
			var logs logBuffer
			p := startPool(t, Options{Workers: 1, Logger: logs.logger()}, s)
			waitReady(t, p)
			var r recorder
			if err := serve(p, context.Background(), []byte("req"), &r); err != nil || string(r.body) != "ok" {
				t.Fatalf("Serve = %v %q; want \"ok\"", err, r.body)
			}
			// Serve has returned: the worker is idle.
			if saysBye {
				if _, err := s.proc(0).peer.Write(bye); err != nil {
					t.Fatal(err)
				}
			}
			s.proc(0).exit()
			waitCond(t, "the worker that left replaced", func() bool { return s.started.Load() == 2 && p.Stats().Ready == 1 })
			r = recorder{}
			if err := serve(p, context.Background(), []byte("req"), &r); err != nil || string(r.body) != "ok" {
				t.Errorf("Serve after the idle worker left = %v %q; want \"ok\"", err, r.body)
			}
			const warning = `level=WARN msg="worker exited unexpectedly; replacing it" pid=1001`
			if saysBye {
				checkQuiet(t, &logs)
			} else if !strings.Contains(logs.String(), warning) {
				t.Errorf("log %q; want %q for a worker that exits while idle without a Bye", logs.String(), warning)
			}
		})
	}
}

// A health check that finds the idle worker leaving (Bye instead of Pong) retires it without the
// health check's warning and without killing it.
func TestByeAnswersPing(t *testing.T) {
	s := &fakeStarter{unix: true, act: func([]byte) []byte { return okResponse("ok") }}
	var logs logBuffer
	p := startPool(t, Options{Workers: 1, Logger: logs.logger()}, s)
	waitReady(t, p)
	if _, err := s.proc(0).peer.Write(bye); err != nil {
		t.Fatal(err)
	}
	p.Ping()
	select {
	case <-s.proc(0).done:
		t.Fatal("the worker that said Bye was killed; want it left to end by itself")
	default:
	}
	s.proc(0).exit()
	waitCond(t, "the worker that left replaced", func() bool { return s.started.Load() == 2 && p.Stats().Ready == 1 })
	checkQuiet(t, &logs)
	var r recorder
	if err := serve(p, context.Background(), []byte("req"), &r); err != nil || string(r.body) != "ok" {
		t.Errorf("Serve after the worker left = %v %q; want \"ok\"", err, r.body)
	}
}

// A worker that said Bye and closed its channel before the request was written: the write fails,
// the Bye behind it says the worker left, and the request goes to another worker without the
// "gone before the request reached it" warning.
func TestByeBehindFailedWrite(t *testing.T) {
	s := &fakeStarter{unix: true, linger: make(chan struct{}), act: func([]byte) []byte { return okResponse("ok") }}
	var logs logBuffer
	p := startPool(t, Options{Workers: 1, Logger: logs.logger()}, s)
	t.Cleanup(func() { close(s.linger) }) // before the pool's cleanup, which waits for the workers
	warm(t, p, s, 1)
	peer := s.proc(0).peer
	if _, err := peer.Write(bye); err != nil {
		t.Fatal(err)
	}
	peer.(*net.UnixConn).CloseRead() // askrd's writes now fail (EPIPE); the process has not exited
	var r recorder
	if err := serve(p, context.Background(), []byte("req"), &r); err != nil || string(r.body) != "ok" {
		t.Fatalf("Serve = %v %q; want \"ok\" from another worker", err, r.body)
	}
	if n := s.started.Load(); n != 2 {
		t.Errorf("%d workers started; want 2", n)
	}
	checkQuiet(t, &logs)
}

// A worker that has answered no request, said Bye and closed its channel before the request was
// written: its Bye is not believed (a death), but the request never reached it, so it goes to
// another worker.
func TestByeBehindFailedWriteOfFreshWorker(t *testing.T) {
	s := &fakeStarter{unix: true, linger: make(chan struct{}), act: func([]byte) []byte { return okResponse("ok") }}
	var logs logBuffer
	p := startPool(t, Options{Workers: 1, Logger: logs.logger()}, s)
	t.Cleanup(func() { close(s.linger) })
	waitReady(t, p)
	peer := s.proc(0).peer
	if _, err := peer.Write(bye); err != nil {
		t.Fatal(err)
	}
	peer.(*net.UnixConn).CloseRead() // askrd's writes now fail (EPIPE); the process has not exited
	var r recorder
	if err := serve(p, context.Background(), []byte("req"), &r); err != nil || string(r.body) != "ok" {
		t.Fatalf("Serve = %v %q; want \"ok\" from another worker", err, r.body)
	}
	if n := s.started.Load(); n != 2 {
		t.Errorf("%d workers started; want 2", n)
	}
	if n := s.proc(0).served.Load(); n != 0 {
		t.Errorf("the first worker read %d requests; want 0", n)
	}
	const warning = `level=WARN msg="worker said Bye before answering any request; treated as a worker that died" pid=1001`
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Errorf("log %q has %d of %q; want 1", logs.String(), n, warning)
	}
}

// A health check whose write fails because the worker said Bye and closed its channel is no
// failed health check: the worker is retired quietly, not killed.
func TestByeBehindFailedPing(t *testing.T) {
	s := &fakeStarter{unix: true, linger: make(chan struct{}), act: func([]byte) []byte { return okResponse("ok") }}
	var logs logBuffer
	p := startPool(t, Options{Workers: 1, Logger: logs.logger()}, s)
	t.Cleanup(func() { close(s.linger) })
	warm(t, p, s, 1)
	peer := s.proc(0).peer
	if _, err := peer.Write(bye); err != nil {
		t.Fatal(err)
	}
	peer.(*net.UnixConn).CloseRead() // the ping's write fails (EPIPE); the process has not exited
	p.Ping()
	waitCond(t, "a second worker started", func() bool { return s.started.Load() == 2 })
	var r recorder
	if err := serve(p, context.Background(), []byte("req"), &r); err != nil || string(r.body) != "ok" {
		t.Errorf("Serve after the health check = %v %q; want \"ok\" from the second worker", err, r.body)
	}
	select {
	case <-s.proc(0).done:
		t.Error("the worker that said Bye was killed; want it left to end by itself")
	default:
	}
	checkQuiet(t, &logs)
}

// signalExit is a process's exit error for a death by signal, as *exec.ExitError reports it.
type signalExit struct{ sig syscall.Signal }

func (e signalExit) Error() string { return "signal: " + e.sig.String() }
func (e signalExit) Sys() any      { return syscall.WaitStatus(e.sig) } // Linux: the signal in the low bits

// A worker that said Bye and then died of a signal (a crash in PHP's module shutdown) is logged as
// a warning with its exit status; one that said Bye and exited normally only at debug level.
func TestByeThenSignal(t *testing.T) {
	for _, via := range []string{"idle", "request"} {
		t.Run(via, func(t *testing.T) {
			var calls atomic.Int64
			s := &fakeStarter{unix: true, linger: make(chan struct{}), act: func(req []byte) []byte {
				if string(req) == "req" && calls.Add(1) == 1 {
					return bye
				}
				return okResponse("ok")
			}}
			var logs logBuffer
			p := startPool(t, Options{Workers: 1, Logger: logs.logger()}, s)
			t.Cleanup(func() { close(s.linger) })
			warm(t, p, s, 1)
			w := s.proc(0)
			w.err = signalExit{syscall.SIGSEGV}
			if via == "idle" {
				if _, err := w.peer.Write(bye); err != nil {
					t.Fatal(err)
				}
				w.exit()
			} else {
				var r recorder
				if err := serve(p, context.Background(), []byte("req"), &r); err != nil || string(r.body) != "ok" {
					t.Fatalf("Serve = %v %q; want \"ok\" from another worker", err, r.body)
				}
				w.exit()
			}
			const warning = `level=WARN msg="worker said it was leaving between requests, then died of a signal" pid=1001 status="signal: segmentation fault"`
			waitCond(t, "the warning", func() bool { return strings.Contains(logs.String(), warning) })
		})
	}
}

// An idle worker that exits as a request claims it, after the claim and before the request looks
// at it again, while run has seen the exit (and found the worker claimed): the request reports the
// exit, once.
func TestIdleExitAsClaimed(t *testing.T) {
	s := &fakeStarter{unix: true, act: func([]byte) []byte { return okResponse("ok") }}
	var logs logBuffer
	p := startPool(t, Options{Workers: 1, Logger: logs.logger()}, s)
	warm(t, p, s, 1)
	var once sync.Once
	testHookTaken = func(w *worker) {
		once.Do(func() {
			s.proc(0).exit()
			// run has seen the exit when it starts the replacement.
			waitCond(t, "the replacement started", func() bool { return s.started.Load() == 2 })
		})
	}
	t.Cleanup(func() { testHookTaken = nil })
	var r recorder
	if err := serve(p, context.Background(), []byte("req"), &r); err != nil || string(r.body) != "ok" {
		t.Fatalf("Serve = %v %q; want \"ok\" from the replacement", err, r.body)
	}
	const warning = `level=WARN msg="worker exited unexpectedly; replacing it" pid=1001`
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Errorf("log %q has %d of %q; want 1", logs.String(), n, warning)
	}
}

// A request that meets a Bye waits for its next worker within what is left of its one
// queue_timeout, and is not refused for a full queue: it was admitted already.
func TestByeRetryQueue(t *testing.T) {
	t.Run("full", func(t *testing.T) {
		release := make(chan struct{})
		var calls atomic.Int64
		s := &fakeStarter{
			gate: func(n int64) error {
				if n > 1 {
					<-release // the replacement boots when the test says
				}
				return nil
			},
			act: func(req []byte) []byte {
				if string(req) == "req" && calls.Add(1) == 1 {
					<-release
					return bye
				}
				return okResponse("ok")
			},
		}
		p := startPool(t, Options{Workers: 1, QueueSize: 1, QueueTimeout: time.Minute}, s)
		warm(t, p, s, 1)
		errs := make(chan error, 2)
		go func() { var r recorder; errs <- serve(p, context.Background(), []byte("req"), &r) }()
		waitCond(t, "the worker has the request", func() bool { return calls.Load() == 1 })
		go func() { var r recorder; errs <- serve(p, context.Background(), []byte("other"), &r) }()
		waitCond(t, "the other request queued", func() bool { return p.waiting.Load() == 1 })
		close(release) // Bye: the request waits again, beside the other one
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("Serve = %v; want both requests served", err)
			}
		}
	})
	t.Run("deadline", func(t *testing.T) {
		const queueTimeout = time.Second
		release := make(chan struct{})
		boot := make(chan struct{})
		var calls atomic.Int64
		s := &fakeStarter{
			gate: func(n int64) error {
				if n > 1 {
					<-boot
				}
				return nil
			},
			act: func(req []byte) []byte {
				if string(req) == "req" && calls.Add(1) == 1 {
					<-release
					return bye
				}
				return okResponse("ok")
			},
		}
		p := startPool(t, Options{Workers: 1, QueueTimeout: queueTimeout}, s)
		t.Cleanup(func() { close(boot) })
		warm(t, p, s, 1)
		errs := make(chan error, 1)
		go func() { var r recorder; errs <- serve(p, context.Background(), []byte("req"), &r) }()
		<-time.After(queueTimeout) // the request's queue_timeout is over while the worker has it
		close(release)
		select {
		case err := <-errs:
			if !errors.Is(err, ErrQueueTimeout) {
				t.Errorf("Serve = %v; want ErrQueueTimeout", err)
			}
		case <-time.After(queueTimeout / 2):
			t.Errorf("Serve waited again after its queue_timeout was over; want ErrQueueTimeout at once")
		}
	})
}
