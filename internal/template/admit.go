package template

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/phpcgi"
)

// arrival is a connection to the private socket with the hello it sent and the kernel's word on
// its sender, or why these could not be read.
type arrival struct {
	conn  net.Conn
	hello channel.Hello
	peer  creds
	err   error
}

// accept takes the connections of forked workers until Close closes the listener, and reads each
// one's hello and credentials on a goroutine of its own.
func (t *Template) accept() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			report(t, t.arrivals, t.read(c), func(a arrival) { a.conn.Close() })
		}()
	}
}

// read reads a connection's hello (within ForkTimeout) and its peer's credentials.
func (t *Template) read(c net.Conn) arrival {
	a := arrival{conn: c}
	c.SetReadDeadline(time.Now().Add(t.opt.ForkTimeout))
	f, err := readFrame(c)
	c.SetReadDeadline(time.Time{})
	switch {
	case err != nil:
		a.err = err
	case f.Type != channel.TypeHello:
		a.err = fmt.Errorf("%w: first frame has type %d, want hello", channel.ErrProtocol, f.Type)
	default:
		if a.hello, a.err = channel.ParseHello(f.Payload); a.err == nil {
			a.peer, a.err = t.sys.peer(c)
		}
	}
	return a
}

// onArrival admits a connection as the worker a fork request waits for, or refuses it (closes it,
// with a warning saying why).
func (t *Template) onArrival(a arrival) {
	err := a.err
	if err == nil {
		err = t.verify(a.hello, a.peer)
	}
	var f *forkRequest
	if err == nil {
		if f = t.pending[a.hello.Token]; f == nil {
			err = errors.New("unknown fork token")
		}
	}
	var h pidHandle
	if err == nil {
		h, err = t.sys.watch(a.hello.PID)
	}
	if err != nil {
		t.log.Warn("refused a worker connection", "err", err, "pid", a.hello.PID)
		a.conn.Close()
		return
	}
	if t.opt.Forked != nil {
		t.opt.Forked(time.Since(f.asked))
	}
	w := newWorker(a.conn, a.hello, f.gen, h, f.logs)
	t.watchWorker(f.tmpl, w.pid, h)
	w.tag = newRetag(t.opt.WorkerLog.With("pid", w.pid).Handler())
	go phpcgi.Pump(f.logs, slog.New(w.tag), nil)
	t.finish(f, w, nil)
}

// verify checks the peer: the kernel's credentials must name the pid the worker announces, the same
// user as askrd, and a child of one of askrd's templates (or of askrd, its subreaper, if its
// template has died).
func (t *Template) verify(h channel.Hello, p creds) error {
	if p.PID != h.PID || p.UID != t.sys.uid {
		return fmt.Errorf("peer check failed: kernel says pid %d uid %d, worker says pid %d", p.PID, p.UID, h.PID)
	}
	if !t.known[p.PPID] && p.PPID != t.sys.askrd {
		return fmt.Errorf("peer check failed: pid %d is a child of %d, not of a template", h.PID, p.PPID)
	}
	return nil
}
