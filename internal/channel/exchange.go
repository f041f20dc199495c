package channel

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Response receives a worker's answer.
type Response interface {
	// Head is called once with the status and the header lines.
	Head(status int, headers []Header) error
	// Body is called for each chunk of the body; b is only valid during the call.
	Body(b []byte) error
	// Flush is called when PHP flushed: what it sent so far should reach the client now.
	Flush() error
}

// ErrBye marks a worker that answered Bye: it ends on its own between requests and has read no
// byte of a Request since its last End.
var ErrBye = errors.New("worker left between requests")

// Endpoint is askrd's end of one worker's channel: it sends the worker its requests, pings and
// Stop, and reads what the worker answers. One goroutine at a time uses it (the one the worker is
// lent to); an Abort frame goes out beside the reading of an answer.
type Endpoint struct {
	conn net.Conn
	rd   *Reader
	out  []byte // frame buffer reused for requests
}

// NewEndpoint returns the Endpoint on c, askrd's end of a worker's channel. A worker's Hello may
// be read from c before the Endpoint is first used.
func NewEndpoint(c net.Conn) *Endpoint { return &Endpoint{conn: c, rd: NewReader(c)} }

// Result is what became of one request sent to a worker (Exchange).
type Result struct {
	// Err is nil for a request answered in full. Otherwise it says why not: it wraps ErrBadHeader
	// for a head the application got wrong (the worker is fine), is resp's error if the client
	// went away (ClientGone), ErrBye if the worker left, or what broke the worker.
	Err error
	// Broken reports that the worker cannot serve again: it must be killed.
	Broken bool
	// Unsent reports that the request could not be written: it never reached the worker, which is
	// Broken, or said Bye first.
	Unsent bool
	// ClientGone reports that Err is resp's: the client went away mid-answer. The worker was told
	// (Abort); it is Broken if that could not be done or it did not finish its answer.
	ClientGone bool
	// Exits reports that the worker ends after this answer (End with FlagExit: exit(), a fatal error).
	Exits bool
	// Bye reports that the worker answered Bye: it never read the request and ends by itself.
	Bye bool
	// Memory is PHP's memory_get_usage() after the request (from the End frame); Peak its
	// memory_get_peak_usage().
	Memory, Peak uint64
}

// Exchange sends one request (payload: the serialize()d request array) and passes the answer to
// resp until its End. A worker that said Bye and closed its channel before the request could be
// written is reported as a Bye, not as a broken worker.
func (e *Endpoint) Exchange(payload []byte, resp Response) Result {
	e.out = AppendHeader(e.out[:0], TypeRequest, 0, len(payload))
	e.out = append(e.out, payload...)
	if _, err := e.conn.Write(e.out); err != nil {
		if e.byeBehind() {
			return Result{Err: ErrBye, Bye: true, Unsent: true} // it left and closed its channel before the request came
		}
		return Result{Err: err, Broken: true, Unsent: true}
	}
	if cap(e.out) > 1<<20 {
		e.out = nil
	}
	a := answer{e: e, resp: resp}
	for {
		f, err := e.rd.ReadFrame()
		if err != nil {
			return a.failed(err)
		}
		if r, done := a.frame(f); done {
			return r
		}
	}
}

// answer is the state of one answer being read.
type answer struct {
	e    *Endpoint
	resp Response
	head bool       // the Head came
	bad  error      // the app's head is invalid: read on to its End, keep the worker
	gone error      // the client went away mid-answer: the worker was told, read on to its End
	told chan error // the Abort frame's write
}

// failed is the result of an answer whose reading failed with err.
func (a *answer) failed(err error) Result {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	switch {
	case a.gone != nil:
		return Result{Err: a.gone, Broken: true, ClientGone: true}
	case errors.Is(err, ErrProtocol), a.head:
		return Result{Err: err, Broken: true}
	}
	return Result{Err: fmt.Errorf("no answer: %w", err), Broken: true}
}

// frame takes one frame of the answer; done reports the answer's end, with its result.
func (a *answer) frame(f Frame) (r Result, done bool) {
	protocol := func(what string) (Result, bool) {
		return Result{Err: fmt.Errorf("%w: %s", ErrProtocol, what), Broken: true}, true
	}
	switch f.Type {
	case TypeHead:
		if a.head {
			return protocol("second head")
		}
		a.head = true
		status, hs, err := ParseHead(f.Payload)
		if errors.Is(err, ErrBadHeader) {
			a.bad = err
			return Result{}, false
		}
		if err != nil {
			return Result{Err: err, Broken: true}, true
		}
		if a.gone == nil {
			a.delivered(a.resp.Head(status, hs))
		}
	case TypeBody:
		if !a.head {
			return protocol("body before head")
		}
		if a.bad != nil {
			return Result{}, false
		}
		if a.gone == nil {
			a.delivered(a.resp.Body(f.Payload))
		}
		if a.gone == nil && f.Flags&FlagFlush != 0 {
			a.delivered(a.resp.Flush())
		}
	case TypeBye:
		if a.head {
			return protocol("bye mid-response")
		}
		return Result{Err: ErrBye, Bye: true}, true
	case TypeEnd:
		if !a.head {
			return protocol("end before head")
		}
		return a.end(f), true
	default:
		return protocol(fmt.Sprintf("unexpected frame type %d from worker", f.Type))
	}
	return Result{}, false
}

// end is the result of an answer that came to its End.
func (a *answer) end(f Frame) Result {
	e, err := ParseEnd(f)
	if err != nil {
		return Result{Err: err, Broken: true}
	}
	switch {
	case e.Exit:
		return Result{Err: a.bad, Exits: true, Memory: e.Memory, Peak: e.PeakMemory}
	case a.gone != nil:
		if err := <-a.told; err != nil {
			return Result{Err: a.gone, Broken: true, ClientGone: true}
		}
		// An Abort the worker did not read before its End, it skips before the next request.
		return Result{Err: a.gone, ClientGone: true, Memory: e.Memory, Peak: e.PeakMemory}
	}
	return Result{Err: a.bad, Memory: e.Memory, Peak: e.PeakMemory}
}

// delivered notes the outcome of passing part of the answer on; calls are skipped once gone.
func (a *answer) delivered(err error) {
	if err == nil {
		return
	}
	a.gone = err
	// As php-fpm notices a client that left when it writes to it: connection_aborted() becomes 1
	// in the worker, which may stop (or, with ignore_user_abort, finish). The worker may be busy
	// writing; the frame goes out beside the reading of its answer.
	told := make(chan error, 1) // the goroutine refers to it, not to a (which then stays on the stack)
	a.told = told
	conn := a.e.conn
	go func() {
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, werr := conn.Write(AppendHeader(nil, TypeAbort, 0, 0))
		conn.SetWriteDeadline(time.Time{})
		told <- werr
	}()
}

// Ping checks that an idle worker answers Pong within timeout. An error wrapping ErrBye reports
// a worker that is leaving: it answered Bye, or said it before it closed its channel.
func (e *Endpoint) Ping(timeout time.Duration) error {
	e.conn.SetDeadline(time.Now().Add(timeout))
	defer e.conn.SetDeadline(time.Time{})
	if _, err := e.conn.Write(AppendHeader(nil, TypePing, 0, 0)); err != nil {
		if e.byeBehind() {
			return ErrBye // it left and closed its channel before the ping came
		}
		return err
	}
	f, err := e.rd.ReadFrame()
	switch {
	case err != nil:
		return err
	case f.Type == TypeBye:
		return ErrBye
	case f.Type != TypePong:
		return fmt.Errorf("%w: frame type %d, want pong", ErrProtocol, f.Type)
	}
	return nil
}

// Stop asks an idle worker to leave its loop (askr_handle_request() returns false).
func (e *Endpoint) Stop() error {
	e.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, err := e.conn.Write(AppendHeader(nil, TypeStop, 0, 0))
	return err
}

// Exited notes that the worker has exited: reads get what it wrote, then end of file at once,
// even if a process it started holds its end of the channel open.
func (e *Endpoint) Exited() {
	if c, ok := e.conn.(interface{ CloseRead() error }); ok {
		c.CloseRead() // shutdown(SHUT_RD): what is buffered can still be read
	}
}

// Left reports whether a worker that has exited while idle said Bye first: it left between
// requests on its own. What it wrote is all there is, so this does not wait.
func (e *Endpoint) Left() bool {
	if _, ok := e.conn.(interface{ CloseRead() error }); ok {
		e.Exited()
	} else {
		e.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	}
	f, err := e.rd.ReadFrame()
	return err == nil && f.Type == TypeBye
}

// byeBehind reports whether a worker to which writing failed said Bye before it closed its channel.
func (e *Endpoint) byeBehind() bool {
	e.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond)) // its end is closed: what it wrote is there at once
	defer e.conn.SetReadDeadline(time.Time{})
	f, err := e.rd.ReadFrame()
	return err == nil && f.Type == TypeBye
}
