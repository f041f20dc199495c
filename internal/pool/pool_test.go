package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/channel"
)

// fakeProc is a worker process played by a goroutine on the other end of a net.Pipe.
type fakeProc struct {
	pid    int
	conn   net.Conn // askrd's end
	ch     *channel.Endpoint
	peer   net.Conn // the fake worker's end
	done   chan struct{}
	once   sync.Once
	served atomic.Int64 // requests answered
	aborts atomic.Int64 // Abort frames received
	err    error        // what Err returns; set before the process exits
}

func (p *fakeProc) PID() int { return p.pid }
func (p *fakeProc) Kill() error {
	p.exit()
	return nil
}

// exit ends the fake process as a real one ends (see phpcgi.Process): its channel gives what it
// wrote, then end of file, and Done is closed.
func (p *fakeProc) exit() {
	p.once.Do(func() {
		p.peer.Close()
		p.ch.Exited()
		close(p.done)
	})
}
func (p *fakeProc) Done() <-chan struct{}            { return p.done }
func (p *fakeProc) Err() error                       { return p.err }
func (p *fakeProc) Tail() string                     { return "fake tail" }
func (p *fakeProc) Close() error                     { return p.conn.Close() }
func (p *fakeProc) Ping(timeout time.Duration) error { return p.ch.Ping(timeout) }
func (p *fakeProc) Stop() error                      { return p.ch.Stop() }
func (p *fakeProc) Left() bool                       { return p.ch.Left() }
func (p *fakeProc) Channel() *channel.Endpoint       { return p.ch }
func (p *fakeProc) Greet(time.Duration) (channel.Hello, error) {
	f, err := channel.NewReader(p.conn).ReadFrame()
	if err != nil {
		return channel.Hello{}, err
	}
	return channel.ParseHello(f.Payload)
}

// serve runs one request on a worker of p, as httpfront's worker backend does: the request goes
// out on the worker's channel (channel.Endpoint.Exchange) and its answer to resp.
func serve(p *Pool, ctx context.Context, payload []byte, resp channel.Response) error {
	return p.Call(ctx, nil, func(proc Process) Outcome {
		r := proc.(interface{ Channel() *channel.Endpoint }).Channel().Exchange(payload, resp)
		err := r.Err
		if errors.Is(err, channel.ErrBadHeader) {
			err = fmt.Errorf("%w: %v", ErrBadResponse, err)
		}
		o := Outcome{Err: err, Broken: r.Broken, Unsent: r.Unsent, ClientGone: r.ClientGone, Exits: r.Exits, Left: r.Bye, Memory: r.Memory}
		if rec, ok := resp.(*recorder); ok {
			o.Status = rec.status
		}
		return o
	})
}

// behaviour is what a fake worker does with each request payload; it returns the frames to send
// (nil: exit without answering).
type behaviour func(req []byte) []byte

type fakeStarter struct {
	mu      sync.Mutex
	next    int
	failing atomic.Bool
	started atomic.Int64
	gate    func(n int64) error // if set, called with each Start's number (from 1); may block; an error fails the boot
	act     behaviour
	procs   []*fakeProc
	// unix: the channel is a socket pair, which buffers as a real one does, instead of a net.Pipe.
	unix bool
	// linger, if set, keeps a fake worker whose channel ended running until it is closed.
	linger chan struct{}
	base   int // pids are 1001+base, 1002+base, …
}

func (s *fakeStarter) proc(i int) *fakeProc {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.procs) {
		return nil
	}
	return s.procs[i]
}

func (s *fakeStarter) Start() (Process, error) {
	n := s.started.Add(1)
	if s.gate != nil {
		if err := s.gate(n); err != nil {
			return nil, err
		}
	}
	if s.failing.Load() {
		return nil, errors.New("boot failed on purpose")
	}
	s.mu.Lock()
	s.next++
	pid := 1000 + s.base + s.next
	s.mu.Unlock()
	a, b := net.Pipe()
	if s.unix {
		var err error
		if a, b, err = socketPair(); err != nil {
			return nil, err
		}
	}
	p := &fakeProc{pid: pid, conn: a, ch: channel.NewEndpoint(a), peer: b, done: make(chan struct{})}
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	go s.run(p)
	return p, nil
}

func (s *fakeStarter) run(p *fakeProc) {
	defer p.exit()
	var hello []byte
	pl := channel.AppendHello(nil, channel.Hello{PID: p.pid, PHPVersion: "fake"})
	hello = channel.AppendHeader(hello, channel.TypeHello, 0, len(pl))
	if _, err := p.peer.Write(append(hello, pl...)); err != nil {
		return
	}
	rd := channel.NewReader(p.peer)
	for {
		f, err := rd.ReadFrame()
		if err != nil || f.Type == channel.TypeStop {
			if err != nil && s.linger != nil {
				<-s.linger
			}
			return
		}
		if f.Type == channel.TypeAbort {
			p.aborts.Add(1)
			continue
		}
		if f.Type == channel.TypePing {
			if _, err := p.peer.Write(frame(channel.TypePong, 0, nil)); err != nil {
				return
			}
			continue
		}
		p.served.Add(1)
		out := s.act(append([]byte(nil), f.Payload...))
		if out == nil {
			return
		}
		if _, err := p.peer.Write(out); err != nil {
			return
		}
		if bytes.HasSuffix(out, bye) {
			return // it said Bye: it ends
		}
	}
}

// bye is a Bye frame: a fake worker that sends it ends.
var bye = frame(channel.TypeBye, 0, nil)

// socketPair returns the two ends of a Unix stream socket pair.
func socketPair() (net.Conn, net.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			return nil, nil, err
		}
		conns[i] = c
	}
	return conns[0], conns[1], nil
}

func frame(typ byte, flags uint16, payload []byte) []byte {
	return append(channel.AppendHeader(nil, typ, flags, len(payload)), payload...)
}

func okResponse(body string) []byte {
	out := frame(channel.TypeHead, 0, append([]byte{0, 200}, "X-Test: 1"...))
	out = append(out, frame(channel.TypeBody, 0, []byte(body))...)
	return append(out, frame(channel.TypeEnd, 0, make([]byte, 16))...)
}

type recorder struct {
	status  int
	body    []byte
	flushes int
	failAt  int // Body fails from this call on (0: never), as a client that left
	calls   int
}

func (r *recorder) Head(status int, _ []channel.Header) error { r.status = status; return nil }
func (r *recorder) Body(b []byte) error {
	if r.calls++; r.failAt > 0 && r.calls >= r.failAt {
		return errors.New("client gone")
	}
	r.body = append(r.body, b...)
	return nil
}
func (r *recorder) Flush() error { r.flushes++; return nil }

// startPool runs a pool of s's processes until the test ends; setup, if any, sees the pool
// before it runs.
func startPool(t testing.TB, opt Options, s Starter, setup ...func(*Pool)) *Pool {
	t.Helper()
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.QueueTimeout == 0 {
		opt.QueueTimeout = 5 * time.Second
	}
	if opt.QueueSize == 0 {
		opt.QueueSize = 16
	}
	p := New(opt, s)
	for _, f := range setup {
		f(p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("pool did not stop")
		}
	})
	return p
}

func waitReady(t testing.TB, p *Pool) {
	t.Helper()
	select {
	case <-p.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("pool never ready")
	}
}

func TestServeAndMaxRequests(t *testing.T) {
	s := &fakeStarter{act: func([]byte) []byte { return okResponse("hi") }}
	p := startPool(t, Options{Workers: 2, MaxRequests: 3}, s)
	waitReady(t, p)
	for i := range 12 {
		var r recorder
		if err := serve(p, context.Background(), []byte("req"), &r); err != nil || r.status != 200 || string(r.body) != "hi" {
			t.Fatalf("request %d: %v %d %q", i, err, r.status, r.body)
		}
	}
	// Each worker retires at its third request and is replaced: a live worker holds at most 2 of the
	// 12, so 3 or 4 retired (which ones depends on timing), and 2 are kept alive.
	exited := func() (n int) {
		for i := 0; s.proc(i) != nil; i++ {
			select {
			case <-s.proc(i).done:
				n++
			default:
			}
		}
		return n
	}
	deadline := time.Now().Add(5 * time.Second)
	for int(s.started.Load())-exited() != 2 || exited() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers started, %d exited, for 12 requests with max_requests 3 on 2 workers; want 2 alive and ≥ 3 retired",
				s.started.Load(), exited())
		}
		time.Sleep(time.Millisecond)
	}
	for i := 0; s.proc(i) != nil; i++ {
		if n := s.proc(i).served.Load(); n > 3 {
			t.Errorf("worker %d served %d requests; max_requests is 3", s.proc(i).pid, n)
		}
	}
	if st := p.Stats(); st.Served != 12 {
		t.Errorf("Stats().Served = %d; want 12", st.Served)
	}
}

func TestMalformedFrameKillsOnlyThatWorker(t *testing.T) {
	var n atomic.Int64
	s := &fakeStarter{act: func([]byte) []byte {
		if n.Add(1) == 1 {
			return []byte{9, 9, 9, 9, 0, 0, 0, 1, 'x'} // wrong version
		}
		return okResponse("fine")
	}}
	p := startPool(t, Options{Workers: 1}, s)
	waitReady(t, p)
	var r recorder
	if err := serve(p, context.Background(), nil, &r); !errors.Is(err, ErrWorkerDied) {
		t.Fatalf("Serve with a malformed answer: %v; want ErrWorkerDied", err)
	}
	r = recorder{}
	if err := serve(p, context.Background(), nil, &r); err != nil || string(r.body) != "fine" {
		t.Errorf("Serve after a malformed frame: %v %q; want a replaced worker answering", err, r.body)
	}
}

func TestWorkerDiesMidRequest(t *testing.T) {
	var n atomic.Int64
	s := &fakeStarter{act: func([]byte) []byte {
		if n.Add(1) == 1 {
			return nil // exits without answering
		}
		return okResponse("ok")
	}}
	p := startPool(t, Options{Workers: 1}, s)
	waitReady(t, p)
	if err := serve(p, context.Background(), nil, &recorder{}); !errors.Is(err, ErrWorkerDied) {
		t.Fatalf("Serve: %v; want ErrWorkerDied", err)
	}
	var r recorder
	if err := serve(p, context.Background(), nil, &r); err != nil || string(r.body) != "ok" {
		t.Errorf("after a crash: %v %q", err, r.body)
	}
}

func TestTimeoutKillsWorker(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	var n atomic.Int64
	s := &fakeStarter{act: func([]byte) []byte {
		if n.Add(1) == 1 {
			<-block
		}
		return okResponse("ok")
	}}
	p := startPool(t, Options{Workers: 1, RequestTimeout: 50 * time.Millisecond}, s)
	waitReady(t, p)
	if err := serve(p, context.Background(), nil, &recorder{}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Serve past the timeout: %v; want ErrTimeout", err)
	}
	var r recorder
	if err := serve(p, context.Background(), nil, &r); err != nil || string(r.body) != "ok" {
		t.Errorf("after a timeout: %v %q", err, r.body)
	}
}

func TestQueueFull(t *testing.T) {
	block := make(chan struct{})
	s := &fakeStarter{act: func([]byte) []byte { <-block; return okResponse("ok") }}
	p := startPool(t, Options{Workers: 1, QueueSize: 1, QueueTimeout: 10 * time.Second}, s)
	waitReady(t, p)
	errs := make(chan error, 3)
	for range 2 {
		go func() { errs <- serve(p, context.Background(), nil, &recorder{}) }()
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Busy != 1 || p.Stats().Waiting != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v; want one busy, one waiting", p.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if err := serve(p, context.Background(), nil, &recorder{}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("third request: %v; want ErrQueueFull", err)
	}
	close(block)
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("queued request: %v", err)
		}
	}
}

// A first generation in which no worker boots ends Run with the boot's error, without retrying,
// and requests are refused at once.
func TestFirstBootFailureIsFatal(t *testing.T) {
	s := &fakeStarter{act: func([]byte) []byte { return okResponse("ok") }}
	s.failing.Store(true)
	p := New(Options{Workers: 3, QueueSize: 4, QueueTimeout: time.Minute, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, s)
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "boot failed on purpose") {
			t.Errorf("Run when every first boot fails = %v; want the boot's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running 10s after every first boot failed; want it to return the error")
	}
	if n := s.started.Load(); n != 3 {
		t.Errorf("%d boots started for 3 workers; want 3 (no retry before any worker booted)", n)
	}
	select {
	case <-p.Ready():
		t.Error("Ready closed although no worker booted")
	default:
	}
	start := time.Now()
	if err := serve(p, context.Background(), nil, &recorder{}); !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Run failed = %v; want ErrUnavailable or ErrClosed", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Serve after Run failed took %v; want an answer at once, not after queue_timeout", d)
	}
}

// While no worker has ever booted and a boot has failed, requests get ErrUnavailable at once; a
// worker of the first generation that does boot saves the day, and the failed boot is retried.
func TestFirstBootPartlyFails(t *testing.T) {
	release := make(chan struct{})
	s := &fakeStarter{act: func([]byte) []byte { return okResponse("ok") }}
	s.gate = func(n int64) error {
		switch n {
		case 1:
			return errors.New("boot failed on purpose")
		case 2:
			<-release // a slow boot
		}
		return nil
	}
	p := startPool(t, Options{Workers: 2, QueueTimeout: time.Minute}, s)
	waitCond(t, "first boot failed", func() bool { return p.failing.Load() })
	start := time.Now()
	if err := serve(p, context.Background(), nil, &recorder{}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Serve while no worker has booted and one failed = %v; want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Serve took %v; want ErrUnavailable at once", d)
	}
	close(release)
	waitReady(t, p) // the second boots; the first is booted again after its back-off
	if n := s.started.Load(); n != 3 {
		t.Errorf("%d boots started; want 3 (one failed, retried once)", n)
	}
	var r recorder
	if err := serve(p, context.Background(), nil, &r); err != nil || string(r.body) != "ok" {
		t.Errorf("after the first generation came up: %v %q", err, r.body)
	}
}

// After a worker has booted once, failed boots are retried with back-off (Run goes on), requests
// get ErrUnavailable at once while no worker runs, and the pool recovers once boots succeed.
func TestBootFailureBacksOffAndRecovers(t *testing.T) {
	s := &fakeStarter{act: func([]byte) []byte { return okResponse("ok") }}
	p := startPool(t, Options{Workers: 1}, s)
	waitReady(t, p)
	s.failing.Store(true)
	s.proc(0).exit()
	deadline := time.Now().Add(5 * time.Second)
	for s.started.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("boot retried %d times in 5s; want ≥ 3", s.started.Load()-1)
		}
		time.Sleep(time.Millisecond)
	}
	if err := serve(p, context.Background(), nil, &recorder{}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Serve while every boot fails: %v; want ErrUnavailable at once", err)
	}
	s.failing.Store(false)
	waitCond(t, "a worker booted again", func() bool { return p.Stats().Ready == 1 })
	var r recorder
	if err := serve(p, context.Background(), nil, &r); err != nil || string(r.body) != "ok" {
		t.Errorf("after recovery: %v %q", err, r.body)
	}
}

// Workers that die while idle are replaced, the pool keeps serving, and it still stops.
func TestIdleWorkersDying(t *testing.T) {
	s := &fakeStarter{act: func([]byte) []byte { return okResponse("ok") }}
	p := startPool(t, Options{Workers: 1}, s)
	waitReady(t, p)
	for i := range 3 {
		s.proc(i).exit()
		deadline := time.Now().Add(5 * time.Second)
		for s.started.Load() < int64(i+2) || p.Stats().Ready != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("after idle worker %d died: %d started, stats %+v", i, s.started.Load(), p.Stats())
			}
			time.Sleep(time.Millisecond)
		}
	}
	var r recorder
	if err := serve(p, context.Background(), nil, &r); err != nil || string(r.body) != "ok" {
		t.Errorf("Serve after idle deaths: %v %q", err, r.body)
	}
}

// A request whose worker died while it had it (a query of death) is not run again elsewhere,
// whatever its method: it gets ErrWorkerDied and the worker that died is the only one.
func TestQueryOfDeathKillsOneWorker(t *testing.T) {
	var deaths atomic.Int64
	s := &fakeStarter{act: func(req []byte) []byte {
		if string(req) == "die" {
			deaths.Add(1)
			return nil // reads the request, dies without answering
		}
		return okResponse("ok")
	}}
	p := startPool(t, Options{Workers: 3}, s)
	waitReady(t, p)
	if err := serve(p, context.Background(), []byte("die"), &recorder{}); !errors.Is(err, ErrWorkerDied) {
		t.Errorf("Serve of a request that kills its worker: %v; want ErrWorkerDied", err)
	}
	waitCond(t, "the dead worker replaced", func() bool { return s.started.Load() == 4 && p.Stats().Ready == 3 })
	if n := deaths.Load(); n != 1 {
		t.Errorf("%d workers got the request that kills; want 1", n)
	}
	var r recorder
	if err := serve(p, context.Background(), []byte("req"), &r); err != nil || string(r.body) != "ok" {
		t.Errorf("next request: %v %q", err, r.body)
	}
	if n := s.started.Load(); n != 4 {
		t.Errorf("%d workers started for 3 workers and one crash; want 4", n)
	}
}

// A request that could not be written to a dead worker is sent to another, whatever its method.
func TestUndeliveredRequestRetried(t *testing.T) {
	s := &fakeStarter{act: func([]byte) []byte { return okResponse("ok") }}
	p := startPool(t, Options{Workers: 1}, s)
	waitReady(t, p)
	s.proc(0).peer.Close() // its end of the channel is gone, the process not yet reported dead
	var r recorder
	if err := serve(p, context.Background(), nil, &r); err != nil || string(r.body) != "ok" {
		t.Errorf("request to a worker whose channel is closed: %v %q; want it sent to another worker", err, r.body)
	}
}

func TestFlushReachesResponse(t *testing.T) {
	s := &fakeStarter{act: func([]byte) []byte {
		out := frame(channel.TypeHead, 0, []byte{0, 200})
		out = append(out, frame(channel.TypeBody, channel.FlagFlush, []byte("event 1\n"))...)
		out = append(out, frame(channel.TypeBody, 0, []byte("tail"))...)
		return append(out, frame(channel.TypeEnd, 0, make([]byte, 16))...)
	}}
	p := startPool(t, Options{Workers: 1}, s)
	waitReady(t, p)
	var r recorder
	if err := serve(p, context.Background(), []byte("req"), &r); err != nil || string(r.body) != "event 1\ntail" || r.flushes != 1 {
		t.Fatalf("Serve: %v, body %q, %d flushes; want nil, \"event 1\\ntail\", 1", err, r.body, r.flushes)
	}
}

// A client that leaves mid-response: the worker is told (Abort frame), finishes its response,
// which is discarded, and serves the next request.
func TestClientGoneTellsWorker(t *testing.T) {
	s := &fakeStarter{act: func([]byte) []byte {
		out := frame(channel.TypeHead, 0, []byte{0, 200})
		for range 3 {
			out = append(out, frame(channel.TypeBody, channel.FlagFlush, []byte("chunk"))...)
		}
		return append(out, frame(channel.TypeEnd, 0, make([]byte, 16))...)
	}}
	p := startPool(t, Options{Workers: 1}, s)
	waitReady(t, p)
	r := recorder{failAt: 2}
	if err := serve(p, context.Background(), []byte("req"), &r); err == nil || string(r.body) != "chunk" {
		t.Fatalf("Serve with a failing client: %v, body %q; want an error after one chunk", err, r.body)
	}
	var next recorder
	if err := serve(p, context.Background(), []byte("req"), &next); err != nil || string(next.body) != "chunkchunkchunk" {
		t.Fatalf("next request: %v %q", err, next.body)
	}
	if proc := s.proc(0); proc.aborts.Load() != 1 || proc.served.Load() != 2 || s.started.Load() != 1 {
		t.Errorf("worker got %d aborts, served %d, %d started; want 1, 2, 1", proc.aborts.Load(), proc.served.Load(), s.started.Load())
	}
}

// Refuse (a drain cut short) ends the wait of queued requests with ErrClosed and counts them;
// the request that has the worker goes on and is answered.
func TestRefuseEndsTheQueueOnly(t *testing.T) {
	block := make(chan struct{})
	s := &fakeStarter{act: func([]byte) []byte { <-block; return okResponse("ok") }}
	p := startPool(t, Options{Workers: 1, QueueSize: 8, QueueTimeout: time.Minute}, s)
	waitReady(t, p)
	running := make(chan error, 1)
	go func() { running <- serve(p, context.Background(), nil, &recorder{}) }()
	for deadline := time.Now().Add(5 * time.Second); p.Stats().Busy != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v; want one busy", p.Stats())
		}
	}
	queued := make(chan error, 3)
	for range 3 {
		go func() { queued <- serve(p, context.Background(), nil, &recorder{}) }()
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Busy != 1 || p.Stats().Waiting != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v; want one busy, three waiting", p.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	p.Refuse()
	for range 3 {
		select {
		case err := <-queued:
			if !errors.Is(err, ErrClosed) {
				t.Errorf("queued request after Refuse: %v; want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a queued request still waits after Refuse")
		}
	}
	if st := p.Stats(); st.Refused != 3 || st.Waiting != 0 || st.Busy != 1 {
		t.Errorf("stats after Refuse %+v; want Refused 3, Waiting 0, Busy 1", st)
	}
	close(block)
	if err := <-running; err != nil {
		t.Errorf("request that had the worker: %v; want it answered", err)
	}
}
