package httpfront

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/channel"
)

// fakeClient is a ResponseWriter (with the methods http.ResponseController uses) whose reading
// the test controls: while stalled, Write blocks, as a write to a client that does not read.
type fakeClient struct {
	mu      sync.Mutex
	cond    *sync.Cond
	header  http.Header
	status  int
	body    bytes.Buffer
	flushes []int // len(body) at each Flush
	stalled bool
	err     error // what Write and Flush return from now on (the client left, a deadline passed)
}

func newFakeClient() *fakeClient {
	c := &fakeClient{header: http.Header{}}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *fakeClient) Header() http.Header { return c.header }

func (c *fakeClient) WriteHeader(status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status == 0 {
		c.status = status
	}
}

func (c *fakeClient) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.stalled && c.err == nil {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.status == 0 {
		c.status = 200
	}
	return c.body.Write(b)
}

func (c *fakeClient) FlushError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.flushes = append(c.flushes, c.body.Len())
	return nil
}

// SetWriteDeadline ends a blocked write if the deadline has passed, as a net.Conn does.
func (c *fakeClient) SetWriteDeadline(t time.Time) error {
	if !t.IsZero() && !t.After(time.Now()) {
		c.fail(os.ErrDeadlineExceeded)
	}
	return nil
}

func (c *fakeClient) set(stalled bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stalled = stalled
	c.cond.Broadcast()
}

func (c *fakeClient) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
	c.cond.Broadcast()
}

func (c *fakeClient) got() (status int, body []byte, flushes []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, bytes.Clone(c.body.Bytes()), append([]int(nil), c.flushes...)
}

// testResponder returns a responder with a small memory bound, writing to c.
func testResponder(t *testing.T, ctx context.Context, c *fakeClient, memLimit int, fileLimit int64, log *bytes.Buffer) *responder {
	t.Helper()
	if log == nil {
		log = &bytes.Buffer{}
	}
	return &responder{ctx: ctx, w: c, rc: http.NewResponseController(c), timeout: time.Minute, dir: t.TempDir(),
		memLimit: memLimit, fileLimit: fileLimit, log: slog.New(slog.NewTextHandler(log, nil)),
		openSpool: createSpool, flushAt: -1, lastFlush: -1}
}

// pattern is n bytes that show their own order.
func pattern(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%08d\n", i)
	}
	return b.Bytes()[:n]
}

// spoolFDs counts this process's open response spool files (unlinked, so only /proc sees them).
func spoolFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.Contains(l, "askr-response-") {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// produce sends body to rs in pieces of 4 KiB, as a worker's Body frames, then nil or the error.
func produce(rs *responder, body []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		for b := body; len(b) > 0; {
			n := min(len(b), 4096)
			if err := rs.Body(b[:n]); err != nil {
				done <- err
				return
			}
			b = b[n:]
		}
		done <- nil
	}()
	return done
}

func within(t *testing.T, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not finish", what)
		return nil
	}
}

func TestResponderHoldsASmallResponseWhole(t *testing.T) {
	c := newFakeClient()
	rs := testResponder(t, context.Background(), c, 64<<10, 1<<20, nil)
	rs.Head(201, nil)
	body := pattern(60 << 10)
	if err := within(t, "producing", produce(rs, body)); err != nil {
		t.Fatal(err)
	}
	if st, got, _ := c.got(); st != 0 || len(got) != 0 || rs.spilled {
		t.Fatalf("before the end the client has status %d and %d bytes (spilled %v); want nothing", st, len(got), rs.spilled)
	}
	if err := rs.end(true); err != nil {
		t.Fatal(err)
	}
	if st, got, _ := c.got(); st != 201 || !bytes.Equal(got, body) {
		t.Errorf("client got %d with %d bytes; want 201 with the %d bytes sent", st, len(got), len(body))
	}
}

// A client that does not read: PHP's answer goes to memory, then to the spool file, and PHP is
// done at once; the client then gets all of it in order, and the file is gone.
func TestResponderSpoolsWhatTheClientDoesNotTake(t *testing.T) {
	c := newFakeClient()
	c.set(true)
	rs := testResponder(t, context.Background(), c, 64<<10, 4<<20, nil)
	rs.Head(200, nil)
	body := pattern(1 << 20)
	if err := within(t, "producing for a stalled client", produce(rs, body)); err != nil {
		t.Fatal(err)
	}
	rs.mu.Lock()
	inFile := rs.fw - rs.fr
	rs.mu.Unlock()
	if inFile < int64(len(body))-2*64<<10 {
		t.Errorf("%d bytes in the spool file; want all but what memory (64 KiB) and the stalled write hold", inFile)
	}
	if n := spoolFDs(t); n != 1 {
		t.Errorf("%d spool files open; want 1", n)
	}
	if ents, _ := os.ReadDir(rs.dir); len(ents) != 0 {
		t.Errorf("the spool directory holds %d files; want none (the spool is unlinked)", len(ents))
	}
	c.set(false)
	if err := rs.end(true); err != nil {
		t.Fatal(err)
	}
	if _, got, _ := c.got(); !bytes.Equal(got, body) {
		t.Errorf("client got %d bytes (equal: %v); want the %d bytes sent, in order", len(got), bytes.Equal(got, body), len(body))
	}
	if n := spoolFDs(t); n != 0 {
		t.Errorf("%d spool files open after the end; want 0", n)
	}
}

// Past memory and the file's bound PHP waits for the client; with fileLimit 0 there is no file.
func TestResponderWaitsPastItsBounds(t *testing.T) {
	for _, fileLimit := range []int64{0, 128 << 10} {
		t.Run(fmt.Sprint(fileLimit), func(t *testing.T) {
			c := newFakeClient()
			c.set(true)
			rs := testResponder(t, context.Background(), c, 64<<10, fileLimit, nil)
			rs.Head(200, nil)
			body := pattern(1 << 20)
			first := 4096
			rs.Body(body[:first])
			if err := rs.Flush(); err != nil { // the writer starts
				t.Fatal(err)
			}
			done := produce(rs, body[first:])
			waitFor(t, "the spool to fill", func() bool {
				rs.mu.Lock()
				defer rs.mu.Unlock()
				return rs.in >= int64(64<<10)+fileLimit
			})
			select {
			case err := <-done:
				t.Fatalf("PHP finished (%v) with its answer beyond memory and file bounds; want it to wait", err)
			case <-time.After(50 * time.Millisecond):
			}
			if fileLimit == 0 && spoolFDs(t) != 0 {
				t.Errorf("a spool file was opened with response_spool_size 0")
			}
			c.set(false)
			if err := within(t, "producing", done); err != nil {
				t.Fatal(err)
			}
			if err := rs.end(true); err != nil {
				t.Fatal(err)
			}
			if _, got, _ := c.got(); !bytes.Equal(got, body) {
				t.Errorf("client got %d bytes; want the %d bytes sent, in order", len(got), len(body))
			}
		})
	}
}

// What PHP flushed reaches a client that reads at once, before PHP's answer ends; a flush behind
// spooled data is done when the client has taken that data, in order.
func TestResponderFlushOrder(t *testing.T) {
	c := newFakeClient()
	rs := testResponder(t, context.Background(), c, 64<<10, 1<<20, nil)
	rs.Head(200, nil)
	rs.Body([]byte("event 1\n"))
	rs.Flush()
	waitFor(t, "the flushed event to reach the client", func() bool {
		_, got, fl := c.got()
		return string(got) == "event 1\n" && len(fl) == 1 && fl[0] == len(got)
	})

	c.set(true) // the client stops reading: the next part is spooled, then flushed
	big := pattern(300 << 10)
	if err := within(t, "producing", produce(rs, big)); err != nil {
		t.Fatal(err)
	}
	rs.Flush()
	rs.Body([]byte("tail"))
	if _, got, fl := c.got(); len(fl) != 1 || len(got) != 8 {
		t.Fatalf("while the client stalls it has %d bytes and %d flushes; want 8 and 1", len(got), len(fl))
	}
	c.set(false)
	if err := rs.end(true); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte("event 1\n"), big...), "tail"...)
	_, got, fl := c.got()
	if !bytes.Equal(got, want) {
		t.Fatalf("client got %d bytes; want %d, in order", len(got), len(want))
	}
	if len(fl) != 2 || fl[1] < 8+len(big) {
		t.Errorf("flushes at %v; want one at 8 and one at or after %d (the second flush())", fl, 8+len(big))
	}
}

// A client that leaves while its response is spooled: PHP is told at its next write, the spool
// file is closed (its space freed), and the response ends with the client's error.
func TestResponderClientLeavesWhileSpooled(t *testing.T) {
	for _, how := range []string{"write error", "context"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := newFakeClient()
			c.set(true)
			rs := testResponder(t, ctx, c, 64<<10, 4<<20, nil)
			rs.Head(200, nil)
			if err := within(t, "producing", produce(rs, pattern(512<<10))); err != nil {
				t.Fatal(err)
			}
			if n := spoolFDs(t); n != 1 {
				t.Fatalf("%d spool files open; want 1", n)
			}
			if how == "context" {
				cancel()
			} else {
				c.fail(syscall.EPIPE)
			}
			var err error
			waitFor(t, "PHP's next write to fail", func() bool { err = rs.Body([]byte("more")); return err != nil })
			if err := rs.end(false); err == nil {
				t.Errorf("end after the client left = nil; want its error")
			}
			if n := spoolFDs(t); n != 0 {
				t.Errorf("%d spool files open after the client left; want 0", n)
			}
		})
	}
}

// PHP failing after the spill stops the writer at once, even one blocked on a stalled client.
func TestResponderStopsOnFailure(t *testing.T) {
	c := newFakeClient()
	c.set(true)
	rs := testResponder(t, context.Background(), c, 64<<10, 4<<20, nil)
	rs.Head(200, nil)
	if err := within(t, "producing", produce(rs, pattern(512<<10))); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- rs.end(false) }()
	if err := within(t, "stopping", ended); err == nil {
		t.Errorf("end(false) = nil; want an error (the response is cut)")
	}
	if n := spoolFDs(t); n != 0 {
		t.Errorf("%d spool files open; want 0", n)
	}
}

// failingSpool accepts limit bytes, then fails as a full disk does.
type failingSpool struct {
	mu    sync.Mutex
	data  []byte
	limit int
}

func (f *failingSpool) WriteAt(b []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := min(len(b), f.limit-int(off))
	if n < 0 {
		n = 0
	}
	if need := int(off) + n; need > len(f.data) {
		f.data = append(f.data, make([]byte, need-len(f.data))...)
	}
	copy(f.data[off:], b[:n])
	if n < len(b) {
		return n, syscall.ENOSPC
	}
	return n, nil
}

func (f *failingSpool) ReadAt(b []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if int(off) >= len(f.data) {
		return 0, io.EOF
	}
	n := copy(b, f.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (f *failingSpool) Close() error { return nil }

// A spool file that cannot be created or written loses nothing: what it took is sent, and past
// it PHP waits for the client, as without a file; a warning says so.
func TestResponderSpoolErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(string) (spoolFile, error)
	}{
		{"create", func(string) (spoolFile, error) { return nil, errors.New("no space left on device") }},
		{"write", func(string) (spoolFile, error) { return &failingSpool{limit: 100_000}, nil }},
		{"missing dir", createSpool},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeClient()
			c.set(true)
			var log bytes.Buffer
			rs := testResponder(t, context.Background(), c, 64<<10, 4<<20, &log)
			rs.openSpool = tc.open
			rs.dir = filepath.Join(rs.dir, "missing")
			rs.Head(200, nil)
			body := pattern(1 << 20)
			done := produce(rs, body)
			select {
			case err := <-done:
				t.Fatalf("PHP finished (%v) although the spool failed and the client does not read; want it to wait", err)
			case <-time.After(100 * time.Millisecond):
			}
			c.set(false)
			if err := within(t, "producing", done); err != nil {
				t.Fatal(err)
			}
			if err := rs.end(true); err != nil {
				t.Fatal(err)
			}
			if _, got, _ := c.got(); !bytes.Equal(got, body) {
				t.Errorf("client got %d bytes; want the %d bytes sent, in order", len(got), len(body))
			}
			if n := strings.Count(log.String(), "spooling a response to a temporary file failed"); n != 1 {
				t.Errorf("log has %d spool warnings; want 1:\n%s", n, log.String())
			}
		})
	}
}

// Over a real connection: a client that reads nothing does not keep PHP waiting (the answer is
// spooled), and is cut off by the write deadline (client_timeout); the spool is then released.
func TestResponderClientTimeout(t *testing.T) {
	type result struct {
		produced, ended error
		producedIn      time.Duration
	}
	results := make(chan result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs := testResponder(t, r.Context(), nil, 64<<10, 8<<20, nil)
		rs.w, rs.rc, rs.timeout = w, http.NewResponseController(w), 300*time.Millisecond
		rs.Head(200, nil)
		start := time.Now()
		var res result
		res.produced = <-produce(rs, pattern(4<<20))
		res.producedIn = time.Since(start)
		res.ended = rs.end(res.produced == nil)
		results <- res
	}))
	defer srv.Close()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	var res result
	select {
	case res = <-results:
	case <-time.After(20 * time.Second):
		t.Fatal("the response to a client that reads nothing never ended")
	}
	if res.produced != nil || res.producedIn > 5*time.Second {
		t.Errorf("PHP's 4 MiB took %v (error %v); want it spooled, not waiting for the client", res.producedIn, res.produced)
	}
	if !errors.Is(res.ended, os.ErrDeadlineExceeded) {
		t.Errorf("the response ended with %v; want the write deadline's error", res.ended)
	}
	if n := spoolFDs(t); n != 0 {
		t.Errorf("%d spool files open; want 0", n)
	}
}

// slowClient reads steadily, but slower than PHP writes: each write takes a while.
type slowClient struct {
	*fakeClient
	delay time.Duration
}

func (c slowClient) Write(b []byte) (int, error) {
	time.Sleep(c.delay)
	return c.fakeClient.Write(b)
}

// sizedSpool records how far into the file anything was written.
type sizedSpool struct {
	spoolFile
	mu  sync.Mutex
	end int64
}

func (s *sizedSpool) WriteAt(b []byte, off int64) (int, error) {
	s.mu.Lock()
	s.end = max(s.end, off+int64(len(b)))
	s.mu.Unlock()
	return s.spoolFile.WriteAt(b, off)
}

// A client that keeps reading, but slower than PHP writes, never lets the spool file empty: the
// file must still stay within its bound (past it PHP waits), not grow with the response.
func TestResponderFileBoundWithASteadyReader(t *testing.T) {
	c := newFakeClient()
	slow := slowClient{c, 200 * time.Microsecond}
	rs := testResponder(t, context.Background(), c, 16<<10, 64<<10, nil)
	rs.w, rs.rc = slow, http.NewResponseController(slow)
	var spool *sizedSpool
	rs.openSpool = func(dir string) (spoolFile, error) {
		f, err := createSpool(dir)
		if err != nil {
			return nil, err
		}
		spool = &sizedSpool{spoolFile: f}
		return spool, nil
	}
	rs.Head(200, nil)
	body := pattern(4 << 20)
	if err := within(t, "producing", produce(rs, body)); err != nil {
		t.Fatal(err)
	}
	if err := rs.end(true); err != nil {
		t.Fatal(err)
	}
	if _, got, _ := c.got(); !bytes.Equal(got, body) {
		t.Errorf("client got %d bytes (equal: %v); want the %d bytes sent, in order", len(got), bytes.Equal(got, body), len(body))
	}
	if spool == nil {
		t.Fatal("no spool file was used; the test wants one")
	}
	if spool.end > 64<<10 {
		t.Errorf("the spool file grew to %d bytes; want at most its bound, %d", spool.end, 64<<10)
	}
}

// pacedClient takes a while for each write, in proportion to its size, and fails a write that
// ends past the deadline set before it, as a connection to a slow client does.
type pacedClient struct {
	*fakeClient
	perKiB   time.Duration
	mu       sync.Mutex
	deadline time.Time
}

func (c *pacedClient) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

func (c *pacedClient) Write(b []byte) (int, error) {
	time.Sleep(time.Duration(len(b)>>10) * c.perKiB)
	c.mu.Lock()
	late := !c.deadline.IsZero() && time.Now().After(c.deadline)
	c.mu.Unlock()
	if late {
		return 0, os.ErrDeadlineExceeded
	}
	return c.fakeClient.Write(b)
}

// A response held whole in memory reaches a slow client that keeps reading: client_timeout bounds
// each write (a piece), not the time the client takes for all of it.
func TestResponderSlowClientGetsAHeldResponse(t *testing.T) {
	c := newFakeClient()
	paced := &pacedClient{fakeClient: c, perKiB: time.Millisecond} // 32 KiB in ≈32 ms; 768 KiB in ≈0.8 s
	rs := testResponder(t, context.Background(), c, 1<<20, 0, nil)
	rs.w, rs.rc, rs.timeout = paced, http.NewResponseController(paced), 300*time.Millisecond
	rs.Head(200, nil)
	body := pattern(768 << 10)
	if err := within(t, "producing", produce(rs, body)); err != nil {
		t.Fatal(err)
	}
	if rs.spilled {
		t.Fatal("the response spilled; the test wants it held in memory")
	}
	if err := rs.end(true); err != nil {
		t.Fatalf("end: %v; want the whole response written", err)
	}
	if _, got, _ := c.got(); !bytes.Equal(got, body) {
		t.Errorf("client got %d bytes; want the %d bytes sent, in order", len(got), len(body))
	}
}

// A response PHP gave no length, held whole, goes out with a Content-Length, not chunked (net/http
// itself sets one only for bodies under 2 KiB); PHP's own framing, a 204, a HEAD and a flushed
// (streamed) response are left as they are.
func TestWholeResponseContentLength(t *testing.T) {
	big := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		name, method string
		status       int
		headers      []channel.Header
		flush        bool
		body         string
		wantLength   int // -1: no Content-Length header
		wantChunked  bool
	}{
		{name: "whole", method: "GET", status: 200, body: big, wantLength: 5000},
		{name: "small", method: "GET", status: 200, body: "hi", wantLength: 2},
		{name: "empty", method: "GET", status: 200, wantLength: 0},
		{name: "PHP's own length", method: "GET", status: 200, headers: []channel.Header{{Name: "content-length", Value: "5000"}}, body: big, wantLength: 5000},
		{name: "204", method: "GET", status: 204, wantLength: -1},
		{name: "Status: 304", method: "GET", status: 200, headers: []channel.Header{{Name: "Status", Value: "304 Not Modified"}}, wantLength: -1},
		{name: "flushed", method: "GET", status: 200, flush: true, body: big, wantLength: -1, wantChunked: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakePool{answer: phpAnswers(nil, tc.status, tc.headers, tc.flush, tc.body)}
			h, _ := workerHandler(t, f, Options{})
			srv := httptest.NewServer(h)
			defer srv.Close()
			req, _ := http.NewRequest(tc.method, srv.URL+"/app", nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(b) != tc.body {
				t.Fatalf("body: %d bytes, %v; want the %d bytes PHP sent", len(b), err, len(tc.body))
			}
			chunked := slices.Contains(resp.TransferEncoding, "chunked")
			want := []string{fmt.Sprint(tc.wantLength)}
			if tc.wantLength < 0 {
				want = nil
			}
			if cl := resp.Header.Values("Content-Length"); !slices.Equal(cl, want) || chunked != tc.wantChunked {
				t.Errorf("Content-Length %q, chunked %v; want %q, %v", cl, chunked, want, tc.wantChunked)
			}
		})
	}
}

// BenchmarkResponderWhole: a 20 KB page, as a worker sends it (Body frames of 8 KiB), held whole
// and written to the client (go test -run X -bench ResponderWhole -benchmem ./internal/httpfront).
func BenchmarkResponderWhole(b *testing.B) {
	body := pattern(20 << 10)
	headers := []channel.Header{{Name: "Content-Type", Value: "text/plain; charset=utf-8"}}
	log := slog.New(slog.DiscardHandler)
	for b.Loop() {
		c := newFakeClient()
		rs := &responder{ctx: context.Background(), w: c, rc: http.NewResponseController(c), timeout: time.Minute,
			memLimit: bufferSize, log: log, flushAt: -1, lastFlush: -1}
		rs.Head(200, headers)
		for p := body; len(p) > 0; p = p[min(len(p), 8<<10):] {
			rs.Body(p[:min(len(p), 8<<10)])
		}
		if err := rs.end(true); err != nil {
			b.Fatal(err)
		}
	}
}
