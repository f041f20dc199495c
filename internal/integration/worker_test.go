package integration

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dump is what testdata/worker.php's /dump returns.
type dump struct {
	Server      map[string]any `json:"server"`
	Get         any            `json:"get"`
	Post        any            `json:"post"`
	Cookie      any            `json:"cookie"`
	Request     any            `json:"request"`
	Files       any            `json:"files"`
	Input       string         `json:"input"`
	Stdin       string         `json:"stdin"`
	Askr        map[string]any `json:"askr"`
	Count       int            `json:"count"`
	PID         int            `json:"pid"`
	HeadersSent bool           `json:"headers_sent"`
	Cwd         string         `json:"cwd"`
}

func (s *server) dump(method, path string, body []byte, header ...string) dump {
	s.t.Helper()
	var r response
	if body == nil {
		r = s.do(method, path, nil, header...)
	} else {
		r = s.do(method, path, bytes.NewReader(body), header...)
	}
	if r.status != 200 {
		s.t.Fatalf("%s %s: status %d, body %.300q", method, path, r.status, r.body)
	}
	var d dump
	if err := json.Unmarshal([]byte(r.body), &d); err != nil {
		s.t.Fatalf("%s %s: %v in %.300q", method, path, err, r.body)
	}
	return d
}

// obj returns v as a JSON object (PHP's empty array decodes as a JSON list).
func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestServerVariables(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	d := s.dump("GET", "/dump/some/path?x=1&y=two", nil, "X-Custom-Header", "hello", "Host", "example.test:8080", "X_Under", "dropped", "X.Dotted", "dropped")
	root := filepath.Join(repoRoot(t), "examples", "hello", "public")
	want := map[string]string{
		"REQUEST_METHOD":       "GET",
		"REQUEST_URI":          "/dump/some/path?x=1&y=two",
		"QUERY_STRING":         "x=1&y=two",
		"SCRIPT_NAME":          "/index.php",
		"SCRIPT_FILENAME":      root + "/index.php",
		"PHP_SELF":             "/index.php",
		"PATH_INFO":            "",
		"DOCUMENT_ROOT":        root,
		"SERVER_NAME":          "example.test",
		"SERVER_PORT":          strings.Split(s.Addr, ":")[1],
		"SERVER_PROTOCOL":      "HTTP/1.1",
		"REMOTE_ADDR":          "127.0.0.1",
		"HTTP_HOST":            "example.test:8080",
		"HTTP_X_CUSTOM_HEADER": "hello",
		"GATEWAY_INTERFACE":    "CGI/1.1",
		"CONTENT_TYPE":         "",
		"CONTENT_LENGTH":       "",
	}
	for k, v := range want {
		if got, ok := d.Server[k]; !ok || got != v {
			t.Errorf("$_SERVER[%q] = %v; want %q", k, got, v)
		}
	}
	for _, k := range []string{"REMOTE_PORT", "SERVER_SOFTWARE", "SERVER_ADDR"} {
		if v, _ := d.Server[k].(string); v == "" {
			t.Errorf("$_SERVER[%q] is empty", k)
		}
	}
	if _, ok := d.Server["HTTPS"]; ok {
		t.Errorf("$_SERVER[HTTPS] set on plain HTTP")
	}
	for k := range d.Server {
		if strings.HasPrefix(k, "HTTP_X_UNDER") || strings.HasPrefix(k, "HTTP_X.") || strings.HasPrefix(k, "HTTP_X_DOTTED") {
			t.Errorf("$_SERVER[%s]: a header name with _ or . passed to PHP (nginx drops them)", k)
		}
	}
	rt, ok := d.Server["REQUEST_TIME"].(float64)
	if !ok || time.Since(time.Unix(int64(rt), 0)) > time.Minute {
		t.Errorf("$_SERVER[REQUEST_TIME] = %v; want now as int", d.Server["REQUEST_TIME"])
	}
	if _, ok := d.Server["REQUEST_TIME_FLOAT"].(float64); !ok {
		t.Errorf("$_SERVER[REQUEST_TIME_FLOAT] = %v; want a float", d.Server["REQUEST_TIME_FLOAT"])
	}
	appBase := filepath.Dir(root)
	if d.Cwd != appBase || d.Server["ASKR_APP_BASE"] != appBase {
		t.Errorf("cwd = %q, ASKR_APP_BASE = %v; want both %q", d.Cwd, d.Server["ASKR_APP_BASE"], appBase)
	}
	if d.HeadersSent {
		t.Errorf("headers_sent() = true inside the handler; want false")
	}
	// PATH_INFO split for /index.php/extra as nginx + php-fpm do.
	d = s.dump("GET", "/index.php/extra/bit?dump=1", nil)
	if d.Server["PATH_INFO"] != "/extra/bit" || d.Server["PHP_SELF"] != "/index.php/extra/bit" || d.Server["SCRIPT_NAME"] != "/index.php" {
		t.Errorf("PATH_INFO = %v, PHP_SELF = %v, SCRIPT_NAME = %v; want /extra/bit, /index.php/extra/bit, /index.php",
			d.Server["PATH_INFO"], d.Server["PHP_SELF"], d.Server["SCRIPT_NAME"])
	}
}

func TestSuperglobalsParsedByPHPRules(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	d := s.dump("POST", "/dump?a[]=1&a[b]=2&x.y=3&same=get", []byte("p=1&q[]=2&q[]=3&same=post&a[c]=4"),
		"Content-Type", "application/x-www-form-urlencoded",
		"Cookie", "c=1; d=%20x+y; arr[k]=v; c=2")
	checks := []struct{ name, got, want string }{
		{"$_GET", jsonOf(d.Get), `{"a":{"0":"1","b":"2"},"same":"get","x_y":"3"}`},
		{"$_POST", jsonOf(d.Post), `{"a":{"c":"4"},"p":"1","q":["2","3"],"same":"post"}`},
		{"$_COOKIE", jsonOf(d.Cookie), `{"arr":{"k":"v"},"c":"1","d":" x+y"}`},
		{"$_REQUEST", jsonOf(d.Request), `{"a":{"0":"1","b":"2","c":"4"},"p":"1","q":["2","3"],"same":"post","x_y":"3"}`},
		{"php://input", d.Input, "p=1&q[]=2&q[]=3&same=post&a[c]=4"},
		{"php://stdin", d.Stdin, ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %s; want %s", c.name, c.got, c.want)
		}
	}
	// The next request starts from scratch.
	d = s.dump("GET", "/dump", nil)
	for name, v := range map[string]any{"$_GET": d.Get, "$_POST": d.Post, "$_COOKIE": d.Cookie, "$_REQUEST": d.Request, "$_FILES": d.Files} {
		if j := jsonOf(v); j != "[]" && j != "{}" && j != "null" {
			t.Errorf("%s of a bare GET after a POST = %s; want empty", name, j)
		}
	}
	if d.Input != "" {
		t.Errorf("php://input of a bare GET = %q; want empty", d.Input)
	}
}

func TestRequestArrayAndJSONBody(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	body := `{"name":"askr","list":[1,2,3]}`
	d := s.dump("PUT", "/dump?q=1", []byte(body), "Content-Type", "application/json")
	if d.Input != body {
		t.Errorf("php://input = %q; want %q", d.Input, body)
	}
	if jsonOf(d.Post) != "[]" {
		t.Errorf("$_POST of a PUT = %s; want empty as php-fpm", jsonOf(d.Post))
	}
	a := d.Askr
	if a["method"] != "PUT" || a["uri"] != "/dump?q=1" || a["query"] != "q=1" || a["body"] != body {
		t.Errorf("$request = method %v uri %v query %v body %v", a["method"], a["uri"], a["query"], a["body"])
	}
	h, _ := a["headers"].(map[string]any)
	if h["REQUEST_METHOD"] != "PUT" || h["CONTENT_TYPE"] != "application/json" || h["CONTENT_LENGTH"] != strconv.Itoa(len(body)) {
		t.Errorf("$request['headers'] lacks the CGI variables: %v", h)
	}
	for _, k := range []string{"post", "files"} {
		if _, ok := a[k]; !ok {
			t.Errorf("$request has no %q key", k)
		}
	}
}

func TestMultipartUploads(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("title", "hello")
	mw.WriteField("tags[]", "a")
	mw.WriteField("tags[]", "b")
	fw, _ := mw.CreateFormFile("doc", "report.txt")
	fw.Write([]byte("file one"))
	fw, _ = mw.CreateFormFile("g[a][]", "two.bin")
	fw.Write([]byte("file two!"))
	mw.CreateFormFile("empty", "")
	mw.Close()
	d := s.dump("POST", "/dump", buf.Bytes(), "Content-Type", mw.FormDataContentType())
	if got := jsonOf(d.Post); got != `{"tags":["a","b"],"title":"hello"}` {
		t.Errorf("$_POST = %s", got)
	}
	doc, _ := obj(d.Files)["doc"].(map[string]any)
	if doc["name"] != "report.txt" || doc["size"] != float64(8) || doc["error"] != float64(0) {
		t.Errorf("$_FILES[doc] = %v", doc)
	}
	tmp, _ := doc["tmp_name"].(string)
	if tmp == "" {
		t.Fatalf("$_FILES[doc][tmp_name] empty")
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("upload %s still exists after the request (stat: %v)", tmp, err)
	}
	g, _ := obj(d.Files)["g"].(map[string]any)
	if jsonOf(g["name"]) != `{"a":["two.bin"]}` || jsonOf(g["size"]) != `{"a":[9]}` {
		t.Errorf("$_FILES[g] = %s; want nested name/size arrays", jsonOf(g))
	}
	empty, _ := obj(d.Files)["empty"].(map[string]any)
	if empty["error"] != float64(4) {
		t.Errorf("$_FILES[empty][error] = %v; want 4 (UPLOAD_ERR_NO_FILE)", empty["error"])
	}
	files, _ := d.Askr["files"].([]any)
	if len(files) != 3 {
		t.Fatalf("$request['files'] has %d entries; want 3", len(files))
	}
	f0, _ := files[0].(map[string]any)
	for _, k := range []string{"field", "name", "type", "tmp_name", "size", "error"} {
		if _, ok := f0[k]; !ok {
			t.Errorf("$request['files'][0] lacks %q: %v", k, f0)
		}
	}
	if p, _ := d.Askr["post"].(map[string]any); p["title"] != "hello" {
		t.Errorf("$request['post'] = %v", d.Askr["post"])
	}
}

func TestResponseHeadersAndStatus(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	r := s.get("/headers")
	if r.status != 201 || r.body != "headers" {
		t.Errorf("/headers = %d %q; want 201 \"headers\"", r.status, r.body)
	}
	if got := r.header.Values("X-Multi"); strings.Join(got, ",") != "a,b" {
		t.Errorf("X-Multi = %v; want [a b]", got)
	}
	if r.header.Get("X-Gone") != "" || r.header.Get("X-One") != "1" {
		t.Errorf("header_remove/header: X-Gone = %q X-One = %q", r.header.Get("X-Gone"), r.header.Get("X-One"))
	}
	cookies := r.header.Values("Set-Cookie")
	if len(cookies) != 2 || cookies[0] != "c1=v1" || !strings.Contains(cookies[1], "HttpOnly") {
		t.Errorf("Set-Cookie = %q", cookies)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/html; charset=UTF-8" {
		t.Errorf("default Content-Type = %q; want PHP's text/html; charset=UTF-8", ct)
	}
	if r := s.get("/redirect"); r.status != 302 || r.header.Get("Location") != "/elsewhere" {
		t.Errorf("Location header: %d %q; want 302 /elsewhere", r.status, r.header.Get("Location"))
	}
	if r := s.get("/status-line"); r.status != 404 {
		t.Errorf("header('HTTP/1.1 404 Not Found') gave %d", r.status)
	}
	// Nothing of one response reaches the next.
	if r := s.get("/leak"); r.status != 418 || r.header.Get("X-Leak") != "yes" {
		t.Fatalf("/leak = %d %v", r.status, r.header)
	}
	if r := s.get("/"); r.status != 200 || r.header.Get("X-Leak") != "" || r.body != "worker ok" {
		t.Errorf("after /leak: %d X-Leak=%q body %q; want 200, no X-Leak", r.status, r.header.Get("X-Leak"), r.body)
	}
	// A buffer the app left open is flushed into the response, as php-fpm does at request end.
	if r := s.get("/ob"); r.body != "inner buffer left open" {
		t.Errorf("/ob body = %q", r.body)
	}
	if r := s.get("/big?n=3000000"); len(r.body) != 3000000 {
		t.Errorf("/big body has %d bytes; want 3000000", len(r.body))
	}
}

func TestSessionsDoNotLeak(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "2"}})
	type sess struct {
		N   int    `json:"n"`
		ID  string `json:"id"`
		PID int    `json:"pid"`
	}
	get := func(cookie string) (sess, string) {
		var h []string
		if cookie != "" {
			h = []string{"Cookie", cookie}
		}
		r := s.get("/session", h...)
		var v sess
		if err := json.Unmarshal([]byte(r.body), &v); err != nil {
			t.Fatalf("/session: %v %q", err, r.body)
		}
		c := r.header.Get("Set-Cookie")
		c, _, _ = strings.Cut(c, ";")
		return v, c
	}
	first, cookie := get("")
	if first.N != 1 || cookie == "" {
		t.Fatalf("first /session = %+v, cookie %q", first, cookie)
	}
	pids := map[int]bool{first.PID: true}
	for i := 2; i <= 6; i++ {
		v, again := get(cookie)
		pids[v.PID] = true
		if v.N != i || v.ID != first.ID {
			t.Errorf("request %d with the cookie: %+v; want n=%d id=%s", i, v, i, first.ID)
		}
		if again != "" {
			t.Errorf("request %d with the cookie got Set-Cookie %q; php-fpm sends none for a resumed session", i, again)
		}
		// A request without the cookie never sees that session.
		if other, _ := get(""); other.N != 1 || other.ID == first.ID {
			t.Errorf("request without the cookie got %+v; want a new session", other)
		}
	}
	if len(pids) < 2 {
		t.Errorf("the session was served by workers %v; want it to cross both", pids)
	}
}

func TestBodiesAndLimits(t *testing.T) {
	s := startAskrd(t, opts{config: "[server]\nmax_body_size = \"4M\"\nbody_buffer_size = \"64K\"\nmax_header_size = \"8K\"\n"})
	// Above the memory buffer: spooled to a file and streamed to php://input.
	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	d := s.dump("POST", "/dump", big, "Content-Type", "application/octet-stream")
	if sha1hex([]byte(d.Input)) != sha1hex(big) {
		t.Errorf("php://input of a spooled 3 MiB body differs")
	}
	s.noTempFiles()
	tooBig := bytes.Repeat([]byte("x"), 4<<20+1)
	if r := s.do("POST", "/dump", bytes.NewReader(tooBig)); r.status != 413 {
		t.Errorf("body over max_body_size = %d; want 413", r.status)
	}
	// Without Content-Length (chunked) the limit holds too.
	req, _ := http.NewRequest("POST", s.URL+"/dump", struct{ *bytes.Reader }{bytes.NewReader(tooBig)})
	req.ContentLength = -1
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("chunked body over max_body_size = %d; want 413", resp.StatusCode)
	}
	if r := s.get("/", "X-Huge", strings.Repeat("h", 16<<10)); r.status != 431 {
		t.Errorf("16K header over max_header_size = %d; want 431", r.status)
	}
}

func sha1hex(b []byte) string {
	h := sha1.Sum(b)
	return hex.EncodeToString(h[:])
}

// Boot failures: faults_test.go.

// An idle worker waits for its next request however long it takes (PHP's default_socket_timeout
// must not apply to the channel).
// max_execution_time limits each request, never the worker's life: the runtime restarts the limit
// per request and stops it while the worker waits.
// The idle and header-read timeouts close connections that do nothing.
func TestConnectionTimeouts(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}, config: "[server]\nidle_timeout = 1\nheader_read_timeout = 1\n"})
	closedWithin := func(c net.Conn, d time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(d))
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				var ne net.Error
				return !(errors.As(err, &ne) && ne.Timeout())
			}
		}
	}
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
	if !closedWithin(c, 5*time.Second) {
		t.Errorf("idle keep-alive connection still open 5 s after its response with idle_timeout = 1")
	}
	c2, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fmt.Fprintf(c2, "GET / HTTP/1.1\r\nHost: x\r\n") // headers never finished
	if !closedWithin(c2, 5*time.Second) {
		t.Errorf("connection with unfinished headers still open 5 s later with header_read_timeout = 1")
	}
}

// A worker that writes a very long line to stderr is logged in pieces and never blocks.
// A chunked body is read whole before PHP runs; PHP sees its real length, as nginx passes it.
func TestChunkedBody(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}, config: "[server]\nbody_buffer_size = \"4K\"\n"})
	for _, n := range []int{100, 100000} {
		body := bytes.Repeat([]byte("c"), n)
		req, _ := http.NewRequest("POST", s.URL+"/dump", struct{ *bytes.Reader }{bytes.NewReader(body)})
		req.ContentLength = -1
		req.Header.Set("Content-Type", "text/plain")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var d dump
		err = json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Input) != n || d.Server["CONTENT_LENGTH"] != strconv.Itoa(n) {
			t.Errorf("chunked body of %d bytes: php://input has %d, CONTENT_LENGTH %v", n, len(d.Input), d.Server["CONTENT_LENGTH"])
		}
	}
}

// What PHP gets wrong in its response is answered as nginx + php-fpm would, and never costs the worker.
func TestOddResponsesKeepTheWorker(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	pid := pidOf(t, s)
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/code?c=204", 204, ""},
		{"/code?c=304", 304, ""},
		{"/hdr?h=" + url.QueryEscape("Status: 404 Not Found"), 404, "hdr"},
		{"/code?c=103", 502, ""},
		{"/hdr?h=" + url.QueryEscape("Bad Name: v"), 502, ""},
		{"/hdr?h=NoColon", 502, ""},
	} {
		r := s.get(tc.path)
		if r.status != tc.status || (tc.status != 502 && r.body != tc.body) {
			t.Errorf("GET %s = %d %q; want %d %q", tc.path, r.status, r.body, tc.status, tc.body)
		}
		if r.header.Get("Status") != "" {
			t.Errorf("GET %s passed a Status header to the client", tc.path)
		}
	}
	if p := pidOf(t, s); p != pid {
		t.Errorf("worker replaced (%d → %d) after responses the app got wrong", pid, p)
	}
	if r := s.do("HEAD", "/big?n=100", nil); r.status != 200 || r.body != "" {
		t.Errorf("HEAD to PHP = %d %q", r.status, r.body)
	}
}

// Large responses stream out of PHP in pieces: a 30 MB body fits in memory_limit = 128M.
func TestLargeResponseStreams(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1", "--ini", "memory_limit = 128M"}})
	const n = 30_000_000
	r := s.get(fmt.Sprintf("/big?n=%d", n))
	if r.status != 200 || len(r.body) != n || strings.Trim(r.body, "x") != "" {
		t.Errorf("/big?n=%d = %d with %d bytes", n, r.status, len(r.body))
	}
}

// A client that does not read its response does not hold the worker; one that stops sending its
// body is cut off after client_timeout.
func TestSlowClients(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}, config: "[server]\nclient_timeout = 1\n"})
	stalled, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	fmt.Fprintf(stalled, "GET /big?n=900000 HTTP/1.1\r\nHost: x\r\n\r\n") // never read
	if !poll(10*time.Second, func() bool { return s.get("/pid").status == 200 }) {
		t.Errorf("the only worker stayed busy with a client that does not read")
	}

	partial, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer partial.Close()
	fmt.Fprintf(partial, "POST /dump HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
	partial.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(partial).ReadString('\n')
	if err != nil || !strings.Contains(line, "400") {
		t.Errorf("client that stopped sending its body got %q, %v; want 400 within client_timeout", line, err)
	}
}

func TestMalformedMultipart(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	body := "--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"; filename=\"b\r\n\r\nx\r\n--B--\r\n"
	if r := s.do("POST", "/dump", strings.NewReader(body), "Content-Type", "multipart/form-data; boundary=B"); r.status != 400 {
		t.Errorf("multipart with a malformed Content-Disposition = %d; want 400", r.status)
	}
	truncated := "--B\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nx"
	if r := s.do("POST", "/dump", strings.NewReader(truncated), "Content-Type", "multipart/form-data; boundary=B"); r.status != 400 {
		t.Errorf("truncated multipart = %d; want 400", r.status)
	}
	if strings.Contains(s.logs.String(), "level=ERROR") {
		t.Errorf("a malformed multipart body was logged as askrd's error:\n%s", s.logs.String())
	}
}

// A line PHP repeats in a loop is logged a few times and then counted, not flooded; PHP's fatal
// errors are logged at level ERROR.
// A worker killed while idle costs no client a 502: the request goes to another worker.

// TestAppAskrNames: an app may declare classes in namespace Askr with the names of the runtime's
// own (Askr\Request, Askr\Channel, …): the runtime's live in Askr\Runtime, so the worker boots and
// serves, with and without the detector (paranoid.php's class). The name is short: CoW mode's
// socket path is under the test's temporary directory.
func TestAppAskrNames(t *testing.T) {
	script := filepath.Join(repoRoot(t), "internal", "integration", "testdata", "askr-names.php")
	for _, paranoid := range []bool{false, true} {
		t.Run(fmt.Sprintf("paranoid=%v", paranoid), func(t *testing.T) {
			args := []string{"--workers", "1"}
			if paranoid {
				args = append(args, "--paranoid")
			}
			s := startAskrd(t, opts{script: script, args: args})
			r := s.do("POST", "/?q=query", strings.NewReader("body"), "Content-Type", "text/plain")
			if r.status != 200 || r.body != "8 query body" || r.header.Get("X-App-Class") != `Askr\Request` {
				t.Errorf("POST /?q=query = %d %q, X-App-Class %q; want 200 \"8 query body\" (the app's 8 classes, "+
					"$_GET, php://input) and Askr\\Request", r.status, r.body, r.header.Get("X-App-Class"))
			}
			if l := s.logs.String(); strings.Contains(l, "PHP Fatal error") || strings.Contains(l, "already in use") {
				t.Errorf("the app's Askr classes caused an error:\n%s", l)
			}
		})
	}
}
