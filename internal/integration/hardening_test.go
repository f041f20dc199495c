package integration

// Abuse a client can try on askrd, in both modes (worker mode, CoW mode with ASKR_TEST_COW=1, and
// per-request mode), on one document root whose PHP front controller records every request it
// runs: malformed and smuggling request bodies, PHP sources and editor leftovers asked for as
// static files, oversize bodies, slow headers, paths that climb out of the root.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hardened is askrd on a root whose front controller, index.php, appends each REQUEST_URI it runs
// to a file: in worker mode the worker script runs it for every request, in per-request mode
// php-cgi runs it as try_files would.
type hardened struct {
	*server
	perRequest bool
	root       string
	hits       string // the front controller's record
}

// startHardened starts askrd in the given mode on a fresh root holding files, with config.
func startHardened(t *testing.T, perRequest bool, files map[string]string, config string) *hardened {
	t.Helper()
	dir := t.TempDir()
	root, hits := filepath.Join(dir, "root"), filepath.Join(dir, "hits")
	front := fmt.Sprintf("<?php\nfile_put_contents(%q, $_SERVER['REQUEST_URI'] . \"\\n\", FILE_APPEND | LOCK_EX);\n"+
		"echo 'front ', strlen((string) file_get_contents('php://input'));\n", hits)
	worker := fmt.Sprintf("<?php\ndeclare(strict_types=1);\naskr_cow_ready();\n"+
		"while (askr_handle_request(static function (): void { require %q; })) {\n}\n", filepath.Join(root, "index.php"))
	all := map[string]string{"root/index.php": front, "worker.php": worker, "outside.txt": "OUTSIDE-MARKER"}
	for name, content := range files {
		all["root/"+name] = content
	}
	for name, content := range all {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := opts{root: root, perRequest: perRequest, config: config, args: []string{"--workers", "2"}}
	if !perRequest {
		o.script = filepath.Join(dir, "worker.php")
	}
	return &hardened{server: startAskrd(t, o), perRequest: perRequest, root: root, hits: hits}
}

// ran reports whether the front controller ran a request whose REQUEST_URI is uri.
func (h *hardened) ran(uri string) bool {
	b, err := os.ReadFile(h.hits)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		h.t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if line == uri {
			return true
		}
	}
	return false
}

// bothModes runs test in worker mode (CoW with ASKR_TEST_COW=1) and in per-request mode.
func bothModes(t *testing.T, test func(t *testing.T, perRequest bool)) {
	t.Run("worker", func(t *testing.T) { test(t, false) })
	t.Run("per-request", func(t *testing.T) {
		if cowMode() {
			t.Skip("per-request mode has no CoW variant; it runs in the normal pass")
		}
		test(t, true)
	})
}

// rawRequest sends raw on a new connection (then shuts its sending side if halfClose) and
// returns the first response and its body. askrd must then close the connection, sending nothing
// more: raw must end it (Connection: close, or a request askrd answers so).
func rawRequest(t *testing.T, addr, raw string, halfClose bool) (resp *http.Response, body string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	if halfClose {
		c.(*net.TCPConn).CloseWrite()
	}
	br := bufio.NewReader(c)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", raw, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the answer's body to %q: %v", raw, err)
	}
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Errorf("after the answer to %q: %v; want the connection closed", raw, err)
	}
	if len(rest) > 0 {
		t.Errorf("after the answer to %q askrd sent %q; want nothing", raw, rest)
	}
	return resp, string(b)
}

// A malformed or cut chunked body is the client's error: 400 before PHP runs, no ERROR line.
func TestMalformedChunkedBody(t *testing.T) {
	bothModes(t, func(t *testing.T, perRequest bool) {
		h := startHardened(t, perRequest, nil, "")
		head := "POST /%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
		for _, tc := range []struct{ name, body string }{
			{"bad-hex", "zz\r\nhello\r\n0\r\n\r\n"},
			{"overflow", "1ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"},
			{"bare-lf", "5\nhello\n0\n\n"},
			{"no-crlf-after-data", "5\r\nhelloXX0\r\n\r\n"},
			{"truncated", "100\r\nhello"},
		} {
			resp, body := rawRequest(t, h.Addr, fmt.Sprintf(head, tc.name)+tc.body, tc.name == "truncated")
			if resp.StatusCode != 400 {
				t.Errorf("%s chunked body: %d %q; want 400", tc.name, resp.StatusCode, body)
			}
			if h.ran("/" + tc.name) {
				t.Errorf("%s chunked body reached PHP", tc.name)
			}
		}
		// A well-formed chunked body still reaches PHP whole.
		resp, body := rawRequest(t, h.Addr, fmt.Sprintf(head, "good")+"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", false)
		if resp.StatusCode != 200 || body != "front 11" || !h.ran("/good") {
			t.Errorf("good chunked body: %d %q, ran %v; want 200 \"front 11\"", resp.StatusCode, body, h.ran("/good"))
		}
		if logs := h.logs.String(); strings.Contains(logs, "level=ERROR") {
			t.Errorf("malformed request bodies were logged as errors:\n%s", logs)
		}
	})
}

// A request with both Content-Length and Transfer-Encoding: chunked is framed by its chunks, and
// its connection ends with the answer, so a request smuggled after the last chunk (which a proxy
// framing by Content-Length would take for part of the body) never runs.
func TestSmuggledRequestNeverRuns(t *testing.T) {
	bothModes(t, func(t *testing.T, perRequest bool) {
		h := startHardened(t, perRequest, nil, "")
		smuggled := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
		body := "0\r\n\r\n" + smuggled
		raw := fmt.Sprintf("POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%s", len(body), body)
		resp, answer := rawRequest(t, h.Addr, raw, false)
		if resp.StatusCode != 200 || answer != "front 0" || !h.ran("/first") {
			t.Errorf("POST /first = %d %q, ran %v; want 200 \"front 0\" from PHP", resp.StatusCode, answer, h.ran("/first"))
		}
		if !resp.Close {
			t.Errorf("POST /first answered without Connection: close (%v)", resp.Header)
		}
		if h.ran("/smuggled") {
			t.Errorf("the request smuggled after the last chunk ran in PHP")
		}
	})
}

// PHP sources under any name, includes and editor or deploy leftovers are never served, nor run
// unless they are .php; ordinary static files, also ones whose names look alike, still are.
// Worker mode gives them to the front controller (as .php and dotfiles); per-request mode answers
// 403 (404 for a dotfile, as for any dotfile).
func TestLeftoversNeverServed(t *testing.T) {
	src := "<?php echo 'RAN-' . 'MARKER'; // SOURCE-MARKER\n"
	never := map[string]string{
		"x.php.bak": "/x.php.bak", "x.php~": "/x.php~", "x.phtml": "/x.phtml", "X.PHTML": "/X.PHTML", "x.inc": "/x.inc",
		"lib/db.inc": "/lib/db.inc", "x.swp": "/x.swp", "x.swo": "/x.swo", ".x.php.swp": "/.x.php.swp",
		"x.php.orig": "/x.php.orig", "x.php.save": "/x.php.save", "x.php.old": "/x.php.old", "x.php.dist": "/x.php.dist",
		"x.php5": "/x.php5", "x.phps": "/x.phps", "#x.php#": "/%23x.php%23", "notes.txt~": "/notes.txt~",
		"site.bak": "/site.bak", "config.orig": "/config.orig",
	}
	served := map[string]string{"style.css": "body{}", "photo.old.png": "PNG", "vendor.bak.js": "js()", "sub/page.html": "<p>"}
	files := map[string]string{}
	for name := range never {
		files[name] = src
	}
	for name, content := range served {
		files[name] = content
	}
	bothModes(t, func(t *testing.T, perRequest bool) {
		h := startHardened(t, perRequest, files, "")
		for name, content := range served {
			if r := h.get("/" + name); r.status != 200 || r.body != content {
				t.Errorf("GET /%s = %d %q; want 200 %q", name, r.status, r.body, content)
			}
		}
		for name, path := range never {
			r := h.get(path)
			if strings.Contains(r.body, "SOURCE-MARKER") || strings.Contains(r.body, "RAN-MARKER") {
				t.Errorf("GET %s = %d %q: served or run", path, r.status, r.body)
			}
			want := 403
			switch {
			case !perRequest:
				want = 404 // askrd's own: the front controller never sees it
				if h.ran(path) {
					t.Errorf("GET %s ran the front controller; want askrd's 404", path)
				}
			case strings.HasPrefix(name, "."):
				want = 404
			}
			if r.status != want {
				t.Errorf("GET %s = %d %q; want %d", path, r.status, r.body, want)
			}
		}
	})
}

// A body over max_body_size is refused with 413 before PHP runs, declared or chunked.
func TestOversizeBodyBeforePHP(t *testing.T) {
	bothModes(t, func(t *testing.T, perRequest bool) {
		h := startHardened(t, perRequest, nil, "[server]\nmax_body_size = \"64K\"\n")
		big := strings.Repeat("x", 64<<10+1)
		if r := h.do("POST", "/declared", strings.NewReader(big)); r.status != 413 {
			t.Errorf("POST of 64K+1 with Content-Length = %d; want 413", r.status)
		}
		req, err := http.NewRequest("POST", h.URL+"/chunked", io.MultiReader(strings.NewReader(big)))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("chunked POST of 64K+1 = %d; want 413", resp.StatusCode)
		}
		if r := h.do("POST", "/fits", strings.NewReader(big[1:])); r.status != 200 || r.body != "front 65536" {
			t.Errorf("POST of 64K = %d %q; want 200 \"front 65536\"", r.status, r.body)
		}
		for _, p := range []string{"/declared", "/chunked"} {
			if h.ran(p) {
				t.Errorf("%s: an oversize body reached PHP", p)
			}
		}
	})
}

// Connections that never finish their headers (slowloris) are closed at header_read_timeout and
// do not keep others from being served.
func TestSlowHeadersClosed(t *testing.T) {
	bothModes(t, func(t *testing.T, perRequest bool) {
		h := startHardened(t, perRequest, map[string]string{"ping.txt": "pong"}, "[server]\nheader_read_timeout = 1\n")
		conns := make([]net.Conn, 20)
		for i := range conns {
			c, err := net.DialTimeout("tcp", h.Addr, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ") // never finished
			conns[i] = c
		}
		if r := h.get("/ping.txt"); r.status != 200 || r.body != "pong" {
			t.Errorf("GET /ping.txt beside 20 slow connections = %d %q", r.status, r.body)
		}
		if r := h.get("/ping"); r.status != 200 || !strings.HasPrefix(r.body, "front") {
			t.Errorf("GET /ping (PHP) beside 20 slow connections = %d %q", r.status, r.body)
		}
		for i, c := range conns {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err := io.ReadAll(c) // a 408 or nothing, then EOF
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("slow connection %d still open 10 s later with header_read_timeout = 1", i)
			}
		}
		if h.ran("/") {
			t.Errorf("a request with unfinished headers reached PHP")
		}
	})
}

// No spelling of ".." reads a file outside the root: 400, or (worker mode, where the path is
// the app's) the front controller's answer; never the file.
func TestTraversalForms(t *testing.T) {
	bothModes(t, func(t *testing.T, perRequest bool) {
		h := startHardened(t, perRequest, map[string]string{"sub/a.txt": "a"}, "")
		for _, p := range []string{
			"/../outside.txt", "/sub/../../outside.txt", "/%2e%2e/outside.txt", "/%2E%2E/outside.txt",
			"/sub/%2e%2e/%2e%2e/outside.txt", "/..%2foutside.txt", "/sub/..%2f..%2foutside.txt",
			"/.%2e/outside.txt", "/%2e./outside.txt", "/sub/.%2e/.%2e/outside.txt", "//../outside.txt",
			"/%252e%252e/outside.txt", "/sub/..\\..\\outside.txt", "/sub/%2e%2e%5c%2e%2e%5coutside.txt",
		} {
			resp, body := rawRequest(t, h.Addr, "GET "+p+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false)
			if strings.Contains(body, "OUTSIDE-MARKER") {
				t.Errorf("GET %s = %d: served a file outside the root", p, resp.StatusCode)
			}
			if resp.StatusCode != 400 && resp.StatusCode != 404 && !(resp.StatusCode == 200 && strings.HasPrefix(body, "front")) {
				t.Errorf("GET %s = %d %q; want 400, 404 or the front controller", p, resp.StatusCode, body)
			}
		}
	})
}
