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
	"testing"
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

// A worker that answers a request with Bye never read it: the request goes to another worker, and
// the one that left is replaced without a warning.
func TestByeAnswerRetriedOnAnotherWorker(t *testing.T) {
	var calls atomic.Int64
	s := &fakeStarter{act: func([]byte) []byte {
		if calls.Add(1) == 1 {
			return bye
		}
		return okResponse("ok")
	}}
	var logs logBuffer
	p := startPool(t, Options{Workers: 2, Logger: logs.logger()}, s)
	waitReady(t, p)
	var r recorder
	if err := p.Serve(context.Background(), []byte("req"), &r); err != nil || r.status != 200 || string(r.body) != "ok" {
		t.Fatalf("Serve to a worker that says Bye = %v, %d %q; want 200 \"ok\" from another worker", err, r.status, r.body)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("the request reached %d workers; want 2 (the one that left, then another)", n)
	}
	waitCond(t, "a third worker started and two ready", func() bool { return s.started.Load() == 3 && p.Stats().Ready == 2 })
	if got := p.Stats().Served; got != 1 {
		t.Errorf("Stats().Served = %d; want 1 (the Bye is no answer)", got)
	}
	checkQuiet(t, &logs)
}

// Workers that all say Bye to every request: the request is not tried for ever (maxLeft), and it
// is a 502 (ErrWorkerDied), since no worker took it.
func TestByeAnswerRetriesBounded(t *testing.T) {
	var calls atomic.Int64
	s := &fakeStarter{act: func([]byte) []byte { calls.Add(1); return bye }}
	p := startPool(t, Options{Workers: 1}, s)
	waitReady(t, p)
	var r recorder
	if err := p.Serve(context.Background(), []byte("req"), &r); !errors.Is(err, ErrWorkerDied) {
		t.Fatalf("Serve when every worker says Bye = %v; want ErrWorkerDied", err)
	}
	if n := calls.Load(); n != maxLeft+1 {
		t.Errorf("the request reached %d workers; want %d", n, maxLeft+1)
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
			if err := p.Serve(context.Background(), []byte("req"), &r); err != nil || string(r.body) != "ok" {
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
			if err := p.Serve(context.Background(), []byte("req"), &r); err != nil || string(r.body) != "ok" {
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
	if err := p.Serve(context.Background(), []byte("req"), &r); err != nil || string(r.body) != "ok" {
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
	waitReady(t, p)
	peer := s.proc(0).peer
	if _, err := peer.Write(bye); err != nil {
		t.Fatal(err)
	}
	peer.(*net.UnixConn).CloseRead() // askrd's writes now fail (EPIPE); the process has not exited
	var r recorder
	if err := p.Serve(context.Background(), []byte("req"), &r); err != nil || string(r.body) != "ok" {
		t.Fatalf("Serve = %v %q; want \"ok\" from another worker", err, r.body)
	}
	if n := s.started.Load(); n != 2 {
		t.Errorf("%d workers started; want 2", n)
	}
	checkQuiet(t, &logs)
}
