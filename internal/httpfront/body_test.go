package httpfront

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/askr-php/askr/internal/channel"
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

// field and filePart are parts of a multipart/form-data body with the boundary "b".
func field(name, value string) string {
	return "--b\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value + "\r\n"
}

func filePart(name, filename, typ, content string) string {
	p := "--b\r\nContent-Disposition: form-data; name=\"" + name + "\"; filename=\"" + filename + "\"\r\n"
	if typ != "" {
		p += "Content-Type: " + typ + "\r\n"
	}
	return p + "\r\n" + content + "\r\n"
}

// Worker mode parses multipart bodies as PHP's rfc1867 parser would, under PHP's limits: fields,
// files in temporary files (removed after the request), and the error codes of $_FILES.
func TestMultipartUploads(t *testing.T) {
	on := channel.Limits{Known: true, FileUploads: true, MaxFiles: 20}
	for _, tc := range []struct {
		name    string
		limits  channel.Limits
		body    string
		chunked bool
		status  int
		post    [][2]string
		files   []file // tmp is checked for being set, not its name
	}{
		{name: "fields and files", limits: on,
			body: field("a", "1") + filePart("f1", "a.txt", "text/plain", "abc") + filePart("f2", `C:\Users\x\b.bin`, "", "\x00\x01") + field("c[]", "3"),
			post: [][2]string{{"a", "1"}, {"c[]", "3"}},
			files: []file{{field: "f1", name: "a.txt", typ: "text/plain", size: 3, fullPath: "a.txt", content: "abc"},
				{field: "f2", name: "b.bin", typ: "application/octet-stream", size: 2, fullPath: `C:\Users\x\b.bin`, content: "\x00\x01"}}},
		{name: "no limits known yet: askrd's own only", limits: channel.Limits{},
			body:  filePart("f", "a.txt", "text/plain", "abc"),
			files: []file{{field: "f", name: "a.txt", typ: "text/plain", size: 3, fullPath: "a.txt", content: "abc"}}},
		{name: "an empty file input", limits: on, body: filePart("f", "", "application/octet-stream", ""),
			files: []file{{field: "f", err: 4}}},
		{name: "over upload_max_filesize", limits: channel.Limits{Known: true, FileUploads: true, MaxFiles: 20, MaxFileSize: 3},
			body:  filePart("f", "a.txt", "text/plain", "abcd") + filePart("g", "b.txt", "text/plain", "abc"),
			files: []file{{field: "f", name: "a.txt", typ: "text/plain", fullPath: "a.txt", err: 1}, {field: "g", name: "b.txt", typ: "text/plain", size: 3, fullPath: "b.txt", content: "abc"}}},
		{name: "over the form's MAX_FILE_SIZE", limits: channel.Limits{Known: true, FileUploads: true, MaxFiles: 20, MaxFileSize: 10},
			body: field("MAX_FILE_SIZE", " 2 ") + filePart("f", "a.txt", "text/plain", "abc"),
			post: [][2]string{{"MAX_FILE_SIZE", " 2 "}}, files: []file{{field: "f", name: "a.txt", typ: "text/plain", fullPath: "a.txt", err: 2}}},
		{name: "file_uploads off", limits: channel.Limits{Known: true, MaxFiles: 20},
			body: field("a", "1") + filePart("f", "a.txt", "text/plain", "abc"), post: [][2]string{{"a", "1"}}},
		{name: "over max_file_uploads", limits: channel.Limits{Known: true, FileUploads: true, MaxFiles: 1},
			body:  filePart("f", "a.txt", "text/plain", "abc") + filePart("g", "b.txt", "text/plain", "def"),
			files: []file{{field: "f", name: "a.txt", typ: "text/plain", size: 3, fullPath: "a.txt", content: "abc"}}},
		{name: "an empty file input does not count for max_file_uploads", limits: channel.Limits{Known: true, FileUploads: true, MaxFiles: 1},
			body:  filePart("e", "", "application/octet-stream", "") + filePart("f", "a.txt", "text/plain", "abc"),
			files: []file{{field: "e", err: 4}, {field: "f", name: "a.txt", typ: "text/plain", size: 3, fullPath: "a.txt", content: "abc"}}},
		{name: "a part without a name", limits: on,
			body: "--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n" + field("a", "1"), post: [][2]string{{"a", "1"}}},
		{name: "over post_max_size, declared", limits: channel.Limits{Known: true, FileUploads: true, MaxFiles: 20, PostMaxSize: 50},
			body: field("a", "1") + filePart("f", "a.txt", "text/plain", strings.Repeat("x", 100))},
		{name: "over post_max_size, chunked", limits: channel.Limits{Known: true, FileUploads: true, MaxFiles: 20, PostMaxSize: 50},
			body: field("a", "1") + filePart("f", "a.txt", "text/plain", strings.Repeat("x", 100)), chunked: true},
		{name: "malformed", limits: on, body: "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated", status: 400},
		{name: "a malformed Content-Disposition", limits: on, body: "--b\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n", status: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakePool{limits: tc.limits}
			h, _ := workerHandler(t, f, Options{})
			body := tc.body
			if tc.status == 0 {
				body += "--b--\r\n"
			}
			r := httptest.NewRequest("POST", "/form", strings.NewReader(body))
			if tc.chunked {
				r = httptest.NewRequest("POST", "/form", io.MultiReader(strings.NewReader(body)))
				r.TransferEncoding = []string{"chunked"}
			}
			r.Header.Set("Content-Type", "multipart/form-data; boundary=b")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			want := tc.status
			if want == 0 {
				want = 200
			}
			if w.Code != want || (want == 200) != (f.calls == 1) {
				t.Fatalf("POST = %d %q, %d calls to PHP; want %d", w.Code, w.Body.String(), f.calls, want)
			}
			if want != 200 {
				return
			}
			if !slices.Equal(f.got.post, tc.post) {
				t.Errorf("post = %q; want %q", f.got.post, tc.post)
			}
			if len(f.got.files) != len(tc.files) {
				t.Fatalf("files = %+v; want %+v", f.got.files, tc.files)
			}
			for i, got := range f.got.files {
				if (got.tmp != "") != (tc.files[i].content != "") {
					t.Errorf("file %d: tmp %q; want one only for a file kept", i, got.tmp)
				}
				if _, err := os.Stat(got.tmp); got.tmp != "" && !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("file %d: %s still there after the request (%v)", i, got.tmp, err)
				}
				got.tmp = ""
				if got != tc.files[i] {
					t.Errorf("file %d = %+v; want %+v", i, got, tc.files[i])
				}
			}
			if f.got.body != "" || f.got.bodyFile != "" {
				t.Errorf("body %q, body_file %q; want neither (the body was parsed)", f.got.body, f.got.bodyFile)
			}
		})
	}
}
