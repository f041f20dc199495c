package httpfront

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// failingBody gives some bytes, then fails as net/http's body of a malformed or cut request does.
type failingBody struct {
	data string
	err  error
}

func (f *failingBody) Read(p []byte) (int, error) {
	if f.data == "" {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// A body the client sent wrong is the client's error: 400, logged below ERROR, PHP never called.
// A body askrd cannot store is askrd's: 500 with an ERROR line.
func TestBodyErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   func() io.Reader
		buffer int64 // body_buffer_size
		spool  string
		status int
		errLog bool
	}{
		{"malformed chunked, in memory", func() io.Reader { return &failingBody{"abc", errors.New("invalid byte in chunk length")} }, 1024, "", 400, false},
		{"malformed chunked, spooled", func() io.Reader {
			return &failingBody{strings.Repeat("x", 5000), errors.New("chunked line ends with bare LF")}
		}, 1024, "", 400, false},
		{"cut short", func() io.Reader { return &failingBody{"abc", io.ErrUnexpectedEOF} }, 1024, "", 400, false},
		{"spool directory gone", func() io.Reader { return strings.NewReader(strings.Repeat("x", 5000)) }, 1024, "missing", 500, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			f := &fakeFCGI{}
			opt := Options{BodyBufferSize: tc.buffer, Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			if tc.spool != "" {
				opt.SpoolDir = filepath.Join(t.TempDir(), tc.spool)
			}
			h, _ := perRequestHandler(t, f, opt)
			w := serve(h, "POST", "/info.php", tc.body(), "Content-Type", "application/octet-stream")
			if w.Code != tc.status || f.calls != 0 {
				t.Errorf("POST = %d, %d calls to PHP; want %d and none", w.Code, f.calls, tc.status)
			}
			if got := strings.Contains(log.String(), "level=ERROR"); got != tc.errLog {
				t.Errorf("ERROR line logged = %v; want %v; log:\n%s", got, tc.errLog, log.String())
			}
			if w.Header().Get("Connection") != "close" {
				t.Errorf("Connection = %q; want close (the rest of the body is not read)", w.Header().Get("Connection"))
			}
		})
	}
}

// A chunked request ends its connection: net/http drops a Content-Length sent beside
// Transfer-Encoding before askrd sees it, so what follows the body is never read as a request.
func TestChunkedRequestClosesConnection(t *testing.T) {
	f := &fakeFCGI{}
	h, _ := perRequestHandler(t, f, Options{})
	r := serveChunked(h, "POST", "/info.php", "abc")
	if r.Code != 201 || f.body != "abc" || r.Header().Get("Connection") != "close" {
		t.Errorf("chunked POST = %d, PHP got %q, Connection %q; want 201, abc, close", r.Code, f.body, r.Header().Get("Connection"))
	}
	if r := serve(h, "POST", "/info.php", strings.NewReader("abc")); r.Header().Get("Connection") != "" {
		t.Errorf("POST with Content-Length: Connection %q; want none (kept alive)", r.Header().Get("Connection"))
	}
}

// serveChunked runs one request through h with body sent as net/http gives a chunked one.
func serveChunked(h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, io.MultiReader(strings.NewReader(body)))
	r.TransferEncoding = []string{"chunked"}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}
