package channel

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// recorder is a Response that keeps what it is given; Body fails from call failAt on (a client
// that left).
type recorder struct {
	status  int
	headers []Header
	body    []byte
	flushes int
	failAt  int
	calls   int
}

func (r *recorder) Head(status int, hs []Header) error { r.status, r.headers = status, hs; return nil }
func (r *recorder) Body(b []byte) error {
	if r.calls++; r.failAt > 0 && r.calls >= r.failAt {
		return errClientGone
	}
	r.body = append(r.body, b...)
	return nil
}
func (r *recorder) Flush() error { r.flushes++; return nil }

var errClientGone = errors.New("client gone")

func head(status int, lines ...string) []byte {
	return frame(TypeHead, 0, string([]byte{byte(status >> 8), byte(status)})+strings.Join(lines, "\n"))
}

func end(flags uint16, memory byte) []byte {
	p := make([]byte, 16)
	p[7] = memory
	return frame(TypeEnd, flags, string(p))
}

func cat(frames ...[]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = append(b, f...)
	}
	return b
}

// peer plays a worker on the far end of a socket pair: it reads one frame (the request), checks
// it, and writes answer; then it reads on until end of file, collecting the frame types it got.
type peer struct {
	conn net.Conn
	got  chan []byte // frame types read after the first
}

func socketPair(t *testing.T) (askrd, worker net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	t.Cleanup(func() { conns[0].Close(); conns[1].Close() })
	return conns[0], conns[1]
}

// answering starts a worker that answers one request with answer; want is the request's payload.
func answering(t *testing.T, want string, answer []byte) (*Endpoint, *peer) {
	return answeringThen(t, want, answer, false)
}

// answeringThen is answering; with hangUp, the worker then closes its end for writing (as it
// would exiting).
func answeringThen(t *testing.T, want string, answer []byte, hangUp bool) (*Endpoint, *peer) {
	t.Helper()
	a, b := socketPair(t)
	p := &peer{conn: b, got: make(chan []byte, 1)}
	go func() {
		rd := NewReader(b)
		f, err := rd.ReadFrame()
		if err != nil || f.Type != TypeRequest || string(f.Payload) != want {
			t.Errorf("worker read %v %d %q; want a Request %q", err, f.Type, f.Payload, want)
		}
		b.Write(answer)
		if hangUp {
			b.(*net.UnixConn).CloseWrite()
		}
		var types []byte
		for {
			f, err := rd.ReadFrame()
			if err != nil {
				break
			}
			types = append(types, f.Type)
		}
		p.got <- types
	}()
	return NewEndpoint(a), p
}

func TestExchangeAnswer(t *testing.T) {
	e, _ := answering(t, "req", cat(head(201, "X-A: 1", "X-B:  two"), frame(TypeBody, FlagFlush, "event\n"), frame(TypeBody, 0, "tail"), end(0, 42)))
	var r recorder
	res := e.Exchange([]byte("req"), &r)
	if res != (Result{Memory: 42}) {
		t.Errorf("Exchange = %+v; want a plain answer with Memory 42", res)
	}
	if r.status != 201 || len(r.headers) != 2 || r.headers[1] != (Header{"X-B", "two"}) || string(r.body) != "event\ntail" || r.flushes != 1 {
		t.Errorf("response %d %v %q, %d flushes; want 201, two headers, \"event\\ntail\", 1 flush", r.status, r.headers, r.body, r.flushes)
	}
}

// An invalid head is the application's error: the worker's answer is read to its End and the
// worker is fine.
func TestExchangeBadHeader(t *testing.T) {
	e, _ := answering(t, "", cat(head(200, "Bad Name: x"), frame(TypeBody, 0, "ignored"), end(0, 0)))
	var r recorder
	res := e.Exchange(nil, &r)
	if !errors.Is(res.Err, ErrBadHeader) || res.Broken || res.Exits || r.status != 0 || r.body != nil {
		t.Errorf("Exchange = %+v, response %d %q; want ErrBadHeader, a worker fine, nothing passed on", res, r.status, r.body)
	}
	e, _ = answering(t, "", cat(head(200, "Bad Name: x"), end(FlagExit, 0)))
	if res := e.Exchange(nil, &recorder{}); !errors.Is(res.Err, ErrBadHeader) || !res.Exits || res.Broken {
		t.Errorf("Exchange with exit = %+v; want ErrBadHeader and Exits", res)
	}
}

func TestExchangeExit(t *testing.T) {
	e, _ := answering(t, "", cat(head(200), end(FlagExit, 7)))
	if res := e.Exchange(nil, &recorder{}); res != (Result{Exits: true, Memory: 7}) {
		t.Errorf("Exchange = %+v; want Exits with Memory 7", res)
	}
}

// A Bye instead of an answer: the worker never read the request. A Bye after the head breaks the
// protocol.
func TestExchangeBye(t *testing.T) {
	e, _ := answering(t, "", frame(TypeBye, 0, ""))
	if res := e.Exchange(nil, &recorder{}); !res.Bye || res.Broken || !errors.Is(res.Err, ErrBye) {
		t.Errorf("Exchange answered Bye = %+v; want Bye, not Broken", res)
	}
	e, _ = answering(t, "", cat(head(200), frame(TypeBye, 0, "")))
	if res := e.Exchange(nil, &recorder{}); res.Bye || !res.Broken || !errors.Is(res.Err, ErrProtocol) {
		t.Errorf("Exchange with a Bye mid-response = %+v; want a protocol error", res)
	}
}

func TestExchangeProtocolErrors(t *testing.T) {
	for name, answer := range map[string][]byte{
		"body before head": frame(TypeBody, 0, "x"),
		"end before head":  end(0, 0),
		"second head":      cat(head(200), head(200)),
		"unexpected frame": cat(head(200), frame(TypePong, 0, "")),
		"short head":       frame(TypeHead, 0, "x"),
		"short end":        cat(head(200), frame(TypeEnd, 0, "x")),
		"bad version":      {9, 9, 9, 9, 0, 0, 0, 1, 'x'},
	} {
		e, _ := answering(t, "", answer)
		if res := e.Exchange(nil, &recorder{}); !res.Broken || res.Unsent || !errors.Is(res.Err, ErrProtocol) {
			t.Errorf("%s: Exchange = %+v; want Broken with ErrProtocol", name, res)
		}
	}
}

// A worker that ends after it read the request: Broken, and "no answer" if it sent no frame.
func TestExchangeWorkerEnds(t *testing.T) {
	for _, tc := range []struct {
		answer   []byte
		noAnswer bool
	}{{nil, true}, {cat(head(200), frame(TypeBody, 0, "part")), false}} {
		e, _ := answeringThen(t, "", tc.answer, true)
		res := e.Exchange(nil, &recorder{})
		if !res.Broken || res.Unsent || !errors.Is(res.Err, io.ErrUnexpectedEOF) || strings.Contains(res.Err.Error(), "no answer") != tc.noAnswer {
			t.Errorf("answer %q: Exchange = %+v; want Broken, sent, unexpected EOF, \"no answer\" %v", tc.answer, res, tc.noAnswer)
		}
	}
}

// A client that leaves mid-answer: the worker gets an Abort, its answer is read to its End and
// no more of it is passed on; the worker is fine.
func TestExchangeClientGone(t *testing.T) {
	e, p := answering(t, "", cat(head(200), frame(TypeBody, FlagFlush, "a"), frame(TypeBody, FlagFlush, "b"), frame(TypeBody, 0, "c"), end(0, 3)))
	r := recorder{failAt: 2}
	res := e.Exchange(nil, &r)
	if res != (Result{Err: errClientGone, ClientGone: true, Memory: 3}) || string(r.body) != "a" || r.calls != 2 {
		t.Errorf("Exchange = %+v, body %q after %d calls; want ClientGone with the client's error, not Broken, body \"a\"", res, r.body, r.calls)
	}
	e.conn.Close()
	if got := <-p.got; string(got) != string([]byte{TypeAbort}) {
		t.Errorf("worker got frames %v after the request; want one Abort (%d)", got, TypeAbort)
	}
}

// A request that cannot be written never reached the worker; if the worker said Bye before it
// closed its channel, it left.
func TestExchangeUnsent(t *testing.T) {
	a, b := socketPair(t)
	b.(*net.UnixConn).CloseRead()
	res := NewEndpoint(a).Exchange([]byte("req"), &recorder{})
	if !res.Unsent || !res.Broken || res.Bye {
		t.Errorf("Exchange to a closed channel = %+v; want Unsent and Broken", res)
	}
	a, b = socketPair(t)
	b.Write(frame(TypeBye, 0, ""))
	b.(*net.UnixConn).CloseRead()
	res = NewEndpoint(a).Exchange([]byte("req"), &recorder{})
	if !res.Bye || !res.Unsent || res.Broken || !errors.Is(res.Err, ErrBye) {
		t.Errorf("Exchange to a channel closed after a Bye = %+v; want Bye and Unsent, not Broken", res)
	}
}

func TestPing(t *testing.T) {
	for _, tc := range []struct {
		answer []byte
		want   error
	}{{frame(TypePong, 0, ""), nil}, {frame(TypeBye, 0, ""), ErrBye}, {head(200), ErrProtocol}} {
		a, b := socketPair(t)
		go func() {
			f, err := NewReader(b).ReadFrame()
			if err != nil || f.Type != TypePing {
				t.Errorf("worker read %v %d; want a Ping", err, f.Type)
			}
			b.Write(tc.answer)
		}()
		if err := NewEndpoint(a).Ping(5 * time.Second); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("Ping answered %v = %v; want %v", tc.answer, err, tc.want)
		}
	}
	a, b := socketPair(t)
	b.Write(frame(TypeBye, 0, ""))
	b.(*net.UnixConn).CloseRead()
	if err := NewEndpoint(a).Ping(5 * time.Second); !errors.Is(err, ErrBye) {
		t.Errorf("Ping of a worker that said Bye and closed its channel = %v; want ErrBye", err)
	}
	a, _ = socketPair(t)
	start := time.Now()
	if err := NewEndpoint(a).Ping(50 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("Ping of a worker that does not answer = %v after %v; want a deadline error after 50ms", err, time.Since(start))
	}
}

func TestStop(t *testing.T) {
	a, b := socketPair(t)
	if err := NewEndpoint(a).Stop(); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	if f, err := NewReader(b).ReadFrame(); err != nil || f.Type != TypeStop {
		t.Errorf("worker read %v %d; want a Stop", err, f.Type)
	}
}

// Left reads what a worker that exited wrote: a Bye says it left. It does not wait for the end of
// file even if another process holds the worker's end open.
func TestLeft(t *testing.T) {
	for _, bye := range []bool{true, false} {
		a, b := socketPair(t)
		if bye {
			b.Write(frame(TypeBye, 0, ""))
		}
		start := time.Now()
		if got := NewEndpoint(a).Left(); got != bye || time.Since(start) > 5*time.Second {
			t.Errorf("Left() with Bye %v = %v after %v; want %v at once", bye, got, time.Since(start), bye)
		}
	}
}

// After Exited, a read of a channel whose far end is still open (a process the worker started
// holds it) returns what the worker wrote, then end of file.
func TestExited(t *testing.T) {
	a, b := socketPair(t)
	b.Write(cat(head(200), frame(TypeBody, 0, "part")))
	e := NewEndpoint(a)
	e.Exited()
	var r recorder
	res := e.Exchange(nil, &r)
	if !res.Broken || !errors.Is(res.Err, io.ErrUnexpectedEOF) || string(r.body) != "part" {
		t.Errorf("Exchange after Exited = %+v, body %q; want the buffered answer, then Broken with an unexpected EOF", res, r.body)
	}
}
