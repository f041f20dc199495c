package httpfront

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/pool"
)

func TestServable(t *testing.T) {
	for _, tc := range []struct {
		rel  string
		want bool
	}{
		{"style.css", true},
		{"img/logo.png", true},
		{".well-known/acme-challenge/x", true},
		{"index.php", false},
		{"Admin.PHP", false},
		{"a.php/b.css", false},
		{"app.phar", false},
		{".env", false},
		{".git/config", false},
		{"assets/.secret/x.js", false},
		{"sub/.htaccess", false},
		// PHP source under any name, includes, editor and deploy leftovers.
		{"x.php.bak", false},
		{"x.php~", false},
		{"x.phtml", false},
		{"X.PHTML", false},
		{"x.pht", false},
		{"x.php5", false},
		{"x.phps", false},
		{"x.php.orig", false},
		{"x.php.save", false},
		{"x.php.old", false},
		{"x.php.dist", false},
		{"dir.php/x.txt", false},
		{"x.inc", false},
		{"lib/DB.INC", false},
		{".x.php.swp", false},
		{"x.swp", false},
		{"x.swo", false},
		{"notes.txt~", false},
		{"site.bak", false},
		{"backup.bak/style.css", false},
		{"x.orig", false},
		{"x.rej", false},
		{"x.tmp", false},
		{"#x.php#", false},
		{"#notes#", false},
		// Assets that merely look alike.
		{"photo.old.png", true},
		{"vendor.bak.js", true},
		{"include.js", true},
		{"photo.jpg", true},
		{"a#b.txt", true},
		{"#", true},
		{"graph.phones.svg", true},
	} {
		if got := servable(tc.rel); got != tc.want {
			t.Errorf("servable(%q) = %v; want %v", tc.rel, got, tc.want)
		}
	}
}

func TestTargetServable(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"config.php", "real.txt", ".env"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"a.txt": "config.php", "b.txt": "real.txt", "c.txt": ".env", "d.txt": "a.txt", "e.txt": "missing"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	for rel, want := range map[string]bool{"real.txt": true, "b.txt": true, "a.txt": false, "c.txt": false, "d.txt": false, "e.txt": false, "none.txt": true} {
		if got := targetServable(dir, rel); got != want {
			t.Errorf("targetServable(%q) = %v; want %v", rel, got, want)
		}
	}
}

// A worker's answer through the handler and the responder: the Status header sets the status (as
// under php-fpm + nginx), the other headers pass in order, a flush sends what came before;
// a backend's failure becomes the status finish gives it.
func TestWorkerResponses(t *testing.T) {
	hdr := func(kv ...string) []channel.Header {
		var hs []channel.Header
		for i := 0; i+1 < len(kv); i += 2 {
			hs = append(hs, channel.Header{Name: kv[i], Value: kv[i+1]})
		}
		return hs
	}
	for _, tc := range []struct {
		name    string
		method  string
		status  int
		headers []channel.Header
		body    string
		flush   bool
		err     error
		code    int
		want    http.Header
		wantOut string
	}{
		{name: "plain", status: 200, headers: hdr("Content-Type", "text/html"), body: "hi", code: 200, want: http.Header{"Content-Type": {"text/html"}}, wantOut: "hi"},
		{name: "Status header", status: 200, headers: hdr("Status", "404 Not Found", "X-A", "1"), body: "nf", code: 404, want: http.Header{"X-A": {"1"}}, wantOut: "nf"},
		{name: "Status header out of range", status: 201, headers: hdr("status", "99 Low"), code: 201},
		{name: "Status header not a number", status: 202, headers: hdr("Status", "abc"), code: 202},
		{name: "repeated headers", status: 200, headers: hdr("Set-Cookie", "a=1", "Set-Cookie", "b=2"), code: 200, want: http.Header{"Set-Cookie": {"a=1", "b=2"}}},
		{name: "flushed", status: 200, body: "streamed", flush: true, code: 200, wantOut: "streamed"},
		{name: "timeout", err: pool.ErrTimeout, code: 504},
		{name: "bad response", err: fmt.Errorf("%w: bad head", pool.ErrBadResponse), code: 502},
		{name: "worker died", err: pool.ErrWorkerDied, code: 502},
		{name: "queue full", err: pool.ErrQueueFull, code: 503, want: http.Header{"Retry-After": {"1"}}},
		{name: "no worker", err: pool.ErrUnavailable, code: 503, want: http.Header{"Retry-After": {"1"}}},
		{name: "closing", err: pool.ErrClosed, code: 503, want: http.Header{"Retry-After": {"1"}}},
		{name: "anything else", err: errors.New("boom"), code: 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakePool{answer: phpAnswers(tc.err, tc.status, tc.headers, tc.flush, tc.body)}
			h, _ := workerHandler(t, f, Options{})
			method := tc.method
			if method == "" {
				method = "GET"
			}
			w := serve(h, method, "/app", nil)
			if w.Code != tc.code {
				t.Errorf("status %d; want %d", w.Code, tc.code)
			}
			for k, v := range tc.want {
				if !slices.Equal(w.Header()[k], v) {
					t.Errorf("header %s = %q; want %q", k, w.Header()[k], v)
				}
			}
			if tc.err == nil && w.Body.String() != tc.wantOut {
				t.Errorf("body %q; want %q", w.Body.String(), tc.wantOut)
			}
			if tc.err == nil && f.status != tc.code { // what a reload's canary is judged on
				t.Errorf("Outcome.Status %d; want %d", f.status, tc.code)
			}
			if _, ok := w.Header()["Status"]; ok {
				t.Errorf("a Status header reached the client: %v", w.Header())
			}
		})
	}
}

// phpAnswers is a fake worker's answer: err from the pool, or a head, a flush if asked, and body.
func phpAnswers(err error, status int, headers []channel.Header, flush bool, body string) func(channel.Response) error {
	return func(resp channel.Response) error {
		if err != nil {
			return err
		}
		if err := resp.Head(status, headers); err != nil {
			return err
		}
		if flush {
			if err := resp.Flush(); err != nil {
				return err
			}
		}
		return resp.Body([]byte(body))
	}
}
