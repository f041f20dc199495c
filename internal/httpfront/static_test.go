package httpfront

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// bothModes is a worker-mode and a per-request Handler on one routeRoot document root (and alias).
type bothModes struct {
	worker, perRequest *Handler
	pool               *fakePool
	fcgi               *fakeFCGI
	root               string
}

func newBothModes(t *testing.T) bothModes {
	t.Helper()
	root, aliasDir := routeRoot(t)
	opt := Options{Root: root, Front: "index.php", Software: "askr/test", SpoolDir: t.TempDir(),
		MaxBodySize: 1 << 20, BodyBufferSize: 64 << 10, Aliases: []Alias{{Prefix: "/wp-content/", Dir: aliasDir}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	b := bothModes{pool: &fakePool{t: t}, fcgi: &fakeFCGI{}, root: root}
	b.fcgi.answer = func(w io.Writer) error {
		_, err := io.WriteString(w, "Content-type: text/plain\r\n\r\nphp")
		return err
	}
	var err error
	if b.worker, err = New(opt, b.pool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.worker.Close() })
	if b.perRequest, err = NewPerRequest(opt, b.fcgi); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.perRequest.Close() })
	return b
}

// outcome sends one request to each mode and says what each did: "php <SCRIPT_NAME>", "file
// <body>" or the status of askrd's own answer.
func (b bothModes) outcome(method, target string) (worker, perRequest string) {
	say := func(w *httptest.ResponseRecorder, ranPHP bool, script string) string {
		switch {
		case ranPHP:
			return "php " + script
		case w.Code == 200:
			return "file " + w.Body.String()
		}
		return http.StatusText(w.Code)
	}
	calls := b.pool.calls
	w := serve(b.worker, method, target, nil)
	worker = say(w, b.pool.calls > calls, b.pool.got.server.str("SCRIPT_NAME"))
	calls = b.fcgi.calls
	w = serve(b.perRequest, method, target, nil)
	perRequest = say(w, b.fcgi.calls > calls, b.fcgi.params["SCRIPT_NAME"])
	return worker, perRequest
}

// One static-file path: both modes serve a file with the same answer — type, ETag, Last-Modified,
// length, ranges, conditional requests — as both go through the router's tree.static and serveFile.
func TestOneStaticFilePath(t *testing.T) {
	b := newBothModes(t)
	etag := serve(b.worker, "GET", "/style.css", nil).Header().Get("Etag")
	if etag == "" {
		t.Fatal("GET /style.css in worker mode: no ETag")
	}
	for _, tc := range []struct {
		method, target string
		header         []string
		code           int
	}{
		{"GET", "/style.css", nil, 200},
		{"HEAD", "/style.css", nil, 200},
		{"GET", "/style.css", []string{"Range", "bytes=1-3"}, 206},
		{"GET", "/style.css", []string{"If-None-Match", etag}, 304},
		{"GET", "/.well-known/acme-challenge/token", nil, 200},
		{"GET", "/wp-content/uploads/pic.png", nil, 200},
		{"GET", "/link-out/out.js", nil, 200},
	} {
		w := serve(b.worker, tc.method, tc.target, nil, tc.header...)
		p := serve(b.perRequest, tc.method, tc.target, nil, tc.header...)
		if w.Code != tc.code || p.Code != tc.code || w.Body.String() != p.Body.String() {
			t.Errorf("%s %s %v: worker mode %d %q, per-request %d %q; want %d and the same body", tc.method, tc.target, tc.header, w.Code, w.Body.String(), p.Code, p.Body.String(), tc.code)
		}
		for _, k := range []string{"Content-Type", "Etag", "Last-Modified", "Content-Length", "Content-Range", "Accept-Ranges"} {
			if w.Header().Get(k) != p.Header().Get(k) {
				t.Errorf("%s %s %v: %s %q in worker mode, %q per request; want the same", tc.method, tc.target, tc.header, k, w.Header().Get(k), p.Header().Get(k))
			}
		}
	}
	if b.pool.calls != 0 || b.fcgi.calls != 0 {
		t.Errorf("static files ran PHP: %d worker, %d FastCGI calls", b.pool.calls, b.fcgi.calls)
	}
}

// One symbolic-link policy (tree): in both modes a link out of the root is followed only to a
// public file of the link's owner; what it refuses is never served, in either mode.
func TestOneSymlinkPolicy(t *testing.T) {
	b := newBothModes(t)
	for _, tc := range []struct {
		target             string
		worker, perRequest string
	}{
		{"/link-in/a.php", "php /index.php", "php /link-in/a.php"}, // inside the root: followed
		{"/link-out/out.js", "file js", "file js"},                 // public, same owner: followed
		{"/link-private.txt", "php /index.php", "Forbidden"},       // private: refused
		{"/link-loop", "php /index.php", "Forbidden"},
		{"/link-foreign.txt", "php /index.php", "Forbidden"}, // another owner's file (set up when run as root)
	} {
		if tc.target == "/link-foreign.txt" && os.Geteuid() != 0 {
			continue
		}
		w, p := b.outcome("GET", tc.target)
		if w != tc.worker || p != tc.perRequest {
			t.Errorf("GET %s: worker mode %q, per-request %q; want %q, %q", tc.target, w, p, tc.worker, tc.perRequest)
		}
	}
	rt, err := openTree(b.root)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	for rel, want := range map[string]error{"link-out/out.js": nil, "link-private.txt": errPrivateTarget, "link-foreign.txt": errForeignLink} {
		if rel == "link-foreign.txt" && os.Geteuid() != 0 {
			continue
		}
		_, err := rt.stat(rel)
		if want == nil && err != nil || want != nil && !strings.Contains(err.Error(), want.Error()) {
			t.Errorf("tree.stat(%s) error = %v; want %v", rel, err, want)
		}
	}
}
