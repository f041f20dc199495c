package template

import (
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/pool"
)

// worker is a forked CoW worker, the pool's Process in CoW mode. It is the template's child, not
// askrd's, so it is watched and killed through a pidHandle, and its exit status is unknown.
type worker struct {
	conn  net.Conn
	ch    *channel.Endpoint
	hello channel.Hello
	pid   int
	gen   int64 // the generation of the template it was forked from
	h     pidHandle
	logs  *os.File // the FIFO it writes its log lines to
	tag   *retag   // the tags of what it writes there (set at admission; nil for a worker without FIFO)
	done  chan struct{}
	once  sync.Once
}

// newWorker is the worker admitted on conn with hello, forked by the template of generation gen.
func newWorker(conn net.Conn, hello channel.Hello, gen int64, h pidHandle, logs *os.File) *worker {
	w := &worker{conn: conn, ch: channel.NewEndpoint(conn), hello: hello, pid: hello.PID, gen: gen, h: h, logs: logs, done: make(chan struct{})}
	go func() {
		<-h.Done()
		w.ch.Exited() // a request reading the channel gets what the worker wrote, then end of file
		close(w.done)
	}()
	return w
}

func (w *worker) PID() int          { return w.pid }
func (w *worker) Generation() int64 { return w.gen }

// Greet returns the hello the worker was admitted with (admit has read and checked it).
func (w *worker) Greet(time.Duration) (channel.Hello, error) { return w.hello, nil }
func (w *worker) Ping(timeout time.Duration) error           { return w.ch.Ping(timeout) }
func (w *worker) Stop() error                                { return w.ch.Stop() }
func (w *worker) Left() bool                                 { return w.ch.Left() }

// Exchange runs one request on the worker's channel (see channel.Endpoint.Exchange).
func (w *worker) Exchange(payload []byte, resp channel.Response) channel.Result {
	return w.ch.Exchange(payload, resp)
}

func (w *worker) Kill() error           { return w.h.Kill() }
func (w *worker) Done() <-chan struct{} { return w.done }
func (w *worker) Err() error            { return errUnknownStatus }
func (w *worker) Tail() string          { return "" }

// errUnknownStatus stands for a CoW worker's exit status, which only its parent (the template) sees.
var errUnknownStatus = fmt.Errorf("%w (the template's child)", pool.ErrStatusUnknown)

// alive reports whether the worker has not exited (its pid handle says so at once; Done closes
// a moment later, once the channel's read side is shut).
func (w *worker) alive() bool {
	select {
	case <-w.h.Done():
		return false
	default:
		return true
	}
}

// Close releases the channel, the pid handle and the log FIFO; call it after Done (or Kill).
func (w *worker) Close() error {
	w.once.Do(func() {
		w.conn.Close()
		w.h.Close()
		if w.logs != nil {
			w.logs.Close()
			os.Remove(w.logs.Name())
		}
	})
	return nil
}

// discard kills and releases a worker no one will use.
func (w *worker) discard() {
	w.Kill()
	w.Close()
}
