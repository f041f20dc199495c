package integration

// Per-request mode (no worker script): askrd runs each request's PHP file afresh in php-cgi
// processes speaking FastCGI, routed as nginx's try_files does. The app is testdata/plain, a plain
// PHP app; TestPlainAppLikePHPFPM runs the same requests against nginx + php-fpm.

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// plainRoot is the plain PHP app's document root.
func plainRoot(t testing.TB) string {
	return filepath.Join(repoRoot(t), "internal", "integration", "testdata", "plain")
}

// startPerRequest starts askrd in per-request mode on the plain app.
func startPerRequest(t testing.TB, args ...string) *server {
	t.Helper()
	return startAskrd(t, opts{perRequest: true, root: plainRoot(t), args: args})
}

// rawGet sends path as it is, unnormalised, and returns the status code.
func rawGet(t *testing.T, addr, path string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// What is never served or run in per-request mode: dotfiles and dot directories (but
// .well-known), PHP sources under any spelling, anything above the root however encoded.
func TestPerRequestStaticAndHiddenRules(t *testing.T) {
	s := startPerRequest(t)
	for _, tc := range []struct {
		path   string
		status int
		body   string // the body, or a part of it; "" checks nothing
	}{
		{"/style.css", 200, "body { color: #333; }\n"},
		{"/docs/", 200, "<p>docs index</p>\n"},
		{"/.well-known/acme-challenge/token", 200, "acme-token\n"},
		{"/secret.php", 200, "ran\n"},
		{"/Upper.PHP", 403, ""},
		{"/app.phar", 403, ""},
		{"/.env", 404, ""},
		{"/.hidden/secret.txt", 404, ""},
		{"/.hidden/run.php", 404, ""},
		{"/%2ehidden/run.php", 404, ""},
		{"/sub/../.env", 404, ""},
		{"/empty/", 403, ""},
		{"/nope.php", 404, ""},
		{"/nope.php/extra", 404, ""},
	} {
		r := s.get(tc.path)
		if r.status != tc.status || tc.body != "" && r.body != tc.body {
			t.Errorf("GET %s = %d %q; want %d %q", tc.path, r.status, r.body, tc.status, tc.body)
		}
		if strings.Contains(r.body, "SOURCE-MARKER") || strings.Contains(r.body, "SECRET=dotenv") || strings.Contains(r.body, "hidden file") {
			t.Errorf("GET %s showed what must never be served: %q", tc.path, r.body)
		}
	}
	for _, path := range []string{"/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/sub/..%2f..%2f..%2fetc/passwd", "/sub/%2e%2e/%2e%2e/etc/passwd"} {
		if code := rawGet(t, s.Addr, path); code != 400 {
			t.Errorf("GET %s (raw) = %d; want 400", path, code)
		}
	}
	if code := rawGet(t, s.Addr, "/sub/%2e%2e/style.css"); code != 200 {
		t.Errorf("GET /sub/%%2e%%2e/style.css (raw) = %d; want 200 (it stays in the root)", code)
	}
	if r := s.do(http.MethodPost, "/style.css", strings.NewReader("x")); r.status != 405 {
		t.Errorf("POST /style.css = %d; want 405", r.status)
	}
	r := s.get("/sub?a=1")
	if loc := r.header.Get("Location"); r.status != 301 || loc != s.URL+"/sub/?a=1" {
		t.Errorf("GET /sub?a=1 = %d, Location %q; want 301 to %s/sub/?a=1", r.status, loc, s.URL)
	}
}

// plainResult is request.php's answer.
type plainResult struct {
	Get         map[string]any            `json:"get"`
	Post        map[string]any            `json:"post"`
	Cookie      map[string]any            `json:"cookie"`
	Files       map[string]map[string]any `json:"files"`
	Request     map[string]any            `json:"request"`
	InputLength int                       `json:"input_length"`
	InputMD5    string                    `json:"input_md5"`
	Server      map[string]*string        `json:"server"`
	TimeSet     bool                      `json:"request_time_set"`
	Cwd         string                    `json:"cwd"`
	SAPI        string                    `json:"sapi"`
	ObLevel     int                       `json:"ob_level"`
	HeadersSent bool                      `json:"headers_sent"`
}

func decodePlain(t *testing.T, what string, r response) plainResult {
	t.Helper()
	var p plainResult
	if r.status != 200 {
		t.Fatalf("%s: status %d; body %q", what, r.status, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		t.Fatalf("%s: %v in %q", what, err, r.body)
	}
	return p
}

func str(p *string) string {
	if p == nil {
		return "<unset>"
	}
	return *p
}

// uploadBody builds a multipart body with a field and a file.
func uploadBody(t *testing.T, field, value, name string, content []byte) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.SetBoundary("askr-test-boundary-0123456789") // the same for every server compared
	mw.WriteField(field, value)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="upload"; filename="`+name+`"`)
	h.Set("Content-Type", "text/plain")
	pw, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	pw.Write(content)
	mw.Close()
	return &b, mw.FormDataContentType()
}

// $_GET, $_POST, $_COOKIE, $_FILES (is_uploaded_file and move_uploaded_file work: PHP parsed the
// upload itself), php://input of a multi-MB body, and the CGI variables of a script with PATH_INFO.
func TestPerRequestSuperglobals(t *testing.T) {
	s := startPerRequest(t)
	// php-cgi has no fastcgi_finish_request() (php-fpm has).
	if r := s.get("/functions.php"); r.body != "{\"fastcgi_finish_request\":false}\n" {
		t.Errorf("/functions.php = %q", r.body)
	}
	p := decodePlain(t, "GET request.php/extra", s.get("/request.php/extra/path?a=1&b[]=2&b[]=3", "Cookie", "c1=v1; c2=v%202", "X-Custom", "yes"))
	if fmt.Sprint(p.Get) != "map[a:1 b:[2 3]]" || fmt.Sprint(p.Cookie) != "map[c1:v1 c2:v 2]" {
		t.Errorf("$_GET %v, $_COOKIE %v; want the query's and the cookies' values", p.Get, p.Cookie)
	}
	root := plainRoot(t)
	for k, want := range map[string]string{
		"SCRIPT_NAME": "/request.php", "PATH_INFO": "/extra/path", "PHP_SELF": "/request.php/extra/path",
		"SCRIPT_FILENAME": root + "/request.php", "DOCUMENT_ROOT": root, "REQUEST_URI": "/request.php/extra/path?a=1&b[]=2&b[]=3",
		"DOCUMENT_URI": "/request.php", "REDIRECT_STATUS": "200", "HTTP_X_CUSTOM": "yes",
		"HTTP_HOST": s.Addr, "REQUEST_METHOD": "GET",
	} {
		if got := str(p.Server[k]); got != want {
			t.Errorf("$_SERVER[%s] = %q; want %q", k, got, want)
		}
	}
	if sw := str(p.Server["SERVER_SOFTWARE"]); !strings.HasPrefix(sw, "askr/") {
		t.Errorf("SERVER_SOFTWARE = %q; want askr/…", sw)
	}
	if p.SAPI != "cgi-fcgi" || p.Cwd != root || !p.TimeSet {
		t.Errorf("PHP_SAPI %q, cwd %q, REQUEST_TIME set %v; want cgi-fcgi, the script's directory, true", p.SAPI, p.Cwd, p.TimeSet)
	}

	form := url.Values{"name": {"askr"}, "list[]": {"x", "y"}}
	p = decodePlain(t, "POST form", s.do(http.MethodPost, "/request.php?q=1", strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded"))
	if fmt.Sprint(p.Post) != "map[list:[x y] name:askr]" || str(p.Server["CONTENT_LENGTH"]) != strconv.Itoa(len(form.Encode())) {
		t.Errorf("$_POST %v, CONTENT_LENGTH %s; want the form's fields and length", p.Post, str(p.Server["CONTENT_LENGTH"]))
	}

	content := bytes.Repeat([]byte("upload line\n"), 10000)
	body, ctype := uploadBody(t, "title", "a file", "notes.txt", content)
	p = decodePlain(t, "POST upload", s.do(http.MethodPost, "/request.php", body, "Content-Type", ctype))
	sum := md5.Sum(content)
	f := p.Files["upload"]
	if f == nil || f["name"] != "notes.txt" || f["size"] != float64(len(content)) || f["error"] != float64(0) ||
		f["is_uploaded_file"] != true || f["md5"] != hex.EncodeToString(sum[:]) || f["move_uploaded_file"] != true ||
		f["moved_md5"] != hex.EncodeToString(sum[:]) || f["tmp_gone"] != true || fmt.Sprint(p.Post) != "map[title:a file]" {
		t.Errorf("upload: $_FILES %v, $_POST %v; want notes.txt, uploaded, moved", p.Files, p.Post)
	}

	// A 5 MiB body: spooled by askrd (over body_buffer_size) and streamed to PHP.
	big := make([]byte, 5<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	sum = md5.Sum(big)
	p = decodePlain(t, "POST 5 MiB", s.do(http.MethodPost, "/request.php", bytes.NewReader(big), "Content-Type", "application/octet-stream"))
	if p.InputLength != len(big) || p.InputMD5 != hex.EncodeToString(sum[:]) || str(p.Server["CONTENT_LENGTH"]) != strconv.Itoa(len(big)) {
		t.Errorf("php://input of 5 MiB: %d bytes, md5 %s, CONTENT_LENGTH %s; want %d, %x", p.InputLength, p.InputMD5, str(p.Server["CONTENT_LENGTH"]), len(big), sum)
	}
	// The same body chunked: askrd reads it and tells PHP its length.
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/request.php", io.MultiReader(bytes.NewReader(big)))
	req.ContentLength = -1
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	p = decodePlain(t, "POST 5 MiB chunked", response{status: resp.StatusCode, body: string(b)})
	if p.InputLength != len(big) || str(p.Server["CONTENT_LENGTH"]) != strconv.Itoa(len(big)) {
		t.Errorf("chunked body: php://input %d bytes, CONTENT_LENGTH %s; want %d", p.InputLength, str(p.Server["CONTENT_LENGTH"]), len(big))
	}
	s.noTempFiles()
	entries, _ := os.ReadDir(s.tmp) // PHP's own upload files (TMPDIR is passed on) are PHP's to remove
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "php") {
			t.Errorf("PHP's upload file %s left behind", e.Name())
		}
	}
}

// header(), setcookie(), the status from http_response_code() or a Status header, and sessions.
func TestPerRequestHeadersAndSessions(t *testing.T) {
	s := startPerRequest(t)
	r := s.get("/headers.php?status=code")
	if r.status != 202 || r.header.Get("X-One") != "1" || strings.Join(r.header.Values("X-Multi"), ",") != "a,b" ||
		r.header.Get("X-Replaced") != "new" || r.header.Get("X-Removed") != "" || r.header.Get("Content-Type") != "text/plain; charset=us-ascii" {
		t.Errorf("headers.php: %d %v; want 202 and the headers PHP set", r.status, r.header)
	}
	if got := strings.Join(r.header.Values("Set-Cookie"), " | "); got != "plain=v1 | opts=v%202%3Bx; path=/sub/; HttpOnly; SameSite=Lax" {
		t.Errorf("Set-Cookie = %q", got)
	}
	for q, want := range map[string]int{"header": 404, "line": 410, "location": 302} {
		if r := s.get("/headers.php?status=" + q); r.status != want {
			t.Errorf("headers.php?status=%s = %d; want %d", q, r.status, want)
		}
	}
	if r := s.get("/headers.php?status=location"); r.header.Get("Location") != "/elsewhere?x=1" {
		t.Errorf("Location = %q", r.header.Get("Location"))
	}

	r = s.get("/session.php")
	cookie := r.header.Get("Set-Cookie")
	id, _, _ := strings.Cut(cookie, ";")
	if r.status != 200 || !strings.HasPrefix(id, "PHPSESSID=") || !strings.Contains(r.body, `"n":1`) {
		t.Fatalf("first session.php: %d %q, Set-Cookie %q", r.status, r.body, cookie)
	}
	for n := 2; n <= 4; n++ {
		r = s.get("/session.php", "Cookie", id)
		if !strings.Contains(r.body, fmt.Sprintf(`"n":%d`, n)) || r.header.Get("Set-Cookie") != "" {
			t.Errorf("session.php with the cookie, visit %d: %q, Set-Cookie %q; want n=%d and no new cookie", n, r.body, r.header.Get("Set-Cookie"), n)
		}
	}
}

// Output PHP flushes reaches the client while the script still runs.
func TestPerRequestStreaming(t *testing.T) {
	s := startPerRequest(t)
	goFile := filepath.Join(t.TempDir(), "go")
	resp, err := client.Get(s.URL + "/stream.php?go=" + url.QueryEscape(goFile))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || first != "first chunk\n" {
		t.Fatalf("first line = %q, %v; want the flushed chunk before the script goes on", first, err)
	}
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "second chunk\n" {
		t.Errorf("rest = %q; want the second chunk", rest)
	}
}

// pidOf GETs pid.php.
func (s *server) pidOf(t *testing.T) string {
	t.Helper()
	r := s.get("/pid.php")
	if r.status != 200 || r.body == "" {
		t.Fatalf("GET /pid.php = %d %q", r.status, r.body)
	}
	return r.body
}

// max_requests recycles a process: each serves at most that many requests.
func TestPerRequestMaxRequests(t *testing.T) {
	s := startPerRequest(t, "--workers", "1", "--max-requests", "3")
	var pids []string
	for range 9 {
		pids = append(pids, s.pidOf(t))
	}
	for i := 0; i < 9; i += 3 {
		if pids[i] != pids[i+1] || pids[i] != pids[i+2] || i > 0 && pids[i] == pids[i-1] {
			t.Fatalf("pids of 9 requests with max_requests 3 on one process: %v; want a new process every 3", pids)
		}
	}
	if strings.Contains(s.logs.String(), "exited unexpectedly") {
		t.Errorf("a recycled process was reported as a crash:\n%s", s.logs.String())
	}
}

// A script that kills its own process gets 502; the process is replaced and the next request served.
func TestPerRequestCrash(t *testing.T) {
	s := startPerRequest(t, "--workers", "1")
	before := s.pidOf(t)
	if r := s.get("/crash.php"); r.status != 502 {
		t.Errorf("GET /crash.php = %d %q; want 502", r.status, r.body)
	}
	if after := s.pidOf(t); after == before {
		t.Errorf("pid after the crash = %s; want a new process", after)
	}
	// The crash ran once: a request that reached PHP is not retried elsewhere.
	if n := strings.Count(s.logs.String(), "exited unexpectedly"); n > 1 {
		t.Errorf("%d processes died for one crash.php; want 1:\n%s", n, s.logs.String())
	}
	if r := s.get("/fatal.php"); r.status != 500 {
		t.Errorf("GET /fatal.php = %d %q; want 500 as PHP says", r.status, r.body)
	}
	s.waitLog("PHP Fatal error:  Uncaught Error: Call to undefined function askr_no_such_function()", 10*time.Second)
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, "askr_no_such_function") && !strings.Contains(line, "level=ERROR") {
			t.Errorf("fatal error logged as %q; want level=ERROR", line)
		}
	}
}

// A script past request_timeout: 504, its process killed and replaced.
func TestPerRequestTimeout(t *testing.T) {
	s := startPerRequest(t, "--workers", "1", "--request-timeout", "1")
	before := s.pidOf(t)
	start := time.Now()
	if r := s.get("/sleep.php?s=30"); r.status != 504 {
		t.Errorf("GET /sleep.php = %d %q; want 504", r.status, r.body)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("504 after %v; want it at request_timeout (1s)", d)
	}
	if after := s.pidOf(t); after == before {
		t.Errorf("pid after the timeout = %s; want a new process", after)
	}
	if err := syscall.Kill(mustAtoi(t, before), 0); err == nil {
		t.Errorf("process %s still runs after its request timed out", before)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// SIGTERM drains: the request in flight finishes, askrd exits 0 and leaves no php-cgi behind.
func TestPerRequestGracefulStop(t *testing.T) {
	s := startPerRequest(t, "--workers", "2")
	pid := s.pidOf(t)
	started := filepath.Join(t.TempDir(), "started")
	done := make(chan response, 1)
	go func() {
		resp, err := client.Get(s.URL + "/sleep.php?s=1&started=" + url.QueryEscape(started))
		if err != nil {
			done <- response{body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- response{status: resp.StatusCode, body: string(b)}
	}()
	if !poll(10*time.Second, func() bool { _, err := os.Stat(started); return err == nil }) {
		t.Fatal("sleep.php did not start")
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	if r := <-done; r.status != 200 || r.body != "slept\n" {
		t.Errorf("request in flight at SIGTERM: %d %q; want it finished", r.status, r.body)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("askrd did not exit after SIGTERM")
	}
	if s.err != nil {
		t.Errorf("askrd exit: %v; want 0", s.err)
	}
	if err := syscall.Kill(mustAtoi(t, pid), 0); err == nil {
		t.Errorf("php-cgi %s still runs after askrd stopped", pid)
	}
}

// Under systemd: READY=1 once the processes answer, a STATUS line in per-request mode, WATCHDOG=1
// only while a process answers (it stops while the only one is wedged), and nothing of systemd's
// in PHP's environment.
func TestPerRequestSystemd(t *testing.T) {
	n := newFakeNotify(t)
	s := startAskrd(t, opts{perRequest: true, root: plainRoot(t), args: []string{"--workers", "1", "--request-timeout", "0"},
		noReady: true, env: []string{"NOTIFY_SOCKET=" + n.path, "WATCHDOG_USEC=1000000"}})
	n.wait(t, "READY=1", 30*time.Second)
	if r := s.get("/pid.php"); r.status != 200 {
		t.Errorf("right after READY=1: %d; want a process serving", r.status)
	}
	var names []string
	if err := json.Unmarshal([]byte(s.get("/env.php").body), &names); err != nil {
		t.Fatal(err)
	}
	for _, k := range names {
		if k == "NOTIFY_SOCKET" || strings.HasPrefix(k, "LISTEN_") || strings.HasPrefix(k, "WATCHDOG_") ||
			k == "ASKR_WORKER" || k == "ASKR_APP_BASE" || strings.HasPrefix(k, "ASKR_COW") {
			t.Errorf("PHP's environment has %s", k)
		}
	}
	if !poll(5*time.Second, func() bool {
		for _, m := range n.all("STATUS=") {
			if strings.Contains(m.text, "mode=per-request workers=1") && statusFields.MatchString(m.text) {
				return true
			}
		}
		return false
	}) {
		t.Errorf("no STATUS line for per-request mode (ending with rps=N.N slow=0): %v", n.all("STATUS="))
	}
	watchdogPausesWhileWedged(t, s, n, func(mark string) string { return "/sleep.php?s=4&started=" + mark })
}

// SIGHUP replaces every process (a canary first) with no failed request.
func TestPerRequestReload(t *testing.T) {
	s := startPerRequest(t, "--workers", "2")
	old := map[string]bool{}
	for range 8 {
		old[s.pidOf(t)] = true
	}
	load := s.startLoad("/pid.php", 4, 50000)
	s.cmd.Process.Signal(syscall.SIGHUP)
	if !poll(30*time.Second, func() bool {
		for range 8 {
			if old[s.pidOf(t)] {
				return false
			}
		}
		return true
	}) {
		t.Errorf("processes %v still serve after SIGHUP", old)
	}
	load.Stop()
	if load.failed.Load() != 0 || load.ok.Load() == 0 {
		t.Errorf("during the reload %d requests succeeded, %d failed; want none failed", load.ok.Load(), load.failed.Load())
	}
	s.waitLog("reload: canary serves", time.Second)
}

// With every process busy and no room to wait, a request gets 503 at once.
func TestPerRequestQueueFull(t *testing.T) {
	s := startAskrd(t, opts{perRequest: true, root: plainRoot(t), args: []string{"--workers", "1"}, config: "[server]\nqueue_size = 0\n"})
	started := filepath.Join(t.TempDir(), "started")
	busy := make(chan response, 1)
	go func() { busy <- s.get("/sleep.php?s=2&started=" + url.QueryEscape(started)) }()
	if !poll(5*time.Second, func() bool { _, err := os.Stat(started); return err == nil }) {
		t.Fatal("the busy request never started")
	}
	if r := s.get("/pid.php"); r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Errorf("request while the only process is busy: %d, Retry-After %q; want 503 with Retry-After", r.status, r.header.Get("Retry-After"))
	}
	if r := <-busy; r.status != 200 {
		t.Errorf("the busy request: %d; want 200", r.status)
	}
}
