package template

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/askr-php/askr/internal/phpcgi"
	"github.com/askr-php/askr/internal/proc"
)

// templateProcess is a template php-cgi (a *phpcgi.Process): askrd's child, with a channel on
// which it says Ready once booted and then takes Fork and Stop frames.
type templateProcess interface {
	PID() int
	Conn() net.Conn
	Kill() error
	Done() <-chan struct{}
	Err() error // valid after Done
	Tail() string
	Close() error
}

// creds is the kernel's word on the process at the other end of a connection.
type creds struct {
	PID, UID int // SO_PEERCRED
	PPID     int // its parent, from /proc (-1 if it is gone)
}

// pidHandle watches and signals a process that is not askrd's child (a pidfd).
type pidHandle interface {
	Done() <-chan struct{}           // closed once the process has exited
	Kill() error                     // SIGKILL; nil if it has exited already
	Signal(sig syscall.Signal) error // sends sig; nil if it has exited already
	Close() error                    // releases the handle; call it after Done, or after Kill
}

// system is what the template does to the OS besides the template's channel: starting a template,
// taking connections on the private socket, asking the kernel who is at the other end of one, and
// watching a forked worker. Unit tests replace it with fakes; realSystem is the one askrd uses.
type system struct {
	start  func() (templateProcess, error)
	listen func(path string) (net.Listener, error)
	peer   func(c net.Conn) (creds, error)
	watch  func(pid int) (pidHandle, error)
	uid    int // the uid a worker must run as: askrd's
	askrd  int // askrd's pid: a worker whose template died is re-parented to it (its subreaper)
}

func realSystem(l *phpcgi.Launcher) system {
	return system{
		start: func() (templateProcess, error) {
			if l == nil {
				return nil, errors.New("no launcher")
			}
			return l.Start()
		},
		listen: listenPrivate,
		peer:   peerOf,
		watch:  openPidfd,
		uid:    os.Getuid(),
		askrd:  os.Getpid(),
	}
}

// listenPrivate listens on a Unix socket only askrd's user may connect to.
func listenPrivate(path string) (net.Listener, error) {
	os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// peerOf reads SO_PEERCRED of a Unix connection, and the peer's parent from /proc.
func peerOf(c net.Conn) (creds, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return creds{}, fmt.Errorf("SO_PEERCRED: %T is no Unix connection", c)
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return creds{}, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return creds{}, err
	}
	if cerr != nil {
		return creds{}, fmt.Errorf("SO_PEERCRED: %w", cerr)
	}
	return creds{PID: int(cred.Pid), UID: int(cred.Uid), PPID: proc.Parent(int(cred.Pid))}, nil
}

// pidfd is a pidHandle on pidfd_open(2): a worker is the template's child, not askrd's, so askrd
// cannot wait for it; polling its pidfd tells when it exits, and signalling through it never hits
// a process that reused the pid. The descriptor is closed only once the poll has returned: closed
// under a blocked poll, its number could be reused by the next pidfd opened, and the poll, woken
// by this exit, would then wait on that other process instead and Done would never close.
type pidfd struct {
	fd     int
	done   chan struct{}
	mu     sync.Mutex
	closed bool // Close was called
	polled bool // poll has returned: the descriptor is no longer in use
}

func openPidfd(pid int) (pidHandle, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	h := &pidfd{fd: fd, done: make(chan struct{})}
	go h.poll()
	return h, nil
}

func (h *pidfd) poll() {
	fds := []unix.PollFd{{Fd: int32(h.fd), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			break
		}
		if fds[0].Revents != 0 {
			break
		}
	}
	close(h.done)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.polled = true
	if h.closed {
		unix.Close(h.fd)
	}
}

func (h *pidfd) Done() <-chan struct{} { return h.done }

func (h *pidfd) Kill() error { return h.Signal(unix.SIGKILL) }

func (h *pidfd) Signal(sig syscall.Signal) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed && h.polled {
		return nil // exited, and the descriptor is gone
	}
	err := unix.PidfdSendSignal(h.fd, sig, nil, 0)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// Close releases the handle: at once if the process has exited, else once it does (Done still
// closes then).
func (h *pidfd) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	if h.polled {
		return unix.Close(h.fd)
	}
	return nil
}
