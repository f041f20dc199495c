package httpfront

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/pool"
)

// recorded is a Handler served over a real connection whose records arrive on a channel.
type recorded struct {
	srv  *httptest.Server
	recs chan Record
	pool *fakePool
	root string
}

func newRecorded(t *testing.T, perRequest bool) *recorded {
	t.Helper()
	rd := &recorded{recs: make(chan Record, 16), pool: &fakePool{}}
	opt := Options{Observe: func(r *Record) { rd.recs <- *r },
		Redirects: []Redirect{{From: "old.example", To: "https://new.example", Status: 308}}}
	var h *Handler
	if perRequest {
		f := &fakeFCGI{answer: func(w io.Writer) error {
			_, err := io.WriteString(w, "Status: 201 Created\r\nContent-Type: text/plain\r\n\r\nhello")
			return err
		}}
		h, rd.root = perRequestHandler(t, f, opt)
	} else {
		h, rd.root = workerHandler(t, rd.pool, opt)
	}
	rd.srv = httptest.NewServer(h)
	t.Cleanup(rd.srv.Close)
	return rd
}

// next is the next record; it fails the test if none comes.
func (rd *recorded) next(t *testing.T) Record {
	t.Helper()
	select {
	case r := <-rd.recs:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no record within 10s")
		return Record{}
	}
}

// none fails the test if a record is waiting (each request is observed once).
func (rd *recorded) none(t *testing.T) {
	t.Helper()
	select {
	case r := <-rd.recs:
		t.Errorf("one record too many: %+v", r)
	default:
	}
}

func (rd *recorded) do(t *testing.T, method, target string, body io.Reader, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, rd.srv.URL+target, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := rd.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// Every kind of answer is recorded once, with what was sent.
func TestRecordOfEachAnswer(t *testing.T) {
	rd := newRecorded(t, false)
	big := strings.Repeat("0123456789", 20000) // 200 kB: sendfile's size
	if err := os.WriteFile(filepath.Join(rd.root, "big.txt"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	rd.srv.Client().CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, tc := range []struct {
		name, method, target string
		body                 string
		header               []string
		status               int
		php                  bool
		out                  int64 // -1: the length of what the client got
		in                   int64
	}{
		{"static", "GET", "/style.css?v=1", "", nil, 200, false, 6, 0},
		{"static large", "GET", "/big.txt", "", nil, 200, false, 200000, 0},
		{"static range", "GET", "/big.txt", "", []string{"Range", "bytes=10-19"}, 206, false, 10, 0},
		{"static HEAD", "HEAD", "/big.txt", "", nil, 200, false, 0, 0},
		{"not modified", "GET", "/style.css", "", []string{"If-None-Match", "*"}, 304, false, 0, 0},
		{"not served", "GET", "/.env", "", nil, 404, false, -1, 0},
		{"php", "GET", "/index.php?x=%22y", "", nil, 200, true, 9, 0},
		{"php post", "POST", "/app/save", "name=value&more=1", []string{"Content-Type", "application/x-www-form-urlencoded"}, 200, true, 9, 17},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			header := append([]string{"Referer", "http://ref.example/", "User-Agent", "test \"agent\""}, tc.header...)
			resp, got := rd.do(t, tc.method, tc.target, body, header...)
			r := rd.next(t)
			want := tc.out
			if want < 0 {
				want = int64(len(got))
			}
			if r.Status != tc.status || resp.StatusCode != tc.status || r.BytesOut != want || r.BytesIn != tc.in || r.PHP != tc.php {
				t.Errorf("%s %s: record status %d (client %d), bytes out %d, in %d, php %v; want %d, %d, %d, %v",
					tc.method, tc.target, r.Status, resp.StatusCode, r.BytesOut, r.BytesIn, r.PHP, tc.status, want, tc.in, tc.php)
			}
			if r.Method != tc.method || r.URI != tc.target || r.Proto != "HTTP/1.1" || r.Host != rd.srv.Listener.Addr().String() ||
				r.Referer != "http://ref.example/" || r.UserAgent != `test "agent"` || !strings.HasPrefix(r.RemoteAddr, "127.0.0.1:") {
				t.Errorf("%s %s: record %+v; want the request's method, URI, proto, host, referer, agent and peer", tc.method, tc.target, r)
			}
			if r.Start.IsZero() || r.Duration <= 0 || r.Start.After(time.Now()) {
				t.Errorf("%s %s: start %v, duration %v", tc.method, tc.target, r.Start, r.Duration)
			}
			if tc.php && (r.Visit.PID != 1 || r.Visit.Method != tc.method || r.Visit.URI != tc.target || !r.Visit.Start.Equal(r.Start) || r.Visit.Upstream <= 0) {
				t.Errorf("%s %s: visit %+v; want the pool's (pid 1), with the request's method, URI and start", tc.method, tc.target, r.Visit)
			}
			rd.none(t)
		})
	}
}

// A host redirect, answered before anything else, is recorded too.
func TestRecordHostRedirect(t *testing.T) {
	rd := newRecorded(t, false)
	rd.srv.Client().CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ := http.NewRequest("GET", rd.srv.URL+"/a?b", nil)
	req.Host = "old.example"
	resp, err := rd.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r := rd.next(t); r.Status != 308 || r.Host != "old.example" || r.URI != "/a?b" || r.BytesOut != 0 || r.PHP {
		t.Errorf("record of a host redirect: %+v; want 308 for old.example /a?b, no body, no PHP", r)
	}
}

// A chunked body over max_body_size is refused with 413 under the record's wrapper too, and the
// record says how much of it was read.
func TestRecordBodyTooLarge(t *testing.T) {
	rd := newRecorded(t, false)
	body := io.MultiReader(strings.NewReader(strings.Repeat("x", 2<<20))) // no length: chunked
	resp, _ := rd.do(t, "POST", "/app", body, "Content-Type", "application/octet-stream")
	r := rd.next(t)
	if resp.StatusCode != 413 || r.Status != 413 || r.BytesIn != 1<<20 || r.PHP {
		t.Errorf("chunked POST of 2 MiB over a 1 MiB limit: client %d, record %+v; want 413 and 1 MiB read, no PHP", resp.StatusCode, r)
	}
}

// Per-request mode's PHP requests are recorded with the visit the pool filled in, and the status
// PHP set.
func TestRecordPerRequest(t *testing.T) {
	rd := newRecorded(t, true)
	rd.do(t, "GET", "/sub/a.php", nil, "Authorization", "Basic "+basic("alice", "secret"))
	r := rd.next(t)
	if r.Status != 201 || !r.PHP || r.Visit.PID != 1 || r.BytesOut != 5 || r.User != "alice" {
		t.Errorf("record %+v; want 201, PHP, pid 1, 5 bytes, user alice", r)
	}
	rd.srv.Client().CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	_, body := rd.do(t, "GET", "/docs?a=b", nil)
	if r := rd.next(t); r.Status != 301 || r.PHP || r.BytesOut != int64(len(body)) {
		t.Errorf("record of a directory's redirect: %+v; want 301 with %d bytes, no PHP", r, len(body))
	}
	rd.do(t, "POST", "/style.css", nil)
	if r := rd.next(t); r.Status != 405 || r.PHP {
		t.Errorf("record of POST to a static file: %+v; want 405, no PHP", r)
	}
	rd.none(t)
}

func basic(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// PHP's flush reaches the client through the record's wrapper (http.ResponseController finds the
// connection's Flush), and a response cut short (the handler aborts the connection) is recorded
// with what was sent of it.
func TestRecordFlushAndAbort(t *testing.T) {
	rd := newRecorded(t, false)
	release := make(chan struct{})
	rd.pool.answer = func(resp channel.Response) error {
		resp.Head(200, []channel.Header{{Name: "Content-Type", Value: "text/plain"}})
		resp.Body([]byte("first\n"))
		resp.Flush()
		<-release
		return errors.New("worker died")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", rd.srv.URL+"/app", nil)
	resp, err := rd.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if line != "first\n" {
		t.Fatalf("first line before the end = %q, %v; want PHP's flushed \"first\\n\"", line, err)
	}
	close(release)
	r := rd.next(t)
	if r.Status != 200 || r.BytesOut != 6 || !r.PHP {
		t.Errorf("record of a response cut short: %+v; want 200, 6 bytes, PHP", r)
	}
	rd.none(t)
}

// A client that leaves before any answer is recorded as nginx does: 499.
func TestRecordClientGone(t *testing.T) {
	rd := newRecorded(t, false)
	started := make(chan struct{})
	rd.pool.answer = func(resp channel.Response) error {
		close(started)
		time.Sleep(50 * time.Millisecond) // PHP still working when the client leaves
		return context.Canceled
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", rd.srv.URL+"/app", nil)
	go func() { <-started; cancel() }()
	if resp, err := rd.srv.Client().Do(req); err == nil {
		resp.Body.Close()
	}
	if r := rd.next(t); r.Status != statusClientGone {
		t.Errorf("record of a client that left: status %d; want %d", r.Status, statusClientGone)
	}
}

// Without Observe the handler writes to the connection's own writer: no wrapper.
func TestNoObserveNoWrapper(t *testing.T) {
	f := &fakePool{}
	h, _ := workerHandler(t, f, Options{})
	var seen http.ResponseWriter
	f.answer = func(resp channel.Response) error {
		seen = resp.(*responder).w
		return resp.Head(200, nil)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/app", nil))
	if seen != w {
		t.Errorf("the responder writes to %T; want the server's writer", seen)
	}
	if f.visit == nil || f.visit.URI != "/app" || f.visit.Method != "GET" || f.visit.Start.IsZero() {
		t.Errorf("the pool got the visit %+v; want one with the method, URI and start", f.visit)
	}
}

// BenchmarkObserve is what the record costs a PHP request and a static file: compare "off" and
// "on" (go test -run XXX -bench Observe ./internal/httpfront/).
func BenchmarkObserve(b *testing.B) {
	root := b.TempDir()
	for name, text := range map[string]string{"index.php": "<?php", "style.css": "body{}"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for _, on := range []bool{false, true} {
		opt := Options{Root: root, Front: "index.php", SpoolDir: b.TempDir(), MaxBodySize: 1 << 20, BodyBufferSize: 64 << 10,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		name := "off"
		if on {
			name = "on"
			opt.Observe = func(*Record) {}
		}
		h, err := New(opt, benchPool{})
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		for _, target := range []string{"/app", "/style.css"} {
			b.Run(name+target, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
				}
			})
		}
	}
}

// benchPool lends a worker that answers "hello" at once.
type benchPool struct{}

func (benchPool) Call(ctx context.Context, v *pool.Visit, call func(pool.Process) pool.Outcome) error {
	return call(benchWorker{&fakeFCGI{}}).Err
}

func (benchPool) Limits() channel.Limits { return channel.Limits{} }

type benchWorker struct{ *fakeFCGI }

func (benchWorker) Exchange(p []byte, resp channel.Response) channel.Result {
	resp.Head(200, nil)
	return channel.Result{Err: resp.Body([]byte("hello"))}
}

// failingFlush is a connection whose flush fails.
type failingFlush struct{ *httptest.ResponseRecorder }

func (failingFlush) FlushError() error { return io.ErrClosedPipe }

// A failed flush reaches the responder through the wrapper (http.ResponseController).
func TestRecordFlushError(t *testing.T) {
	o := &observed{ResponseWriter: failingFlush{httptest.NewRecorder()}}
	if err := http.NewResponseController(o).Flush(); err != io.ErrClosedPipe {
		t.Errorf("Flush through the record's wrapper = %v; want the connection's %v", err, io.ErrClosedPipe)
	}
	if o.rec.Status != 200 {
		t.Errorf("status after a flush = %d; want 200 (the head went out)", o.rec.Status)
	}
}

// A client that leaves while PHP works is logged as 499 even when PHP then answers in full:
// nothing of the answer reached it.
func TestRecordClientGoneBeforeAWholeAnswer(t *testing.T) {
	rd := newRecorded(t, false)
	started := make(chan struct{})
	rd.pool.answer = func(resp channel.Response) error {
		close(started)
		rs := resp.(*responder)
		for deadline := time.Now().Add(10 * time.Second); rs.ctx.Err() == nil && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond) // PHP still working when the client leaves
		}
		if err := resp.Head(200, []channel.Header{{Name: "Content-Type", Value: "text/plain"}}); err != nil {
			return err
		}
		return resp.Body([]byte("too late"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", rd.srv.URL+"/app", nil)
	go func() { <-started; cancel() }()
	if resp, err := rd.srv.Client().Do(req); err == nil {
		resp.Body.Close()
	}
	if r := rd.next(t); r.Status != statusClientGone || r.BytesOut != 0 {
		t.Errorf("record of a client that left before PHP's whole answer: status %d, %d bytes; want %d, 0", r.Status, r.BytesOut, statusClientGone)
	}
}

// HEAD to PHP: net/http discards the body PHP wrote, so the record counts no body bytes.
func TestRecordHeadToPHP(t *testing.T) {
	rd := newRecorded(t, false)
	resp, err := rd.srv.Client().Head(rd.srv.URL + "/app")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r := rd.next(t); r.Status != 200 || r.BytesOut != 0 {
		t.Errorf("record of HEAD /app: status %d, %d bytes; want 200, 0", r.Status, r.BytesOut)
	}
}

// A handler that panics before any answer is logged as 500 (net/http drops the connection).
func TestRecordPanic(t *testing.T) {
	rd := newRecorded(t, false)
	rd.pool.answer = func(channel.Response) error { panic("bug") }
	if resp, err := rd.srv.Client().Get(rd.srv.URL + "/app"); err == nil {
		resp.Body.Close()
		t.Errorf("GET /app answered %d; want the connection dropped", resp.StatusCode)
	}
	if r := rd.next(t); r.Status != http.StatusInternalServerError {
		t.Errorf("record of a panic: status %d; want 500", r.Status)
	}
}
