// Package template runs CoW template mode: one php-cgi process (the template) boots the app and, at
// askr_cow_ready(), waits for Fork frames; every forked child connects back to askrd's private
// socket and becomes a worker with a channel of its own. The package is the pool's Starter in CoW
// mode: Start asks the template for one fork and returns the verified child. It boots a new
// template (a new generation) when the old one dies, and knows nothing of HTTP or dispatch.
package template

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/phpcgi"
	"github.com/askr-php/askr/internal/pool"
	"github.com/askr-php/askr/internal/proc"
)

// Options configures a Template.
type Options struct {
	Launcher    *phpcgi.Launcher // starts the template process (with this package's Env)
	Dir         string           // private directory for the socket and the workers' log FIFOs
	BootTimeout time.Duration    // bound on a template's boot (to askr_cow_ready())
	ForkTimeout time.Duration    // bound on Fork → the child's hello
	Logger      *slog.Logger
	WorkerLog   *slog.Logger // for what forked workers write (tagged with their pid)
	// NewGeneration is called (on its own goroutine) when a template has replaced one that died.
	NewGeneration func()
}

// Env returns the variables a template process needs, for phpcgi.Config.Extra.
func Env(dir string) []string {
	return []string{"ASKR_COW=1", "ASKR_COW_SOCKET=" + socketPath(dir)}
}

func socketPath(dir string) string { return filepath.Join(dir, "workers.sock") }

// Template is the CoW template and the listener its children connect to.
type Template struct {
	opt Options
	log *slog.Logger
	ln  *net.UnixListener

	mu     sync.Mutex // guards proc and closed; held during a boot so that one boot serves all
	proc   *phpcgi.Process
	closed bool
	gen    atomic.Int64 // written under mu
	pid    atomic.Int64 // the running template's, written under mu
	write  sync.Mutex   // one Fork frame at a time on the template's channel

	pmu     sync.Mutex // guards the fields below; never held for long
	pending map[string]chan *worker
	pids    map[int]bool // every template pid this askrd has run, for the parent check
	spare   *worker      // forked ahead, not yet handed to the pool
	filling bool
	stopped bool
}

// New listens on the private socket. Boot starts the first template.
func New(opt Options) (*Template, error) {
	if opt.ForkTimeout <= 0 {
		opt.ForkTimeout = 10 * time.Second
	}
	path := socketPath(opt.Dir)
	os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("template: listen: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("template: %w", err)
	}
	t := &Template{opt: opt, log: opt.Logger, ln: ln, pending: map[string]chan *worker{}, pids: map[int]bool{}}
	go t.accept()
	return t, nil
}

// Boot starts a template unless one is running, and waits until it has booted (its Ready frame).
// A failed boot returns the PHP error the template printed.
func (t *Template) Boot() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bootLocked()
}

func (t *Template) bootLocked() error {
	if t.closed {
		return errors.New("template: closed")
	}
	if t.proc != nil {
		select {
		case <-t.proc.Done():
			t.proc.Close()
			t.proc = nil
		default:
			return nil
		}
	}
	start := time.Now()
	p, err := t.opt.Launcher.Start()
	if err != nil {
		return fmt.Errorf("start template: %w", err)
	}
	t.pmu.Lock()
	t.pids[p.PID()] = true
	t.pmu.Unlock()
	if err := awaitReady(p, t.opt.BootTimeout); err != nil {
		p.Kill()
		<-p.Done()
		p.Close()
		if errors.Is(err, errEnded) {
			err = fmt.Errorf("it ended (%s) before askr_cow_ready()", proc.ExitStatus(p.Err()))
		}
		err = fmt.Errorf("template pid %d failed to boot: %w", p.PID(), err)
		if tail := p.Tail(); tail != "" {
			err = fmt.Errorf("%w; last output:\n%s", err, tail)
		}
		return err
	}
	t.proc = p
	t.pid.Store(int64(p.PID()))
	gen := t.gen.Add(1)
	t.log.Info("template ready", "pid", p.PID(), "generation", gen, "boot", time.Since(start).Round(time.Millisecond))
	go t.watch(p, gen)
	return nil
}

// watch waits for a template to exit and, unless askrd is stopping, boots its successor (backing
// off while boots fail). The workers of the dead template go on serving meanwhile; the pool
// replaces them with the new generation's, one by one.
func (t *Template) watch(p *phpcgi.Process, gen int64) {
	<-p.Done()
	delay := 100 * time.Millisecond
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return
		}
		if t.gen.Load() != gen { // a Start already booted the successor
			t.mu.Unlock()
			break
		}
		t.log.Error("template exited; booting a new one", "pid", p.PID(), "generation", gen, "status", p.Err())
		err := t.bootLocked()
		t.mu.Unlock()
		if err == nil {
			break
		}
		t.log.Error("template failed to boot", "err", err, "retry_in", delay)
		time.Sleep(delay)
		delay = min(2*delay, 10*time.Second)
	}
	if t.opt.NewGeneration != nil {
		t.opt.NewGeneration()
	}
}

// errEnded is a template that closed its channel before it was ready.
var errEnded = errors.New("ended before askr_cow_ready()")

// awaitReady reads the template's Ready frame.
func awaitReady(p *phpcgi.Process, timeout time.Duration) error {
	c := p.Conn()
	if timeout > 0 {
		c.SetReadDeadline(time.Now().Add(timeout))
		defer c.SetReadDeadline(time.Time{})
	}
	f, err := readFrame(c)
	switch {
	case errors.Is(err, io.EOF):
		return errEnded
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("no askr_cow_ready() within boot_timeout (%v)", timeout)
	case err != nil:
		return err
	case f.Type != channel.TypeReady:
		return fmt.Errorf("%w: frame type %d, want ready", channel.ErrProtocol, f.Type)
	}
	return nil
}

// readFrame reads one frame without reading ahead (the connection is handed on afterwards).
func readFrame(r io.Reader) (channel.Frame, error) {
	var h [channel.HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return channel.Frame{}, err
	}
	f, n, err := channel.ParseHeader(h[:])
	if err != nil {
		return f, err
	}
	f.Payload = make([]byte, n)
	_, err = io.ReadFull(r, f.Payload)
	return f, err
}

// Generation counts the templates booted so far; workers of an older one should be replaced.
func (t *Template) Generation() int64 { return t.gen.Load() }

// PID returns the pid of the last template that booted (it may have died since), or 0.
func (t *Template) PID() int { return int(t.pid.Load()) }

// Start returns a worker forked from the template (booting a template first if none runs), once it
// has connected and been verified. One spare worker is kept forked ahead, so that a worker that
// exits is replaced without waiting for a fork.
func (t *Template) Start() (pool.Process, error) {
	if w := t.takeSpare(); w != nil {
		go t.fillSpare()
		return w, nil
	}
	w, err := t.fork()
	if err != nil {
		return nil, err
	}
	go t.fillSpare()
	return w, nil
}

// takeSpare returns the spare worker if it is alive and of the current generation.
func (t *Template) takeSpare() *worker {
	t.pmu.Lock()
	w := t.spare
	t.spare = nil
	t.pmu.Unlock()
	if w == nil {
		return nil
	}
	select {
	case <-w.done:
	default:
		if w.gen == t.gen.Load() {
			return w
		}
	}
	w.Kill()
	w.Close()
	return nil
}

// fillSpare forks the spare worker unless there is one, or one is being forked.
func (t *Template) fillSpare() {
	t.pmu.Lock()
	if t.spare != nil || t.filling || t.stopped {
		t.pmu.Unlock()
		return
	}
	t.filling = true
	t.pmu.Unlock()
	w, err := t.fork()
	t.pmu.Lock()
	t.filling = false
	if err == nil && t.spare == nil && !t.stopped {
		t.spare, w = w, nil
	}
	t.pmu.Unlock()
	if err != nil {
		t.log.Debug("no spare worker", "err", err)
	}
	if w != nil {
		w.Kill()
		w.Close()
	}
}

// fork asks the template for one worker and waits for it.
func (t *Template) fork() (*worker, error) {
	t.mu.Lock()
	if err := t.bootLocked(); err != nil {
		t.mu.Unlock()
		return nil, err
	}
	proc, gen := t.proc, t.gen.Load()
	token := newToken()
	logPath := filepath.Join(t.opt.Dir, "log-"+token)
	t.mu.Unlock()
	got := make(chan *worker, 1)
	t.pmu.Lock()
	t.pending[token] = got
	t.pmu.Unlock()
	defer func() {
		t.pmu.Lock()
		delete(t.pending, token)
		t.pmu.Unlock()
		select {
		case w := <-got: // a worker that arrived after Start gave up
			w.Kill()
			w.Close()
		default:
		}
	}()

	logs, err := openLog(logPath)
	if err != nil {
		return nil, err
	}
	var fork []byte
	payload := token + "\n" + logPath
	fork = channel.AppendHeader(fork, channel.TypeFork, 0, len(payload))
	fork = append(fork, payload...)
	t.write.Lock()
	_, err = proc.Conn().Write(fork)
	t.write.Unlock()
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("ask template pid %d to fork: %w", proc.PID(), err)
	}
	timer := time.NewTimer(t.opt.ForkTimeout)
	defer timer.Stop()
	select {
	case w := <-got:
		w.gen = gen
		w.logs = logs
		go phpcgi.Pump(logs, t.opt.WorkerLog.With("pid", w.pid), nil)
		return w, nil
	case <-proc.Done():
		logs.Close()
		return nil, fmt.Errorf("template pid %d exited before its fork connected", proc.PID())
	case <-timer.C:
		logs.Close()
		return nil, fmt.Errorf("template pid %d: no forked worker connected within %v", proc.PID(), t.opt.ForkTimeout)
	}
}

func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// openLog makes the FIFO a forked worker writes its log lines to, and opens it for reading. It is
// opened read-write so that it never reports end-of-file while the worker has it closed.
func openLog(path string) (*os.File, error) {
	os.Remove(path)
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("worker log FIFO: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("worker log FIFO: %w", err)
	}
	return f, nil
}

// accept takes the connections of forked workers, checks each and hands it to the Start waiting
// for its token.
func (t *Template) accept() {
	for {
		c, err := t.ln.AcceptUnix()
		if err != nil {
			return
		}
		go t.admit(c)
	}
}

func (t *Template) admit(c *net.UnixConn) {
	c.SetReadDeadline(time.Now().Add(t.opt.ForkTimeout))
	f, err := readFrame(c)
	c.SetReadDeadline(time.Time{})
	var h channel.Hello
	if err == nil && f.Type != channel.TypeHello {
		err = fmt.Errorf("%w: first frame has type %d, want hello", channel.ErrProtocol, f.Type)
	}
	if err == nil {
		h, err = channel.ParseHello(f.Payload)
	}
	if err == nil {
		err = t.verify(c, h)
	}
	var w *worker
	if err == nil {
		// Delivered under the lock: once Start has removed its token, no worker can reach it late.
		t.pmu.Lock()
		if got := t.pending[h.Token]; got == nil {
			err = fmt.Errorf("unknown fork token")
		} else if w, err = newWorker(c, h); err == nil {
			select {
			case got <- w:
			default:
				err = fmt.Errorf("fork token used twice")
			}
		}
		t.pmu.Unlock()
	}
	if err != nil {
		if w != nil {
			w.Kill()
			w.Close()
		}
		t.log.Warn("refused a worker connection", "err", err, "pid", h.PID)
		c.Close()
	}
}

// verify checks the peer: the kernel's credentials must name the pid the worker announces, the same
// user as askrd, and a child of one of askrd's templates (or of askrd, if its template has died).
func (t *Template) verify(c *net.UnixConn, h channel.Hello) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	rc.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cerr != nil {
		return fmt.Errorf("SO_PEERCRED: %w", cerr)
	}
	if int(cred.Pid) != h.PID || int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("peer check failed: kernel says pid %d uid %d, worker says pid %d", cred.Pid, cred.Uid, h.PID)
	}
	ppid := proc.Parent(h.PID)
	t.pmu.Lock()
	known := t.pids[ppid]
	t.pmu.Unlock()
	if !known && ppid != os.Getpid() {
		return fmt.Errorf("peer check failed: pid %d is a child of %d, not of a template", h.PID, ppid)
	}
	return nil
}

// Close stops the template (the workers are the pool's to stop) and the listener.
func (t *Template) Close() error {
	t.pmu.Lock()
	t.stopped = true
	spare := t.spare
	t.spare = nil
	t.pmu.Unlock()
	if spare != nil {
		spare.Kill()
		spare.Close()
	}
	t.mu.Lock()
	t.closed = true
	p := t.proc
	t.mu.Unlock()
	t.ln.Close()
	if p == nil {
		return nil
	}
	stop := channel.AppendHeader(nil, channel.TypeStop, 0, 0)
	t.write.Lock()
	p.Conn().SetWriteDeadline(time.Now().Add(time.Second))
	_, err := p.Conn().Write(stop)
	t.write.Unlock()
	if err != nil {
		p.Kill()
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		p.Kill()
		<-p.Done()
	}
	return p.Close()
}

// worker is a forked CoW worker: not askrd's child, so it is watched through a pidfd.
type worker struct {
	conn  *net.UnixConn
	ch    *channel.Endpoint
	hello channel.Hello
	pid   int
	gen   int64
	pidfd int
	logs  *os.File
	done  chan struct{}
	once  sync.Once
}

func newWorker(c *net.UnixConn, h channel.Hello) (*worker, error) {
	fd, err := unix.PidfdOpen(h.PID, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", h.PID, err)
	}
	w := &worker{conn: c, ch: channel.NewEndpoint(c), hello: h, pid: h.PID, pidfd: fd, done: make(chan struct{})}
	go w.watch()
	return w, nil
}

func (w *worker) watch() {
	fds := []unix.PollFd{{Fd: int32(w.pidfd), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			break
		}
		if fds[0].Revents != 0 {
			break
		}
	}
	w.ch.Exited() // a request reading the channel gets what the worker wrote, then end of file
	close(w.done)
}

func (w *worker) PID() int          { return w.pid }
func (w *worker) Generation() int64 { return w.gen }

// Greet returns the hello the worker said when it connected (admit).
func (w *worker) Greet(time.Duration) (channel.Hello, error) { return w.hello, nil }

func (w *worker) Ping(timeout time.Duration) error { return w.ch.Ping(timeout) }
func (w *worker) Stop() error                      { return w.ch.Stop() }
func (w *worker) Left() bool                       { return w.ch.Left() }

// Exchange runs one request on the worker's channel (see channel.Endpoint.Exchange).
func (w *worker) Exchange(payload []byte, resp channel.Response) channel.Result {
	return w.ch.Exchange(payload, resp)
}

func (w *worker) Kill() error {
	err := unix.PidfdSendSignal(w.pidfd, unix.SIGKILL, nil, 0)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}
func (w *worker) Done() <-chan struct{} { return w.done }
func (w *worker) Err() error            { return errUnknownStatus }

// errUnknownStatus stands for a CoW worker's exit status, which only its parent (the template) sees.
var errUnknownStatus = errors.New("exit status unknown (the template's child)")

func (w *worker) Tail() string { return "" }

// Close releases the channel, the pidfd and the log FIFO; call it after Done.
func (w *worker) Close() error {
	w.once.Do(func() {
		w.conn.Close()
		unix.Close(w.pidfd)
		if w.logs != nil {
			w.logs.Close()
			os.Remove(w.logs.Name())
		}
	})
	return nil
}
