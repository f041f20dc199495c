package fastcgi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Tests of Conn against fake applications on the far end of a net.Pipe.

// pipeApp runs app on the far end of a net.Pipe and returns a Conn on the near end. The test
// waits for app at cleanup, after closing the pipe.
func pipeApp(t *testing.T, app func(r *Reader, w net.Conn)) *Conn {
	t.Helper()
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		app(NewReader(server), server)
	}()
	t.Cleanup(func() {
		server.Close()
		<-done
	})
	return NewConn(client)
}

func endRecord(appStatus uint32, ps ProtocolStatus) []byte {
	return AppendRecord(nil, TypeEndRequest, RequestID, []byte{
		byte(appStatus >> 24), byte(appStatus >> 16), byte(appStatus >> 8), byte(appStatus), byte(ps), 0, 0, 0})
}

func concat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// writes records every Write it is given.
type writes struct{ got []string }

func (w *writes) Write(p []byte) (int, error) {
	w.got = append(w.got, string(p))
	return len(p), nil
}

// patternReader yields n bytes of a fixed pattern, at most max per Read, and counts its Reads.
type patternReader struct {
	n, max, off int
	reads       int
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off == r.n {
		return 0, io.EOF
	}
	r.reads++
	k := min(len(p), r.n-r.off, r.max)
	for i := range k {
		p[i] = byte((r.off + i) % 251)
	}
	r.off += k
	return k, nil
}

func TestDoKeepConn(t *testing.T) {
	bigValue := strings.Repeat("v", 100_000) // the PARAMS stream spans records
	const bodyLen = 200_000
	reqs := make(chan []Record, 2)
	c := pipeApp(t, func(r *Reader, w net.Conn) {
		for i := range 2 {
			recs, err := readRequest(r)
			if err != nil {
				t.Errorf("fake application: request %d: %v", i, err)
				return
			}
			reqs <- recs
			w.Write(concat(
				AppendRecord(nil, TypeStdout, RequestID, []byte(fmt.Sprintf("Status: 200\r\n\r\nrequest %d ", i))),
				AppendRecord(nil, TypeStderr, RequestID, []byte("a log line\n")),
				AppendRecord(nil, TypeStdout, RequestID, []byte("second")),
				AppendRecord(nil, TypeStdout, RequestID, nil),
				AppendRecord(nil, TypeStderr, RequestID, nil),
				endRecord(uint32(i), RequestComplete)))
		}
	})
	for i := range 2 {
		var stdout, stderr writes
		body := &patternReader{n: bodyLen, max: 100_000}
		req := &Request{
			Params:   []Param{{"CONTENT_LENGTH", fmt.Sprint(bodyLen)}, {"BIG", bigValue}, {"EMPTY", ""}},
			Stdin:    body,
			Stdout:   &stdout,
			Stderr:   &stderr,
			KeepConn: true,
		}
		er, err := c.Do(testContext(t, 10*time.Second), req)
		if err != nil || er != (EndRequest{uint32(i), RequestComplete}) {
			t.Fatalf("Do() %d = %+v, %v; want app status %d, REQUEST_COMPLETE", i, er, err, i)
		}
		if want := []string{fmt.Sprintf("Status: 200\r\n\r\nrequest %d ", i), "second"}; fmt.Sprint(stdout.got) != fmt.Sprint(want) {
			t.Errorf("Stdout writes = %q; want %q", stdout.got, want)
		}
		if want := []string{"a log line\n"}; fmt.Sprint(stderr.got) != fmt.Sprint(want) {
			t.Errorf("Stderr writes = %q; want %q", stderr.got, want)
		}
		if !c.Reusable() {
			t.Errorf("Reusable() after a KeepConn request = false; want true")
		}
		recs := <-reqs
		req.Stdin = &patternReader{n: bodyLen, max: bodyLen}
		checkRequestRecords(t, recs, req, true)
		params, stdin := 0, 0
		for _, rec := range recs {
			switch {
			case rec.ContentLength > MaxContent:
				t.Errorf("%s record of %d bytes", rec.Type, rec.ContentLength)
			case rec.Type == TypeParams:
				params++
			case rec.Type == TypeStdin:
				stdin++
			}
		}
		// 100 016 bytes of params in 2 records + the empty one; the body is read in pieces of at
		// most 65 535 bytes (65 535 × 3 + 3 395), then the empty record.
		if params != 3 || stdin != 5 {
			t.Errorf("PARAMS, STDIN records = %d, %d; want 3, 5", params, stdin)
		}
	}
	c.Close()
	if _, err := c.Do(context.Background(), &Request{}); !errors.Is(err, ErrConnDone) {
		t.Errorf("Do() after Close error = %v; want ErrConnDone", err)
	}
}

func TestDoWithoutKeepConn(t *testing.T) {
	eof := make(chan error, 1)
	c := pipeApp(t, func(r *Reader, w net.Conn) {
		readRequest(r)
		w.Write(concat(AppendRecord(nil, TypeStdout, RequestID, []byte("\r\nok")), endRecord(0, RequestComplete)))
		_, err := r.Next()
		eof <- err
	})
	var out bytes.Buffer
	if _, err := c.Do(testContext(t, 10*time.Second), &Request{Stdout: &out}); err != nil || out.String() != "\r\nok" {
		t.Fatalf("Do() = %q, %v; want %q, nil", out.String(), err, "\r\nok")
	}
	if c.Reusable() {
		t.Errorf("Reusable() after a request without KeepConn = true; want false")
	}
	if err := <-eof; err != io.EOF {
		t.Errorf("the application's next read error = %v; want io.EOF (Do closes the connection)", err)
	}
	if _, err := c.Do(testContext(t, 10*time.Second), &Request{}); !errors.Is(err, ErrConnDone) {
		t.Errorf("second Do() error = %v; want ErrConnDone", err)
	}
}

func TestDoProtocolErrors(t *testing.T) {
	out := AppendRecord(nil, TypeStdout, RequestID, []byte("x"))
	tests := []struct {
		name  string
		reply []byte
		want  string
		eof   bool
	}{
		{"bad version", []byte{2, 6, 0, 1, 0, 0, 0, 0}, "record version 2, want 1", false},
		{"other request", AppendRecord(nil, TypeStdout, 2, []byte("x")), "STDOUT record for request 2 during request 1", false},
		{"management record", AppendRecord(nil, TypeUnknownType, 0, make([]byte, 8)), "UNKNOWN_TYPE record for request 0 during request 1", false},
		{"unexpected type", AppendRecord(nil, TypeParams, RequestID, nil), "unexpected PARAMS record during a request", false},
		{"short END_REQUEST", AppendRecord(nil, TypeEndRequest, RequestID, make([]byte, 4)), "END_REQUEST content of 4 bytes, want 8", false},
		{"STDOUT after its end", concat(AppendRecord(nil, TypeStdout, RequestID, nil), out), "STDOUT record after the end of its stream", false},
		{"closed before END_REQUEST", out, "connection closed before END_REQUEST", true},
		{"truncated record", out[:12], "truncated STDOUT record", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := pipeApp(t, func(r *Reader, w net.Conn) {
				readRequest(r)
				w.Write(tt.reply)
				w.Close()
			})
			_, err := c.Do(testContext(t, 10*time.Second), &Request{KeepConn: true})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Do() error = %v; want one with %q", err, tt.want)
			}
			if tt.eof && !errors.Is(err, io.ErrUnexpectedEOF) || !tt.eof && !errors.Is(err, ErrProtocol) {
				t.Errorf("Do() error = %v; want it to wrap %v", err, map[bool]error{true: io.ErrUnexpectedEOF, false: ErrProtocol}[tt.eof])
			}
			if c.Reusable() {
				t.Errorf("Reusable() after a protocol error = true; want false")
			}
		})
	}
}

func TestDoRejected(t *testing.T) {
	c := pipeApp(t, func(r *Reader, w net.Conn) {
		readRequest(r)
		w.Write(endRecord(0, Overloaded))
	})
	er, err := c.Do(testContext(t, 10*time.Second), &Request{KeepConn: true})
	if !errors.Is(err, ErrRejected) || er.ProtocolStatus != Overloaded {
		t.Errorf("Do() = %+v, %v; want OVERLOADED and ErrRejected", er, err)
	}
	if c.Reusable() {
		t.Errorf("Reusable() after a rejected request = true; want false")
	}
}

// A context that ends while the script runs aborts the request: Do returns at once, and the
// application sees ABORT_REQUEST and then the end of the connection.
func TestDoCancel(t *testing.T) {
	after := make(chan []string, 1)
	c := pipeApp(t, func(r *Reader, w net.Conn) {
		readRequest(r)
		w.Write(AppendRecord(nil, TypeStdout, RequestID, []byte("partial")))
		var got []string
		for {
			rec, err := r.Next()
			if err != nil {
				got = append(got, err.Error())
				break
			}
			got = append(got, rec.Type.String())
		}
		after <- got
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := writerFunc(func(p []byte) (int, error) {
		cancel() // as a client that went away while the response streams
		return len(p), nil
	})
	start := time.Now()
	_, err := c.Do(ctx, &Request{Stdout: stdout, KeepConn: true})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Do() error = %v; want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Do() took %v after cancellation", d)
	}
	if c.Reusable() {
		t.Errorf("Reusable() after cancellation = true; want false")
	}
	if got, want := <-after, []string{"ABORT_REQUEST", "EOF"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the application then read %q; want %q", got, want)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// blockingReader yields some bytes, then blocks in Read until release is closed.
type blockingReader struct {
	first   []byte
	release chan struct{}
	reads   atomic.Int32
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if r.reads.Add(1) == 1 {
		return copy(p, r.first), nil
	}
	<-r.release
	return 1, nil
}

// A context that ends while the body is still being read returns at once too; the framing is
// broken mid-stream, so no ABORT_REQUEST is sent; a Read in progress may finish later but Stdin is
// not read again.
func TestDoCancelWhileReadingStdin(t *testing.T) {
	after := make(chan string, 1)
	c := pipeApp(t, func(r *Reader, w net.Conn) {
		var got []string
		for {
			rec, err := r.Next()
			if err != nil {
				got = append(got, err.Error())
				break
			}
			got = append(got, fmt.Sprintf("%s:%q", rec.Type, rec.Content))
		}
		after <- strings.Join(got, " ")
	})
	body := &blockingReader{first: []byte("abc"), release: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Do(ctx, &Request{Stdin: body, Params: []Param{{"CONTENT_LENGTH", "10"}}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Do() error = %v; want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Do() took %v after the deadline", d)
	}
	want := `BEGIN_REQUEST:"\x00\x01\x00\x00\x00\x00\x00\x00" PARAMS:"\x0e\x02CONTENT_LENGTH10" ` +
		`PARAMS:"" STDIN:"abc" EOF`
	if got := <-after; got != want {
		t.Errorf("the application read %s; want %s", got, want)
	}
	close(body.release)
	time.Sleep(10 * time.Millisecond) // nothing to poll for: the sender must not read again
	if n := body.reads.Load(); n != 2 {
		t.Errorf("Stdin read %d times; want 2 (no Read after the cancelled one)", n)
	}
}

type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) > 0 {
		n := copy(p, r.data)
		r.data = r.data[n:]
		return n, nil
	}
	return 0, r.err
}

func TestDoStdinError(t *testing.T) {
	boom := errors.New("boom")
	c := pipeApp(t, func(r *Reader, w net.Conn) {
		readRequest(r) // never ends: the body does not
	})
	_, err := c.Do(testContext(t, 10*time.Second), &Request{Stdin: &errReader{[]byte("ab"), boom}, KeepConn: true})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "read stdin") {
		t.Errorf("Do() error = %v; want read stdin: %v", err, boom)
	}
	if c.Reusable() {
		t.Errorf("Reusable() after a failed body = true; want false")
	}
}

func TestDoStdoutError(t *testing.T) {
	boom := errors.New("boom")
	c := pipeApp(t, func(r *Reader, w net.Conn) {
		readRequest(r)
		w.Write(concat(AppendRecord(nil, TypeStdout, RequestID, []byte("x")), endRecord(0, RequestComplete)))
	})
	_, err := c.Do(testContext(t, 10*time.Second), &Request{Stdout: failingWriter{boom}, KeepConn: true})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "write STDOUT") {
		t.Errorf("Do() error = %v; want write STDOUT: %v", err, boom)
	}
	if c.Reusable() {
		t.Errorf("Reusable() after a failed write = true; want false")
	}
}

// An application may answer before it has read the whole body (php-cgi does when CONTENT_LENGTH
// is short, or when the script exits early). Do still returns the answer; the connection is
// done, since the application would take the rest of the body for the next request.
func TestDoAnswerBeforeBodyRead(t *testing.T) {
	c := pipeApp(t, func(r *Reader, w net.Conn) {
		for {
			rec, err := r.Next()
			if err != nil {
				return
			}
			if rec.Type == TypeParams && len(rec.Content) == 0 {
				break
			}
		}
		w.Write(concat(AppendRecord(nil, TypeStdout, RequestID, []byte("early")), endRecord(0, RequestComplete)))
		w.Close()
	})
	var out bytes.Buffer
	body := &patternReader{n: 1 << 20, max: 1 << 20}
	_, err := c.Do(testContext(t, 10*time.Second), &Request{Stdin: body, Stdout: &out, KeepConn: true,
		Params: []Param{{"CONTENT_LENGTH", fmt.Sprint(1 << 20)}}})
	if err != nil || out.String() != "early" {
		t.Errorf("Do() = %q, %v; want %q, nil", out.String(), err, "early")
	}
	if c.Reusable() {
		t.Errorf("Reusable() with the body unsent = true; want false")
	}
}

func TestDoContentLengthMismatch(t *testing.T) {
	tests := []struct {
		params []Param
		body   string
		ok     bool
	}{
		{[]Param{{"CONTENT_LENGTH", "3"}}, "abc", true},
		{nil, "", true},
		{[]Param{{"CONTENT_LENGTH", ""}}, "", true},
		{[]Param{{"CONTENT_LENGTH", "3"}}, "abcdef", false},
		{[]Param{{"CONTENT_LENGTH", "9"}}, "abc", false},
		{nil, "abc", false},
		{[]Param{{"CONTENT_LENGTH", "x"}}, "", false},
	}
	for _, tt := range tests {
		c := pipeApp(t, func(r *Reader, w net.Conn) {
			readRequest(r)
			w.Write(endRecord(0, RequestComplete))
		})
		_, err := c.Do(testContext(t, 10*time.Second), &Request{Params: tt.params, Stdin: strings.NewReader(tt.body), KeepConn: true})
		if err != nil || c.Reusable() != tt.ok {
			t.Errorf("Do(%q, body %q) = %v, Reusable() %v; want nil, %v", tt.params, tt.body, err, c.Reusable(), tt.ok)
		}
	}
}

func TestDoCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	client, server := net.Pipe()
	defer server.Close()
	c := NewConn(client)
	if _, err := c.Do(ctx, &Request{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Do(cancelled) error = %v; want context.Canceled", err)
	}
	if !c.Reusable() {
		t.Errorf("Reusable() after Do(cancelled) = false; want true: nothing was sent")
	}
}

func TestGetValues(t *testing.T) {
	var asked []Param
	c := pipeApp(t, func(r *Reader, w net.Conn) {
		rec, err := r.Next()
		if err != nil || rec.Type != TypeGetValues || rec.RequestID != 0 {
			t.Errorf("fake application read %s for request %d, %v; want GET_VALUES for request 0", rec.Type, rec.RequestID, err)
			return
		}
		asked, _ = ParsePairs(rec.Content)
		w.Write(AppendRecord(nil, TypeGetValuesResult, 0, concat(AppendPair(nil, MaxConns, "1"), AppendPair(nil, MaxReqs, "1"))))
		readRequest(r)
		w.Write(endRecord(0, RequestComplete))
	})
	ps, err := c.GetValues(testContext(t, 10*time.Second), MaxConns, MaxReqs)
	if want := []Param{{MaxConns, "1"}, {MaxReqs, "1"}}; err != nil || fmt.Sprint(ps) != fmt.Sprint(want) {
		t.Errorf("GetValues() = %q, %v; want %q", ps, err, want)
	}
	if want := []Param{{MaxConns, ""}, {MaxReqs, ""}}; fmt.Sprint(asked) != fmt.Sprint(want) {
		t.Errorf("GET_VALUES asked for %q; want %q", asked, want)
	}
	if _, err := c.Do(testContext(t, 10*time.Second), &Request{}); err != nil {
		t.Errorf("Do() after GetValues error = %v", err)
	}
}

func TestGetValuesErrors(t *testing.T) {
	tests := []struct {
		name  string
		reply []byte
		want  string
	}{
		{"unknown type", AppendRecord(nil, TypeUnknownType, 0, []byte{byte(TypeGetValues), 0, 0, 0, 0, 0, 0, 0}), "application does not know GET_VALUES"},
		{"request record", AppendRecord(nil, TypeStdout, 1, nil), "STDOUT record for request 1 in answer to GET_VALUES"},
		{"wrong type", AppendRecord(nil, TypeGetValues, 0, nil), "GET_VALUES record in answer to GET_VALUES"},
		{"bad pairs", AppendRecord(nil, TypeGetValuesResult, 0, []byte{9, 9}), "name-value pair 0"},
	}
	for _, tt := range tests {
		c := pipeApp(t, func(r *Reader, w net.Conn) {
			r.Next()
			w.Write(tt.reply)
		})
		_, err := c.GetValues(testContext(t, 10*time.Second), MaxConns)
		if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: GetValues() error = %v; want ErrProtocol with %q", tt.name, err, tt.want)
		}
		if c.Reusable() {
			t.Errorf("%s: Reusable() after a failed GetValues = true; want false", tt.name)
		}
	}
}

// flushLog records the Writes and Flushes of a Request.Stdout, in order.
type flushLog struct{ events []string }

func (f *flushLog) Write(p []byte) (int, error) {
	f.events = append(f.events, "write "+string(p))
	return len(p), nil
}

func (f *flushLog) Flush() error {
	f.events = append(f.events, "flush")
	return nil
}

// Stdout is flushed after a STDOUT record only when nothing more of the answer has arrived: an
// answer written at once (a small response and END_REQUEST) is not flushed; one whose application
// pauses after a record is flushed there.
func TestDoFlushesStdoutWhenTheApplicationPauses(t *testing.T) {
	resume := make(chan struct{})
	c := pipeApp(t, func(r *Reader, w net.Conn) {
		for i := range 2 {
			if _, err := readRequest(r); err != nil {
				t.Errorf("fake application: %v", err)
				return
			}
			if i == 0 { // all at once
				w.Write(concat(AppendRecord(nil, TypeStdout, RequestID, []byte("a")),
					AppendRecord(nil, TypeStdout, RequestID, []byte("b")),
					AppendRecord(nil, TypeStdout, RequestID, nil), endRecord(0, RequestComplete)))
				continue
			}
			w.Write(AppendRecord(nil, TypeStdout, RequestID, []byte("c")))
			<-resume
			w.Write(concat(AppendRecord(nil, TypeStdout, RequestID, []byte("d")),
				AppendRecord(nil, TypeStdout, RequestID, nil), endRecord(0, RequestComplete)))
		}
	})
	var once flushLog
	if _, err := c.Do(testContext(t, 10*time.Second), &Request{Params: []Param{{"A", "1"}}, Stdout: &once, KeepConn: true}); err != nil {
		t.Fatalf("Do() error = %v", err)
	}
	if got, want := strings.Join(once.events, ", "), "write a, write b"; got != want {
		t.Errorf("answer in one piece: Stdout saw %q; want %q", got, want)
	}
	paused := &flushLog{}
	pausing := &pauseFlush{log: paused, resume: resume}
	if _, err := c.Do(testContext(t, 10*time.Second), &Request{Params: []Param{{"A", "1"}}, Stdout: pausing, KeepConn: true}); err != nil {
		t.Fatalf("Do() error = %v", err)
	}
	if got, want := strings.Join(paused.events, ", "), "write c, flush, write d"; got != want {
		t.Errorf("answer with a pause: Stdout saw %q; want %q", got, want)
	}
}

// pauseFlush logs like flushLog and, at its first Flush, lets the fake application go on.
type pauseFlush struct {
	log     *flushLog
	resume  chan struct{}
	resumed bool
}

func (p *pauseFlush) Write(b []byte) (int, error) { return p.log.Write(b) }

func (p *pauseFlush) Flush() error {
	if !p.resumed {
		p.resumed = true
		close(p.resume)
	}
	return p.log.Flush()
}

// appendParams gives records of at most MaxContent bytes that decode to the params, then the empty
// record that ends the stream, whatever their size.
func TestAppendParams(t *testing.T) {
	for _, size := range []int{0, 1, 100, MaxContent - 6, MaxContent - 5, MaxContent, 3 * MaxContent} {
		var ps []Param
		if size > 0 {
			ps = []Param{{"A", "1"}, {"BIG", strings.Repeat("v", size)}}
		}
		b := appendParams([]byte("prefix"), ps)
		if !bytes.HasPrefix(b, []byte("prefix")) {
			t.Fatalf("size %d: the prefix was overwritten", size)
		}
		r := NewReader(bytes.NewReader(b[len("prefix"):]))
		var content []byte
		for {
			rec, err := r.Next()
			if err != nil {
				t.Fatalf("size %d: Next() error = %v before the end record", size, err)
			}
			if rec.Type != TypeParams || rec.RequestID != RequestID || (len(rec.Content)+int(rec.PaddingLength))%8 != 0 {
				t.Fatalf("size %d: record %+v", size, rec.Header)
			}
			if len(rec.Content) == 0 {
				break
			}
			content = append(content, rec.Content...)
		}
		if _, err := r.Next(); err != io.EOF {
			t.Errorf("size %d: data after the end record (%v)", size, err)
		}
		got, err := ParsePairs(content)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(ps) && len(ps) > 0 || len(got) != len(ps) {
			t.Errorf("size %d: decoded %d pairs, %v; want %d", size, len(got), err, len(ps))
		}
	}
}
