package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// plainStep is one request of the plain app scenario, sent to askrd and to nginx + php-fpm alike.
type plainStep struct {
	name         string
	method, path string
	body         func(t *testing.T) (io.Reader, string) // the body and its Content-Type, or nil
	header       []string
	session      bool // sent with the scenario's cookie jar
	status       int  // the status both must answer
	// What must be the same besides the status: the body and the response headers named (both
	// normalised). Error pages (404, 301, …) are the servers' own and differ.
	sameBody bool
	headers  []string
}

// plainSteps is the scenario: superglobals, uploads, php://input, PATH_INFO and try_files routing,
// header(), setcookie(), status codes, sessions, static files, errors.
func plainSteps() []plainStep {
	form := url.Values{"name": {"askr"}, "list[]": {"x", "y"}, "nested[a][b]": {"deep"}}.Encode()
	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	phpHeaders := []string{"Content-Type", "X-Powered-By", "Set-Cookie", "X-One", "X-Multi", "X-Replaced", "X-Removed", "Location"}
	return []plainStep{
		{name: "GET with PATH_INFO, query, cookies, header", method: "GET", path: "/request.php/extra/path?a=1&b[]=2&b[]=3&e=%C3%A9",
			header: []string{"Cookie", "c1=v1; c2=v%202; arr[x]=1", "X-Custom", "yes"}, status: 200, sameBody: true, headers: phpHeaders},
		{name: "PATH_INFO of a slash", method: "GET", path: "/request.php/", status: 200, sameBody: true},
		{name: "the root's index", method: "GET", path: "/?x=1", status: 200, sameBody: true},
		{name: "front controller for a pretty URL", method: "GET", path: "/2024/some-post/?p=1", status: 200, sameBody: true},
		{name: "front controller for a missing file", method: "GET", path: "/missing.css", status: 200, sameBody: true},
		{name: "a directory's index", method: "GET", path: "/sub/", status: 200, sameBody: true},
		{name: "a directory without its slash", method: "GET", path: "/sub?q=1", status: 301, headers: []string{"Location"}},
		{name: "POST form", method: "POST", path: "/request.php?q=1", status: 200, sameBody: true,
			body: func(*testing.T) (io.Reader, string) {
				return strings.NewReader(form), "application/x-www-form-urlencoded"
			}},
		{name: "POST upload", method: "POST", path: "/request.php", status: 200, sameBody: true,
			body: func(t *testing.T) (io.Reader, string) {
				return uploadBody(t, "title", "a file", "notes.txt", bytes.Repeat([]byte("upload line\n"), 5000))
			}},
		{name: "POST 3 MiB to php://input", method: "POST", path: "/request.php", status: 200, sameBody: true,
			body: func(*testing.T) (io.Reader, string) { return bytes.NewReader(big), "application/octet-stream" }},
		{name: "PUT JSON", method: "PUT", path: "/request.php", status: 200, sameBody: true,
			body: func(*testing.T) (io.Reader, string) { return strings.NewReader(`{"a":1}`), "application/json" }},
		{name: "HEAD", method: "HEAD", path: "/request.php", status: 200, sameBody: true, headers: []string{"Content-Type"}},
		{name: "headers and http_response_code", method: "GET", path: "/headers.php?status=code", status: 202, sameBody: true, headers: phpHeaders},
		{name: "Status header", method: "GET", path: "/headers.php?status=header", status: 404, sameBody: true, headers: phpHeaders},
		{name: "HTTP/1.1 status line", method: "GET", path: "/headers.php?status=line", status: 410, sameBody: true, headers: phpHeaders},
		{name: "Location", method: "GET", path: "/headers.php?status=location", status: 302, sameBody: true, headers: phpHeaders},
		{name: "session start", method: "GET", path: "/session.php", session: true, status: 200, sameBody: true, headers: phpHeaders},
		{name: "session resumed", method: "GET", path: "/session.php", session: true, status: 200, sameBody: true, headers: phpHeaders},
		{name: "session resumed again", method: "GET", path: "/session.php", session: true, status: 200, sameBody: true, headers: phpHeaders},
		{name: "fatal error", method: "GET", path: "/fatal.php", status: 500, sameBody: true, headers: []string{"Content-Type"}},
		{name: "static file", method: "GET", path: "/style.css", status: 200, sameBody: true},
		{name: "static index.html", method: "GET", path: "/docs/", status: 200, sameBody: true},
		{name: ".well-known", method: "GET", path: "/.well-known/acme-challenge/token", status: 200, sameBody: true},
		{name: "missing script", method: "GET", path: "/nope.php", status: 404},
		{name: "missing script with PATH_INFO", method: "GET", path: "/nope.php/x", status: 404},
		{name: "directory without an index", method: "GET", path: "/empty/", status: 403},
		{name: "POST to a static file", method: "POST", path: "/style.css", status: 405,
			body: func(*testing.T) (io.Reader, string) {
				return strings.NewReader("x=1"), "application/x-www-form-urlencoded"
			}},
	}
}

// plainObservation is what a server answered to one step, normalised.
type plainObservation struct {
	status  int
	headers map[string]string
	body    string
}

var sessionID = regexp.MustCompile(`PHPSESSID=[0-9a-z]+`)

// normaliser removes from answers what must differ between servers: the base URL's port, the
// server's name for itself and its software, the session id.
func normaliser(base string) func(string) string {
	u, _ := url.Parse(base)
	return func(s string) string {
		s = strings.ReplaceAll(s, u.Host, "HOST:PORT")
		s = strings.ReplaceAll(s, `"SERVER_PORT": "`+u.Port()+`"`, `"SERVER_PORT": "PORT"`)
		s = sessionID.ReplaceAllString(s, "PHPSESSID=ID")
		return s
	}
}

// normaliseJSON rewrites request.php's $_SERVER values that name the server itself.
func normaliseJSON(body string) string {
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		return body
	}
	if srv, ok := v["server"].(map[string]any); ok {
		srv["SERVER_SOFTWARE"] = "SOFTWARE" // nginx/1.22.1 vs askr/…: both name themselves
		srv["SERVER_NAME"] = "NAME"         // nginx's server_name vs the Host's name
	}
	if _, ok := v["sapi"]; ok {
		v["sapi"] = "SAPI" // fpm-fcgi vs cgi-fcgi
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// runPlainScenario sends every step to base and returns the normalised answers.
func runPlainScenario(t *testing.T, base string) []plainObservation {
	t.Helper()
	norm := normaliser(base)
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	plain := &http.Client{Transport: tr, Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	withJar := &http.Client{Transport: tr, Jar: jar, Timeout: 60 * time.Second, CheckRedirect: plain.CheckRedirect}
	var obs []plainObservation
	for _, st := range plainSteps() {
		var body io.Reader
		ctype := ""
		if st.body != nil {
			body, ctype = st.body(t)
		}
		req, err := http.NewRequest(st.method, base+st.path, body)
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		for i := 0; i+1 < len(st.header); i += 2 {
			req.Header.Set(st.header[i], st.header[i+1])
		}
		c := plain
		if st.session {
			c = withJar
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %s %s: %v", st.name, st.method, st.path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: reading the body: %v", st.name, err)
		}
		o := plainObservation{status: resp.StatusCode, headers: map[string]string{}}
		for _, h := range st.headers {
			o.headers[h] = norm(strings.Join(resp.Header.Values(h), " | "))
		}
		if st.sameBody {
			o.body = normaliseJSON(norm(string(b)))
		}
		obs = append(obs, o)
	}
	return obs
}

// TestPlainAppLikePHPFPM runs one plain PHP app (testdata/plain) behind nginx + php-fpm and behind
// askrd's per-request mode, sends both the same requests, and wants the same answers: status,
// PHP's headers and bodies (superglobals, uploads, php://input, PATH_INFO, sessions, …), with only
// the ports, the servers' names for themselves and session ids normalised.
func TestPlainAppLikePHPFPM(t *testing.T) {
	root := plainRoot(t)
	fpmBase := startNginxFPM(t, root)
	askrd := startAskrd(t, opts{perRequest: true, root: root, args: []string{"--workers", "4", "--max-body-size", "64M"}})
	fpm := runPlainScenario(t, fpmBase)
	ours := runPlainScenario(t, askrd.URL)
	steps := plainSteps()
	for i, st := range steps {
		f, a := fpm[i], ours[i]
		if f.status != st.status {
			t.Errorf("%s: nginx + php-fpm answered %d; the scenario wants %d (body %q)", st.name, f.status, st.status, f.body)
		}
		if a.status != f.status {
			t.Errorf("%s: askrd answered %d, nginx + php-fpm %d", st.name, a.status, f.status)
		}
		var names []string
		for h := range f.headers {
			names = append(names, h)
		}
		sort.Strings(names)
		for _, h := range names {
			if a.headers[h] != f.headers[h] {
				t.Errorf("%s: header %s: askrd %q, nginx + php-fpm %q", st.name, h, a.headers[h], f.headers[h])
			}
		}
		if a.body != f.body {
			t.Errorf("%s: bodies differ:\n%s", st.name, lineDiff(a.body, f.body))
		}
	}
	// The comparison is only worth something if the answers are the right ones: spot checks.
	checks := []struct {
		step int
		want string
	}{
		{0, `"PATH_INFO": "/extra/path"`}, {0, `"c2": "v 2"`}, {0, `"e": "é"`},
		{3, `"REQUEST_URI": "/2024/some-post/?p=1"`}, {3, `"SCRIPT_NAME": "/index.php"`},
		{5, `"SCRIPT_NAME": "/sub/index.php"`},
		{7, `"deep"`}, {8, `"is_uploaded_file": true`}, {8, `"move_uploaded_file": true`},
		{9, `"input_length": 3145728`}, {10, `"input_length": 7`},
		{16, `"n": 1`}, {18, `"n": 3`},
		{20, "body { color: #333; }"},
	}
	for _, c := range checks {
		if !strings.Contains(fpm[c.step].body, c.want) {
			t.Errorf("%s: nginx + php-fpm's body lacks %q:\n%s", steps[c.step].name, c.want, fpm[c.step].body)
		}
	}
	if h := fpm[16].headers["Set-Cookie"]; !strings.HasPrefix(h, "PHPSESSID=ID; path=/") || fpm[17].headers["Set-Cookie"] != "" {
		t.Errorf("sessions: Set-Cookie %q then %q; want a session cookie once", h, fpm[17].headers["Set-Cookie"])
	}
}

// lineDiff shows the lines of a and b that differ.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			fmt.Fprintf(&out, "  askrd: %s\n  fpm:   %s\n", x, y)
		}
	}
	return out.String()
}
