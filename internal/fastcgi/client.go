package fastcgi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// RequestID is the request id Conn uses: one request at a time per connection, as php-cgi serves.
const RequestID = 1

// ErrRejected is wrapped by the error Do returns when END_REQUEST's protocol status is not
// RequestComplete.
var ErrRejected = errors.New("fastcgi: request rejected")

// ErrConnDone is wrapped by the error Do and GetValues return when the connection cannot carry
// another request: the last one was sent without KeepConn, failed, or was cancelled, or Close was
// called.
var ErrConnDone = errors.New("fastcgi: connection done")

// Request is one request in the Responder role.
type Request struct {
	// Params are the CGI variables, sent in this order. CONTENT_LENGTH must be the length of the
	// body whenever there is one: php-cgi reads exactly that many bytes of STDIN (draining what
	// the script leaves unread) and would take any more for the start of the next request, so a
	// request whose body has another length leaves the connection done.
	Params []Param

	// Stdin is the request body, sent in records of at most MaxContent bytes as it is read: it is
	// never held whole in memory. It is read on another goroutine, except that a body in memory
	// (anything with a Len method, such as bytes.Reader) of at most MaxContent bytes goes out in
	// the same write as the params. Nil sends an empty body.
	Stdin io.Reader

	// Stdout receives the STDOUT stream (php-cgi: the CGI response head, then the body), one
	// Write per record as records arrive. See HeadSplitter. Nil discards it. If Stdout has a
	// Flush() error method, Flush is called after a STDOUT record when no more of the answer has
	// arrived yet: the application paused (php-cgi: flush(), or a script still running), so what
	// it sent so far should reach the client now. An answer that arrives in one piece (php-cgi
	// writes a small response and END_REQUEST at once) is not flushed.
	Stdout io.Writer

	// Stderr receives the STDERR stream (php-cgi: log messages, each ending in "\n"), one Write
	// per record. Nil discards it.
	Stderr io.Writer

	// KeepConn asks the application to keep the connection open for the next request
	// (FCGI_KEEP_CONN). Without it the application closes the connection after END_REQUEST and
	// Do closes it too.
	KeepConn bool
}

// Conn is the client end of one connection to a FastCGI application. It runs one request at a
// time; it is not safe for concurrent use.
type Conn struct {
	nc   net.Conn
	r    *Reader
	wbuf []byte    // BEGIN_REQUEST, PARAMS and a small body
	body [2][]byte // a larger body, read into one while the other is written
	err  error     // why the connection cannot carry another request; nil while it can
}

// NewConn returns a Conn that speaks FastCGI on nc. The Conn owns nc from now on and closes it
// when the connection is done (see ErrConnDone).
func NewConn(nc net.Conn) *Conn {
	return &Conn{nc: nc, r: NewReader(nc)}
}

// Close closes the connection. It is safe to call after a request already closed it.
func (c *Conn) Close() error {
	if c.err == nil {
		c.err = errors.New("closed")
	}
	if err := c.nc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// Reusable reports whether the connection can carry another request.
func (c *Conn) Reusable() bool { return c.err == nil }

// done marks the connection unusable for the reason err and closes it.
func (c *Conn) done(err error) {
	if c.err == nil {
		c.err = err
	}
	c.nc.Close()
}

// Do sends req and streams the application's output to req.Stdout and req.Stderr until
// END_REQUEST, which it returns. A protocol status other than RequestComplete is returned with an
// error wrapping ErrRejected.
//
// When ctx ends, Do sends ABORT_REQUEST if the request had been sent whole, closes the connection
// and returns context.Cause(ctx) at once; a Read of req.Stdin in progress then may complete
// afterwards (into a buffer of the Conn, which is then done), but Stdin is not read again.
// php-cgi notices neither: it sees the closed connection only when the script next writes
// output, and then aborts the script unless ignore_user_abort is set; a script that writes
// nothing runs on. Writes to req.Stdout and req.Stderr happen on Do's goroutine: a Write that
// blocks delays Do.
//
// After END_REQUEST, Do waits (within ctx) until the request has been sent whole: php-cgi may
// answer before it reads the record that ends STDIN, or without reading all of a body that
// CONTENT_LENGTH does not announce.
//
// Any error leaves the connection done (ErrConnDone), as does a request without KeepConn.
func (c *Conn) Do(ctx context.Context, req *Request) (EndRequest, error) {
	if c.err != nil {
		return EndRequest{}, fmt.Errorf("%w: %w", ErrConnDone, c.err)
	}
	if err := context.Cause(ctx); err != nil {
		return EndRequest{}, err
	}
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Ending rctx unblocks every read and write on the connection; the connection is unusable
	// afterwards, so the deadline is never cleared.
	stop := context.AfterFunc(rctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })

	sent := make(chan sendResult, 1)
	if small(req.Stdin) && paramsLen(req.Params) <= smallParams {
		// One write that a socket buffer takes at once: no need for another goroutine (a write
		// that blocks all the same is ended by ctx, as any other).
		n, err := c.send(rctx, cancel, req)
		sent <- sendResult{n, err}
	} else {
		go func() {
			n, err := c.send(rctx, cancel, req)
			sent <- sendResult{n, err}
		}()
	}

	er, err := c.receive(req)
	cancelled := !stop() // the AfterFunc ran: the connection has a deadline in the past
	if err != nil {
		if cause := context.Cause(rctx); cause != nil {
			err = cause // the deadline set by the AfterFunc, not something the application did
		}
		cancel(err) // stops the sender at its next step
		c.abort(sent)
		c.done(fmt.Errorf("request failed: %w", err))
		return EndRequest{}, err
	}
	// END_REQUEST arrived; the request may still be being sent. php-cgi either reads the rest
	// (it skips the empty STDIN record that ends the stream when it reads the next request) or
	// closes the connection, so the sender finishes promptly; ctx bounds the wait in any case.
	var res sendResult
	select {
	case res = <-sent:
	case <-ctx.Done():
		res.err = context.Cause(ctx)
	}
	switch {
	case cancelled:
		c.done(fmt.Errorf("request cancelled: %w", context.Cause(rctx)))
	case res.err != nil:
		c.done(res.err)
	case res.body != contentLength(req.Params):
		// php-cgi reads CONTENT_LENGTH bytes and would take the rest for the next request.
		c.done(fmt.Errorf("sent a body of %d bytes with CONTENT_LENGTH %d", res.body, contentLength(req.Params)))
	case !req.KeepConn:
		c.done(errors.New("request sent without KeepConn"))
	}
	if er.ProtocolStatus != RequestComplete {
		c.done(ErrRejected)
		return er, fmt.Errorf("%w: %s", ErrRejected, er.ProtocolStatus)
	}
	return er, nil
}

// contentLength returns the value of the last CONTENT_LENGTH in ps, 0 if there is none and -1 if
// it is not a number.
func contentLength(ps []Param) int64 {
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].Name == "CONTENT_LENGTH" {
			if ps[i].Value == "" {
				return 0
			}
			n, err := strconv.ParseInt(ps[i].Value, 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return 0
}

// abort ends the sender and, if it had sent the request whole, sends ABORT_REQUEST with a short
// deadline of its own (a record after a partial one would break the framing). The caller then
// closes the connection.
func (c *Conn) abort(sent <-chan sendResult) {
	c.nc.SetWriteDeadline(time.Unix(1, 0)) // unblocks a pending write; the sender never blocks elsewhere
	if res := <-sent; res.err != nil {
		return
	}
	c.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	c.nc.Write(AppendRecord(nil, TypeAbortRequest, RequestID, nil))
}

// sendResult is what the sender reports: the length of the body it sent, and why it stopped
// before the end (nil if the request went out whole).
type sendResult struct {
	body int64
	err  error
}

// smallBody is the largest in-memory body sent in the same write as the params.
const smallBody = MaxContent

// smallParams bounds the params of a request sent without a goroutine of its own.
const smallParams = 32 << 10

// paramsLen is about the encoded length of ps.
func paramsLen(ps []Param) int {
	n := 0
	for _, p := range ps {
		n += len(p.Name) + len(p.Value) + 8
	}
	return n
}

// small reports a body that goes out in the same write as the params: none, or one in memory
// (with a Len method, as bytes.Reader) of at most smallBody bytes.
func small(stdin io.Reader) bool {
	l, ok := stdin.(interface{ Len() int })
	return stdin == nil || ok && l.Len() <= smallBody
}

// send writes BEGIN_REQUEST, the PARAMS stream and the STDIN stream and returns the length of the
// body. It blocks only in writes (which the connection's deadline ends) and in waiting for ctx or
// the next piece of the body, which another goroutine reads: Do never waits for a Read of Stdin.
// A failure to read Stdin cancels the request; a failure to write is returned and left to the
// reader to notice (the application may have answered already).
func (c *Conn) send(ctx context.Context, cancel context.CancelCauseFunc, req *Request) (int64, error) {
	flags := byte(0)
	if req.KeepConn {
		flags = FlagKeepConn
	}
	buf := AppendRecord(c.wbuf[:0], TypeBeginRequest, RequestID, beginRequestContent(RoleResponder, flags))
	buf = appendParams(buf, req.Params)
	defer func() { c.wbuf = buf[:0] }()

	// A body already in memory (bytes.Reader, strings.Reader, bytes.Buffer) that fits in a record
	// goes out with the params in one write.
	if small(req.Stdin) {
		l, _ := req.Stdin.(interface{ Len() int })
		var n int
		if req.Stdin != nil {
			start := len(buf)
			buf = grow(buf, HeaderLen+l.Len()+7)
			var err error
			n, err = io.ReadFull(req.Stdin, buf[start+HeaderLen:start+HeaderLen+l.Len()])
			if err != nil {
				err = fmt.Errorf("read stdin: %w", err)
				cancel(err)
				return 0, err
			}
			buf = buf[:start]
			if n > 0 {
				buf = AppendRecord(buf, TypeStdin, RequestID, buf[start+HeaderLen:start+HeaderLen+n])
			}
		}
		buf = AppendRecord(buf, TypeStdin, RequestID, nil)
		if _, err := c.nc.Write(buf); err != nil {
			return 0, fmt.Errorf("send request: %w", err)
		}
		return int64(n), nil
	}

	if _, err := c.nc.Write(buf); err != nil {
		return 0, fmt.Errorf("send request: %w", err)
	}
	// Two buffers: one being read into while the other is written.
	if c.body[0] == nil {
		c.body = [2][]byte{make([]byte, HeaderLen+MaxContent+7), make([]byte, HeaderLen+MaxContent+7)}
	}
	free := make(chan []byte, 2)
	free <- c.body[0]
	free <- c.body[1]
	pieces := make(chan bodyPiece)
	go readBody(ctx, req.Stdin, free, pieces)
	var total int64
	for {
		var p bodyPiece
		select {
		case p = <-pieces:
		case <-ctx.Done():
			return total, context.Cause(ctx)
		}
		total += int64(p.n)
		rec := p.buf[:0]
		if p.n > 0 {
			rec = putRecordHeader(p.buf, TypeStdin, p.n)
		}
		if p.err == io.EOF {
			rec = AppendRecord(rec, TypeStdin, RequestID, nil)
		} else if p.err != nil {
			err := fmt.Errorf("read stdin: %w", p.err)
			cancel(err)
			return total, err
		}
		if len(rec) > 0 {
			if _, err := c.nc.Write(rec); err != nil {
				return total, fmt.Errorf("send request: %w", err)
			}
		}
		if p.err == io.EOF {
			return total, nil
		}
		free <- p.buf
	}
}

// bodyPiece is the outcome of one Read of the body into buf[HeaderLen:].
type bodyPiece struct {
	buf []byte
	n   int
	err error
}

// readBody reads r into the buffers from free (each with room for a record header, MaxContent
// bytes and padding) and hands them on until a Read fails or ctx ends. A Read in progress when
// ctx ends completes, but its result is dropped and r is not read again.
func readBody(ctx context.Context, r io.Reader, free <-chan []byte, pieces chan<- bodyPiece) {
	for {
		var buf []byte
		select {
		case buf = <-free:
		case <-ctx.Done():
			return
		}
		n, err := r.Read(buf[HeaderLen : HeaderLen+MaxContent])
		select {
		case pieces <- bodyPiece{buf, n, err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// putRecordHeader turns buf, whose content of n bytes starts at buf[HeaderLen:], into a record of
// type t for RequestID, zeroing its padding, and returns it.
func putRecordHeader(buf []byte, t RecordType, n int) []byte {
	pad := -n & 7
	copy(buf, []byte{Version1, byte(t), RequestID >> 8, RequestID & 0xff, byte(n >> 8), byte(n), byte(pad), 0})
	rec := buf[:HeaderLen+n+pad]
	clear(rec[HeaderLen+n:])
	return rec
}

// grow returns b with room for n more bytes after len(b).
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		b = nb
	}
	return b
}

// appendParams appends the PARAMS stream for ps, split into records of at most MaxContent bytes
// (a pair may span records), and the empty record that ends it.
func appendParams(dst []byte, ps []Param) []byte {
	// Usually one record: encode in place behind a header filled in afterwards.
	start := len(dst)
	dst = append(dst, make([]byte, HeaderLen)...)
	for _, p := range ps {
		dst = AppendPair(dst, p.Name, p.Value)
	}
	if n := len(dst) - start - HeaderLen; n <= MaxContent {
		if n == 0 {
			return AppendRecord(dst[:start], TypeParams, RequestID, nil)
		}
		pad := -n & 7
		copy(dst[start:], []byte{Version1, byte(TypeParams), RequestID >> 8, RequestID & 0xff, byte(n >> 8), byte(n), byte(pad), 0})
		dst = append(dst, make([]byte, pad)...)
		return AppendRecord(dst, TypeParams, RequestID, nil)
	}
	enc := append([]byte(nil), dst[start+HeaderLen:]...)
	dst = dst[:start]
	for len(enc) > 0 {
		n := min(len(enc), MaxContent)
		dst = AppendRecord(dst, TypeParams, RequestID, enc[:n])
		enc = enc[n:]
	}
	return AppendRecord(dst, TypeParams, RequestID, nil)
}

// flusher is a Request.Stdout that can pass on what it was given so far.
type flusher interface{ Flush() error }

// receive reads records up to END_REQUEST, passing STDOUT and STDERR on.
func (c *Conn) receive(req *Request) (EndRequest, error) {
	stdoutClosed, stderrClosed := false, false
	for {
		rec, err := c.r.Next()
		if err == io.EOF {
			return EndRequest{}, fmt.Errorf("connection closed before END_REQUEST: %w", io.ErrUnexpectedEOF)
		}
		if err != nil {
			return EndRequest{}, fmt.Errorf("read response: %w", err)
		}
		if rec.RequestID != RequestID {
			return EndRequest{}, protocolErrorf("%s record for request %d during request %d", rec.Type, rec.RequestID, RequestID)
		}
		switch rec.Type {
		case TypeStdout, TypeStderr:
			w, closed := req.Stdout, &stdoutClosed
			if rec.Type == TypeStderr {
				w, closed = req.Stderr, &stderrClosed
			}
			if *closed {
				return EndRequest{}, protocolErrorf("%s record after the end of its stream", rec.Type)
			}
			if len(rec.Content) == 0 {
				*closed = true
				continue
			}
			if w == nil {
				continue
			}
			if _, err := w.Write(rec.Content); err != nil {
				return EndRequest{}, fmt.Errorf("write %s: %w", rec.Type, err)
			}
			if f, ok := w.(flusher); ok && rec.Type == TypeStdout && c.r.Buffered() == 0 {
				if err := f.Flush(); err != nil {
					return EndRequest{}, fmt.Errorf("flush %s: %w", rec.Type, err)
				}
			}
		case TypeEndRequest:
			return ParseEndRequest(rec.Content)
		default:
			return EndRequest{}, protocolErrorf("unexpected %s record during a request", rec.Type)
		}
	}
}

// GetValues asks the application for the named variables (MaxConns, MaxReqs, MpxsConns) with a
// GET_VALUES management record and returns its GET_VALUES_RESULT. It must not be called during a
// request. php-cgi answers FCGI_MAX_CONNS 1, FCGI_MAX_REQS 1 and FCGI_MPXS_CONNS 0 and then waits
// for a request on the same connection, accepting no other connection meanwhile. An error leaves
// the connection done.
func (c *Conn) GetValues(ctx context.Context, names ...string) ([]Param, error) {
	if c.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConnDone, c.err)
	}
	var content []byte
	for _, n := range names {
		content = AppendPair(content, n, "")
	}
	if len(content) > MaxContent {
		return nil, fmt.Errorf("fastcgi: GET_VALUES content of %d bytes", len(content))
	}
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	ps, err := c.getValues(content)
	if !stop() {
		if err != nil {
			err = context.Cause(ctx)
		}
		c.done(fmt.Errorf("GET_VALUES cancelled: %w", context.Cause(ctx)))
	}
	if err != nil {
		c.done(fmt.Errorf("GET_VALUES failed: %w", err))
	}
	return ps, err
}

func (c *Conn) getValues(content []byte) ([]Param, error) {
	if _, err := c.nc.Write(AppendRecord(nil, TypeGetValues, 0, content)); err != nil {
		return nil, fmt.Errorf("send GET_VALUES: %w", err)
	}
	rec, err := c.r.Next()
	if err == io.EOF {
		return nil, fmt.Errorf("connection closed before GET_VALUES_RESULT: %w", io.ErrUnexpectedEOF)
	}
	if err != nil {
		return nil, fmt.Errorf("read GET_VALUES_RESULT: %w", err)
	}
	switch {
	case rec.RequestID != 0:
		return nil, protocolErrorf("%s record for request %d in answer to GET_VALUES", rec.Type, rec.RequestID)
	case rec.Type == TypeUnknownType:
		return nil, protocolErrorf("application does not know GET_VALUES")
	case rec.Type != TypeGetValuesResult:
		return nil, protocolErrorf("%s record in answer to GET_VALUES", rec.Type)
	}
	return ParsePairs(rec.Content)
}
