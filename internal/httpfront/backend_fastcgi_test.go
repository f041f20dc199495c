package httpfront

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/fastcgi"
	"github.com/askr-php/askr/internal/pool"
)

// fakeFCGI plays the pool and a php-cgi process: each request's params and body are recorded and
// answer writes its output.
type fakeFCGI struct {
	params map[string]string
	names  []string
	body   string
	calls  int
	answer func(w io.Writer) error
	status int // the last call's Outcome.Status
}

func (f *fakeFCGI) Call(ctx context.Context, v *pool.Visit, call func(pool.Process) pool.Outcome) error {
	f.calls++
	o := call(f)
	v.PID, f.status = f.PID(), o.Status // as the pool does
	return o.Err
}

func (f *fakeFCGI) Do(ctx context.Context, req *fastcgi.Request) (bool, bool, error) {
	f.params, f.names = map[string]string{}, nil
	for _, p := range req.Params {
		f.params[p.Name] = p.Value
		f.names = append(f.names, p.Name)
	}
	b, err := io.ReadAll(req.Stdin)
	if err != nil {
		return true, true, err
	}
	f.body = string(b)
	return true, true, f.answer(req.Stdout)
}

func (f *fakeFCGI) PID() int                                   { return 1 }
func (f *fakeFCGI) Greet(time.Duration) (channel.Hello, error) { return channel.Hello{}, nil }
func (f *fakeFCGI) Ping(time.Duration) error                   { return nil }
func (f *fakeFCGI) Stop() error                                { return nil }
func (f *fakeFCGI) Kill() error                                { return nil }
func (f *fakeFCGI) Done() <-chan struct{}                      { return nil }
func (f *fakeFCGI) Err() error                                 { return nil }
func (f *fakeFCGI) Left() bool                                 { return false }
func (f *fakeFCGI) Tail() string                               { return "" }
func (f *fakeFCGI) Close() error                               { return nil }

// testOptions fills in opt for a Handler of either mode on routeRoot's document root (and its
// alias), with small limits, a private spool directory and a silent log; it returns the root.
func testOptions(t *testing.T, opt *Options) string {
	t.Helper()
	root, aliasDir := routeRoot(t)
	opt.Root, opt.Front, opt.Software = root, "index.php", "askr/test"
	opt.Aliases = []Alias{{Prefix: "/wp-content/", Dir: aliasDir}}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.SpoolDir == "" {
		opt.SpoolDir = t.TempDir()
	}
	if opt.MaxBodySize == 0 {
		opt.MaxBodySize = 1 << 20
	}
	if opt.BodyBufferSize == 0 {
		opt.BodyBufferSize = 64 << 10
	}
	return root
}

func perRequestHandler(t *testing.T, f *fakeFCGI, opt Options) (*Handler, string) {
	t.Helper()
	root := testOptions(t, &opt)
	if f.answer == nil {
		f.answer = func(w io.Writer) error {
			_, err := io.WriteString(w, "Status: 201 Created\r\nContent-type: text/plain;charset=UTF-8\r\nX-Powered-By: PHP\r\n\r\nhello")
			return err
		}
	}
	h, err := NewPerRequest(opt, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, root
}

// serve runs one request through h; target is sent as is (escapes included).
func serve(h http.Handler, method, target string, body io.Reader, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, body)
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			r.Host = header[i+1]
			continue
		}
		r.Header.Add(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// The CGI variables of a script with PATH_INFO, as nginx's fastcgi_params give them, and the
// answer's Status header as the status.
func TestPerRequestParams(t *testing.T) {
	f := &fakeFCGI{}
	h, root := perRequestHandler(t, f, Options{})
	w := serve(h, "GET", "/info.php/extra/path?q=1&r=%2F", nil, "Host", "example.org:8080", "X-Foo", "bar", "Authorization", "Basic dXNlcjpwdw==", "X_Under", "dropped")
	if w.Code != 201 || w.Body.String() != "hello" || w.Header().Get("Content-Type") != "text/plain;charset=UTF-8" || w.Header().Get("X-Powered-By") != "PHP" {
		t.Errorf("answer: %d %q %v; want 201, hello, the head's fields", w.Code, w.Body.String(), w.Header())
	}
	want := map[string]string{
		"SCRIPT_NAME": "/info.php", "PATH_INFO": "/extra/path", "SCRIPT_FILENAME": root + "/info.php",
		"DOCUMENT_URI": "/info.php", "DOCUMENT_ROOT": root, "REQUEST_URI": "/info.php/extra/path?q=1&r=%2F",
		"QUERY_STRING": "q=1&r=%2F", "REQUEST_METHOD": "GET", "CONTENT_LENGTH": "", "CONTENT_TYPE": "",
		"REDIRECT_STATUS": "200", "SERVER_SOFTWARE": "askr/test", "HTTP_HOST": "example.org:8080", "SERVER_NAME": "example.org",
		"REMOTE_USER": "user", "HTTP_X_FOO": "bar", "GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_SCHEME": "http",
	}
	for k, v := range want {
		if got, ok := f.params[k]; !ok || got != v {
			t.Errorf("param %s = %q (sent: %v); want %q", k, got, ok, v)
		}
	}
	for _, k := range []string{"PHP_SELF", "HTTP_X_UNDER", "HTTPS"} {
		if _, ok := f.params[k]; ok {
			t.Errorf("param %s sent; want it absent", k)
		}
	}
	if got := strings.Join(f.names[:4], " "); got != "QUERY_STRING REQUEST_METHOD CONTENT_TYPE CONTENT_LENGTH" {
		t.Errorf("first params %s; want nginx's order", got)
	}
}

// The front controller gets the original REQUEST_URI; a directory's index its own script.
func TestPerRequestFrontAndIndex(t *testing.T) {
	f := &fakeFCGI{}
	h, root := perRequestHandler(t, f, Options{})
	serve(h, "GET", "/2024/hello-world/?p=1", nil)
	if f.params["SCRIPT_NAME"] != "/index.php" || f.params["REQUEST_URI"] != "/2024/hello-world/?p=1" ||
		f.params["PATH_INFO"] != "" || f.params["DOCUMENT_URI"] != "/index.php" || f.params["SCRIPT_FILENAME"] != root+"/index.php" {
		t.Errorf("front controller params %v", f.params)
	}
	serve(h, "GET", "/wp-admin/", nil)
	if f.params["SCRIPT_NAME"] != "/wp-admin/index.php" || f.params["REQUEST_URI"] != "/wp-admin/" {
		t.Errorf("directory index params %v", f.params)
	}
}

// Bodies reach PHP whole with a CONTENT_LENGTH of their length, from memory or from the spool
// file; multipart bodies are not parsed (PHP does).
func TestPerRequestBodies(t *testing.T) {
	f := &fakeFCGI{}
	h, _ := perRequestHandler(t, f, Options{BodyBufferSize: 1024})
	for _, n := range []int{10, 5000} {
		body := strings.Repeat("x", n)
		w := serve(h, "POST", "/info.php", strings.NewReader(body), "Content-Type", "application/octet-stream")
		if w.Code != 201 || f.body != body || f.params["CONTENT_LENGTH"] != fmt.Sprint(n) {
			t.Errorf("POST of %d bytes: %d, PHP got %d bytes with CONTENT_LENGTH %q", n, w.Code, len(f.body), f.params["CONTENT_LENGTH"])
		}
	}
	mp := "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nabc\r\n--b--\r\n"
	serve(h, "POST", "/info.php", strings.NewReader(mp), "Content-Type", "multipart/form-data; boundary=b")
	if f.body != mp || f.params["CONTENT_TYPE"] != "multipart/form-data; boundary=b" {
		t.Errorf("multipart body reached PHP as %q, type %q; want it as sent", f.body, f.params["CONTENT_TYPE"])
	}
	calls := f.calls
	if w := serve(h, "POST", "/info.php", strings.NewReader(strings.Repeat("y", 2<<20))); w.Code != 413 || f.calls != calls {
		t.Errorf("POST over max_body_size: %d, %d calls to PHP; want 413 and none", w.Code, f.calls-calls)
	}
}

// Requests PHP never sees: static files (and what may not be served), redirects, bad paths.
func TestPerRequestWithoutPHP(t *testing.T) {
	f := &fakeFCGI{}
	h, _ := perRequestHandler(t, f, Options{})
	for _, tc := range []struct {
		method, target string
		code           int
		body, location string
	}{
		{"GET", "/style.css", 200, "body{}", ""},
		{"HEAD", "/style.css", 200, "", ""},
		{"GET", "/sub/%2e%2e/style.css", 200, "body{}", ""},
		{"GET", "/%2e%2e/etc/passwd", 400, "", ""},
		{"GET", "/sub/..%2f..%2fetc/passwd", 400, "", ""},
		{"POST", "/style.css", 405, "", ""},
		{"GET", "/.env", 404, "", ""},
		{"GET", "/.git/config", 404, "", ""},
		{"GET", "/%2egit/config", 404, "", ""},
		{"GET", "/A.PHP", 403, "", ""},
		{"GET", "/nope.php", 404, "", ""},
		{"GET", "http://example.org/wp-admin?a=1", 301, "", "http://example.org/wp-admin/?a=1"},
		{"GET", "/wp-content/uploads/pic.png", 200, "png", ""},
		{"GET", "/wp-content/index.php", 403, "", ""},
		{"POST", "/wp-content/uploads/pic.png", 405, "", ""},
	} {
		calls := f.calls
		w := serve(h, tc.method, tc.target, nil)
		if w.Code != tc.code || tc.body != "" && w.Body.String() != tc.body || w.Header().Get("Location") != tc.location || f.calls != calls {
			t.Errorf("%s %s = %d %q, Location %q, %d calls to PHP; want %d %q, Location %q, none",
				tc.method, tc.target, w.Code, w.Body.String(), w.Header().Get("Location"), f.calls-calls, tc.code, tc.body, tc.location)
		}
	}
}

// The pool is told the status php-cgi answered with (Outcome.Status), for a canary's verdict.
func TestPerRequestOutcomeStatus(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want int
	}{
		{"Content-Type: text/plain\r\n\r\nfine", 200},
		{"Status: 503 Service Unavailable\r\n\r\nbusy", 503},
		{"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\n", 404},
	} {
		f := &fakeFCGI{answer: func(w io.Writer) error { _, err := io.WriteString(w, tc.out); return err }}
		h, _ := perRequestHandler(t, f, Options{})
		if w := serve(h, "GET", "/info.php", nil); w.Code != tc.want || f.status != tc.want {
			t.Errorf("answer %q: client got %d, Outcome.Status %d; want %d", tc.out, w.Code, f.status, tc.want)
		}
	}
}

// A head PHP cannot have sent is a bad response (502).
func TestPerRequestBadHead(t *testing.T) {
	for _, head := range []string{"no colon here\r\n\r\n", "Status: 100 Continue\r\n\r\n", "Status: 200 OK\r\n"} {
		f := &fakeFCGI{answer: func(w io.Writer) error { _, err := io.WriteString(w, head); return err }}
		h, _ := perRequestHandler(t, f, Options{})
		if w := serve(h, "GET", "/info.php", nil); w.Code != 502 {
			t.Errorf("answer %q: status %d; want 502", head, w.Code)
		}
	}
}
