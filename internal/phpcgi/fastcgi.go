package phpcgi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/fastcgi"
	"github.com/askr-php/askr/internal/proc"
)

// FastCGIProcess is a php-cgi process in FastCGI mode, the PHP process of per-request mode: askrd
// creates a listening Unix socket for it (php-cgi's fd 0, which is what makes it speak FastCGI),
// and php-cgi runs the script each request names (SCRIPT_FILENAME), one request at a time, as
// php-fpm's workers do. askrd keeps one connection to it (FCGI_KEEP_CONN) and dials a new one when
// that one is done. It implements pool.Process; it has no channel (Conn and Channel are nil): its
// requests go through Do.
type FastCGIProcess struct {
	*Process
	sock   string
	stderr *io.PipeWriter // STDERR records → the log, line by line (Pump)

	mu     sync.Mutex
	fc     *fastcgi.Conn // the kept connection; nil when there is none
	inUse  bool          // a request or a ping holds fc
	closed bool
}

var fastcgiSeq atomic.Int64

// StartFastCGI starts one php-cgi process in FastCGI mode listening on a new socket in
// Config.SocketDir. It returns once the process runs; Greet waits until it answers.
func (l *Launcher) StartFastCGI() (*FastCGIProcess, error) {
	c := l.cfg
	sock := filepath.Join(c.SocketDir, fmt.Sprintf("php-%d.sock", fastcgiSeq.Add(1)))
	ln, err := listenUnix(sock)
	if err != nil {
		return nil, err
	}
	defer ln.Close() // php-cgi has its own copy: once it exits, nobody listens
	var args []string
	for _, kv := range c.INI {
		args = append(args, "-d", kv)
	}
	cmd := exec.Command(c.Binary, args...)
	cmd.Dir = c.AppBase
	cmd.Env = fastcgiEnv(c.Env)
	cmd.Stdin = ln
	p, err := l.spawn(cmd, nil, l.cfg.Logger)
	if err != nil {
		os.Remove(sock)
		return nil, err
	}
	pr, pw := io.Pipe()
	go Pump(pr, p.log, nil)
	return &FastCGIProcess{Process: p, sock: sock, stderr: pw}, nil
}

// listenUnix creates a listening Unix socket at path and returns it as a file, for a child's fd 0.
func listenUnix(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind %s: %w", path, err)
	}
	// The backlog holds askrd's connections only: the kept one and, after a failed request, the
	// one that waits for the script to end.
	if err := unix.Listen(fd, 16); err != nil {
		unix.Close(fd)
		os.Remove(path)
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// fastcgiEnv is the environment of a FastCGI-mode php-cgi: askrd's, filtered as a worker's is
// (PHP sees it in getenv() and $_SERVER), with php-cgi's own FastCGI settings: a single process
// (PHP_FCGI_CHILDREN unset) that never exits by itself after some number of requests
// (PHP_FCGI_MAX_REQUESTS=0; askrd recycles it after max_requests).
func fastcgiEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range filterEnv(env) {
		name, _, _ := strings.Cut(kv, "=")
		if name == "PHP_FCGI_CHILDREN" || name == "PHP_FCGI_MAX_REQUESTS" {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "PHP_FCGI_MAX_REQUESTS=0")
}

// Conn returns nil: the process speaks FastCGI on connections it accepts (see Do).
func (p *FastCGIProcess) Conn() net.Conn { return nil }

// Close drops the kept connection (unless a request still holds it: then that request's end
// does), stops logging STDERR and removes the socket. Call it after the process has exited.
func (p *FastCGIProcess) Close() error {
	p.mu.Lock()
	p.closed = true
	if p.fc != nil && !p.inUse {
		p.fc.Close()
		p.fc = nil
	}
	p.mu.Unlock()
	p.stderr.Close()
	if err := os.Remove(p.sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// take returns the kept connection, or a new one if there is none.
func (p *FastCGIProcess) take() (*fastcgi.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("process closed")
	}
	p.inUse = true
	if p.fc != nil && p.fc.Reusable() {
		return p.fc, nil
	}
	if p.fc != nil {
		p.fc.Close()
		p.fc = nil
	}
	nc, err := net.DialTimeout("unix", p.sock, 5*time.Second)
	if err != nil {
		p.inUse = false
		return nil, err
	}
	p.fc = fastcgi.NewConn(nc)
	return p.fc, nil
}

// give hands the connection back after a request or a ping.
func (p *FastCGIProcess) give() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inUse = false
	if p.fc != nil && (p.closed || !p.fc.Reusable()) {
		p.fc.Close()
		p.fc = nil
	}
}

// getValues is a FastCGI GET_VALUES round trip, the process's hello and ping: php-cgi answers it
// only once it has accepted the connection, i.e. when no script of its runs.
func (p *FastCGIProcess) getValues(ctx context.Context) error {
	fc, err := p.take()
	if err != nil {
		return err
	}
	defer p.give()
	vs, err := fc.GetValues(ctx, fastcgi.MaxConns)
	if err != nil {
		return err
	}
	if len(vs) != 1 || vs[0].Name != fastcgi.MaxConns {
		return fmt.Errorf("GET_VALUES answered %q", vs)
	}
	return nil
}

// Greet waits until php-cgi answers a GET_VALUES request: it has started and serves. Its hello
// has only the pid.
func (p *FastCGIProcess) Greet(timeout time.Duration) (channel.Hello, error) {
	err := p.greet(timeout)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = phrased{"did not answer", err}
	}
	return channel.Hello{PID: p.PID()}, err
}

func (p *FastCGIProcess) greet(timeout time.Duration) error {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, os.ErrDeadlineExceeded)
		defer cancel()
	}
	// A php-cgi that exits at startup (a bad -d setting, …) closes the socket; the answer never comes.
	done := make(chan error, 1)
	go func() { done <- p.getValues(ctx) }()
	select {
	case err := <-done:
		return err
	case <-p.Done():
		<-done
		return errors.New("php-cgi exited before it answered")
	}
}

// Ping checks, with a GET_VALUES round trip on the kept connection, that the idle process answers.
func (p *FastCGIProcess) Ping(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.getValues(ctx)
}

// Stop asks the idle process to exit: its connection is closed and it gets SIGTERM, on which an
// idle php-cgi exits (one in a request would finish it first).
func (p *FastCGIProcess) Stop() error {
	p.mu.Lock()
	if p.fc != nil && !p.inUse {
		p.fc.Close()
		p.fc = nil
	}
	p.mu.Unlock()
	err := p.cmd.Process.Signal(syscall.SIGTERM)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// Do runs req on the process: KeepConn is set, STDERR records go to the log (at PHP's levels, as
// worker output does) unless req.Stderr is set, and the answer goes to req.Stdout. reached reports
// that the request got to the process (false: the process was gone, so the request can go to
// another); reusable, that the process can take another request. A request that fails (the client
// went away, req.Stdout refused the answer) leaves php-cgi running the script until it next
// writes output or ends, so Do then waits, on a new connection, until php-cgi answers again: when
// it returns reusable, the process is idle. A process that cannot be reached that way (it died or
// was killed) is not reusable.
func (p *FastCGIProcess) Do(ctx context.Context, req *fastcgi.Request) (reusable, reached bool, err error) {
	select {
	case <-p.Done():
		return false, false, fmt.Errorf("php-cgi exited (%v)", proc.ExitStatus(p.Err()))
	default:
	}
	fc, err := p.take()
	if err != nil {
		return false, false, fmt.Errorf("connect to php-cgi: %w", err)
	}
	req.KeepConn = true
	if req.Stderr == nil {
		req.Stderr = logWriter{p.stderr}
	}
	_, err = fc.Do(ctx, req)
	p.give()
	if err == nil {
		return true, true, nil
	}
	// Wait for the process to be idle again; the pool's request timeout kills it if need be.
	if perr := p.getValues(context.Background()); perr != nil {
		return false, true, fmt.Errorf("%w; php-cgi did not answer afterwards: %v", err, perr)
	}
	return true, true, err
}

// logWriter passes STDERR records to the log pipe and never fails: a log that cannot take a line
// must not fail the request.
type logWriter struct{ w io.Writer }

func (l logWriter) Write(b []byte) (int, error) {
	l.w.Write(b)
	return len(b), nil
}
