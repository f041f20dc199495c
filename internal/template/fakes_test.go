package template

import (
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

	"github.com/askr-php/askr/internal/channel"
)

// Fakes for the template's OS: a fake template process on a net.Pipe that says Ready and answers
// Fork frames by "forking" a fake worker, whose connection comes in on a fake listener with fake
// credentials and is watched through a fake pid handle. The production code between them (the
// owner, the frames, the checks) is the real one.

const (
	fakeUID   = 1000
	fakeAskrd = 1
)

// fakeSystem starts fake templates, one behaviour per boot (the last one repeats).
type fakeSystem struct {
	t        *testing.T
	ln       *fakeListener
	mu       sync.Mutex
	boots    []bootBehaviour
	started  []*fakeTemplate
	handles  map[int]*fakeHandle
	nextPID  int
	noFork   atomic.Bool           // templates take Fork frames and do nothing
	gate     chan struct{}         // if not nil, each start waits for it
	entered  chan struct{}         // if not nil, each start sends on it first
	forkCred func(c creds) creds   // if not nil, rewrites the credentials of each fork
	molds    map[int]*fakeTemplate // workers promoted to template, by pid
	noReady  atomic.Bool           // a worker told to Promote ends instead of answering Ready
}

// bootBehaviour is what a fake template does when started.
type bootBehaviour int

const (
	bootReady bootBehaviour = iota // says Ready
	bootFail                       // prints an error and exits 255 before Ready
)

func newFakeSystem(t *testing.T, boots ...bootBehaviour) *fakeSystem {
	if len(boots) == 0 {
		boots = []bootBehaviour{bootReady}
	}
	s := &fakeSystem{t: t, ln: newFakeListener(), boots: boots, handles: map[int]*fakeHandle{}, molds: map[int]*fakeTemplate{}, nextPID: 1 << 30} // above pid_max: no real process
	s.ln.promote = s.promote
	return s
}

// promote makes the fake worker pid, whose end of its channel is peer, a template (a Promote
// frame came): it answers Ready and takes Fork frames, until askrd stops it or lets go.
func (s *fakeSystem) promote(pid int, peer net.Conn) {
	if s.noReady.Load() {
		return
	}
	p := &fakeTemplate{sys: s, pid: pid, peer: peer, done: make(chan struct{}), forks: make(chan string, 100)}
	s.mu.Lock()
	s.molds[pid] = p
	s.mu.Unlock()
	p.run(bootReady)
}

// mold returns the fake worker pid promoted to template, waiting for it.
func (s *fakeSystem) mold(pid int) *fakeTemplate {
	s.t.Helper()
	var p *fakeTemplate
	poll(s.t, fmt.Sprintf("worker %d promoted", pid), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		p = s.molds[pid]
		return p != nil
	})
	return p
}

func (s *fakeSystem) system() system {
	return system{
		start:  s.start,
		listen: func(string) (net.Listener, error) { return s.ln, nil },
		peer: func(c net.Conn) (creds, error) {
			fc, ok := c.(*fakeConn)
			if !ok {
				return creds{}, errors.New("not a fake connection")
			}
			return fc.creds, nil
		},
		watch: func(pid int) (pidHandle, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			h := s.handles[pid]
			if h == nil {
				return nil, fmt.Errorf("pidfd_open %d: no such process", pid)
			}
			h.opened.Add(1)
			return h, nil
		},
		uid:   fakeUID,
		askrd: fakeAskrd,
	}
}

func (s *fakeSystem) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextPID++
	return s.nextPID
}

func (s *fakeSystem) start() (templateProcess, error) {
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	if s.gate != nil {
		<-s.gate
	}
	conn, peer := net.Pipe()
	p := &fakeTemplate{sys: s, pid: s.pid(), conn: conn, peer: peer, done: make(chan struct{}), forks: make(chan string, 100)}
	s.mu.Lock()
	b := s.boots[min(len(s.started), len(s.boots)-1)]
	s.started = append(s.started, p)
	s.mu.Unlock()
	go p.run(b)
	return p, nil
}

// template returns the i-th template started (from 0), waiting for it.
func (s *fakeSystem) template(i int) *fakeTemplate {
	s.t.Helper()
	var p *fakeTemplate
	poll(s.t, fmt.Sprintf("template %d started", i), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if i < len(s.started) {
			p = s.started[i]
		}
		return p != nil
	})
	return p
}

// newHandle makes the pid handle of a fake process pid, for watch to find.
func (s *fakeSystem) newHandle(pid int) *fakeHandle {
	h := &fakeHandle{done: make(chan struct{})}
	s.mu.Lock()
	s.handles[pid] = h
	s.mu.Unlock()
	return h
}

func (s *fakeSystem) handle(pid int) *fakeHandle {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handles[pid]
}

// fakeTemplate is a template process: askrd's end of its channel is conn.
type fakeTemplate struct {
	sys        *fakeSystem
	pid        int
	conn, peer net.Conn
	done       chan struct{}
	once       sync.Once
	err        error
	tail       string
	forks      chan string // the tokens of the Fork frames received
	forked     []int       // pids of the workers forked, in order
	mu         sync.Mutex
	stopped    atomic.Bool // a Stop frame came
}

func (p *fakeTemplate) PID() int              { return p.pid }
func (p *fakeTemplate) Conn() net.Conn        { return p.conn }
func (p *fakeTemplate) Kill() error           { p.exit(errors.New("signal: killed")); return nil }
func (p *fakeTemplate) Done() <-chan struct{} { return p.done }
func (p *fakeTemplate) Err() error            { return p.err }
func (p *fakeTemplate) Tail() string          { return p.tail }
func (p *fakeTemplate) Close() error          { return p.conn.Close() }

func (p *fakeTemplate) exit(err error) {
	p.once.Do(func() {
		p.err = err
		p.peer.Close()
		close(p.done)
	})
}

func (p *fakeTemplate) run(b bootBehaviour) {
	if b == bootFail {
		p.tail = "PHP Fatal error:  boom in /app/boot.php on line 3"
		p.exit(errors.New("exit status 255"))
		return
	}
	if _, err := p.peer.Write(channel.AppendHeader(nil, channel.TypeReady, 0, 0)); err != nil {
		p.exit(err)
		return
	}
	for {
		f, err := readFrame(p.peer)
		if err != nil {
			p.exit(nil)
			return
		}
		switch f.Type {
		case channel.TypeStop:
			p.stopped.Store(true)
			p.exit(nil)
			return
		case channel.TypeFork:
			token, _, _ := strings.Cut(string(f.Payload), "\n")
			p.forks <- token
			if !p.sys.noFork.Load() {
				p.fork(token)
			}
		}
	}
}

// fork starts a fake worker: it connects with its hello, and its handle exits when the test says.
func (p *fakeTemplate) fork(token string) {
	pid := p.sys.pid()
	h := p.sys.newHandle(pid)
	p.mu.Lock()
	p.forked = append(p.forked, pid)
	p.mu.Unlock()
	c := creds{PID: pid, UID: fakeUID, PPID: p.pid}
	if p.sys.forkCred != nil {
		c = p.sys.forkCred(c)
	}
	p.sys.ln.connect(p.sys.t, channel.Hello{PID: pid, Token: token, PHPVersion: "8.2.0"}, c, h)
}

func (p *fakeTemplate) forkedPIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.forked...)
}

// fakeHandle is a forked worker's pid handle.
type fakeHandle struct {
	done   chan struct{}
	once   sync.Once
	kills  atomic.Int64
	opened atomic.Int64
	closed atomic.Int64
}

func (h *fakeHandle) exit()                 { h.once.Do(func() { close(h.done) }) }
func (h *fakeHandle) Done() <-chan struct{} { return h.done }
func (h *fakeHandle) Kill() error           { h.kills.Add(1); h.exit(); return nil }
func (h *fakeHandle) Signal(sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		return h.Kill()
	}
	return nil
}
func (h *fakeHandle) Close() error { h.closed.Add(1); return nil }

// fakeConn is askrd's end of a connection to the private socket, with the credentials the kernel
// would give for its peer.
type fakeConn struct {
	net.Conn
	creds creds
}

// fakeListener is the private socket.
type fakeListener struct {
	conns   chan net.Conn
	closed  chan struct{}
	once    sync.Once
	promote func(pid int, peer net.Conn) // a connected worker got a Promote frame
}

func newFakeListener() *fakeListener {
	return &fakeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *fakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *fakeListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *fakeListener) Addr() net.Addr { return &net.UnixAddr{Name: "fake", Net: "unix"} }

// connect makes a connection that says hello, with the peer credentials c. The peer's end reads
// frames until askrd closes the connection (or, told to Promote, plays a template until it ends),
// then closes the handle h (if not nil): the worker exits when askrd lets go of it. It returns a
// channel closed at that moment.
func (l *fakeListener) connect(t *testing.T, hello channel.Hello, c creds, h *fakeHandle) <-chan struct{} {
	askrd, peer := net.Pipe()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		payload := channel.AppendHello(nil, hello)
		if _, err := peer.Write(append(channel.AppendHeader(nil, channel.TypeHello, 0, len(payload)), payload...)); err != nil {
			return
		}
		for {
			f, err := readFrame(peer)
			if err != nil {
				break
			}
			if f.Type == channel.TypePromote && l.promote != nil {
				l.promote(hello.PID, peer)
				break
			}
		}
		peer.Close()
		if h != nil {
			h.exit()
		}
	}()
	select {
	case l.conns <- &fakeConn{Conn: askrd, creds: c}:
	case <-l.closed:
		askrd.Close()
	}
	return closed
}

// logBuffer is a log both the template and the test use.
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
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// poll waits up to 10 s for cond.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
	}
}

// started is what a Start called by startAsync returned.
type started struct {
	w   *worker
	err error
}

// startAsync calls Start on a goroutine of its own.
func startAsync(tm *Template) <-chan started {
	got := make(chan started, 1)
	go func() {
		p, err := tm.Start()
		w, _ := p.(*worker)
		got <- started{w, err}
	}()
	return got
}
