package integration

// End-to-end tests of the Symfony example (examples/symfony, examples/symfony-worker.php) on a
// real askrd with real php-cgi workers and Debian's php-symfony-* 5.4 packages. The helpers here
// are prefixed sf; requests go through the Laravel tests' lvServer.send and lvClient.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http/cookiejar"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const sfSessionCookie = "askr_symfony_session" // framework.session.name in config/framework.php

// sfSkipWithoutSymfony skips the test unless Debian's Symfony FrameworkBundle is installed (make
// deps installs it); in CI (CI set) a missing package fails the test instead.
func sfSkipWithoutSymfony(t *testing.T) {
	t.Helper()
	const autoload = "/usr/share/php/Symfony/Bundle/FrameworkBundle/autoload.php"
	if _, err := os.Stat(autoload); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Symfony not installed (%v): make deps installs php-symfony-framework-bundle", err)
		}
		t.Skip("Symfony not installed in /usr/share/php/Symfony (apt-get install php-symfony-framework-bundle)")
	}
}

// sfStart starts askrd on a private copy of examples/symfony (without var/, which the app creates)
// and returns once its workers are ready. askrd gets SIGTERM when t ends.
func sfStart(t *testing.T, args ...string) *lvServer {
	t.Helper()
	base := filepath.Join(t.TempDir(), "symfony")
	copyExample(t, "symfony", base, "var")
	s := startAskrd(t, opts{
		root:   filepath.Join(base, "public"),
		script: filepath.Join(repoRoot(t), "examples", "symfony-worker.php"),
		env:    []string{"ASKR_APP_BASE=" + base},
		args:   args,
	})
	return &lvServer{server: s, Base: base}
}

// sfSHA1 returns the hex SHA-1 of b.
func sfSHA1(b []byte) string {
	sum := sha1.Sum(b)
	return hex.EncodeToString(sum[:])
}

// sfMultipart returns a multipart/form-data body with one file in field, and its Content-Type.
func sfMultipart(t *testing.T, field, filename, contentType string, content []byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, field, filename))
	h.Set("Content-Type", contentType)
	part, err := w.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	part.Write(content)
	if err := w.WriteField("note", "a plain field"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), w.FormDataContentType()
}

// sfPids sends GET /json until it has seen n worker pids (or 40 requests) and returns those seen.
func sfPids(t *testing.T, s *lvServer, n int) map[float64]bool {
	t.Helper()
	pids := map[float64]bool{}
	for i := 0; i < 40 && len(pids) < n; i++ {
		r := s.send(nil, "GET", "/json", nil)
		lvWant(t, "GET /json: status", r.status, 200)
		pid, _ := r.json(t)["pid"].(float64)
		pids[pid] = true
	}
	return pids
}

// TestSymfony runs the example's routes on askrd with two workers (in CoW mode too, with
// ASKR_TEST_COW=1). The subtests share one server; the worker state they leave behind is part of
// what they test.
func TestSymfony(t *testing.T) {
	sfSkipWithoutSymfony(t)
	s := sfStart(t, "--workers", "2")

	t.Run("CompiledContainer", func(t *testing.T) {
		p := filepath.Join(s.Base, "var", "cache", "prod", "App_KernelProdContainer.php")
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the kernel did not compile its container into var/: %v", err)
		}
	})

	t.Run("HTMLPage", func(t *testing.T) {
		r := s.send(nil, "GET", "/?name=%3Cb%3Easkr%3C/b%3E", nil)
		lvWant(t, "status", r.status, 200)
		lvWant(t, "Content-Type", r.header.Get("Content-Type"), "text/html; charset=UTF-8")
		for _, want := range []string{"Hello, &lt;b&gt;askr&lt;/b&gt;!", "Symfony 5.4.", "(cgi-fcgi)"} {
			if !strings.Contains(string(r.body), want) {
				t.Errorf("page lacks %q:\n%s", want, r.body)
			}
		}
		if r := s.send(nil, "HEAD", "/", nil); r.status != 200 || len(r.body) != 0 {
			t.Errorf("HEAD /: status %d, %d body bytes", r.status, len(r.body))
		}
		for i := 0; i < 4; i++ { // both workers: the query of one request never reaches the next
			if r := s.send(nil, "GET", "/", nil); !strings.Contains(string(r.body), "Hello, world!") {
				t.Errorf("GET / without ?name: %s", r.body)
			}
		}
	})

	t.Run("JSON", func(t *testing.T) {
		r := s.send(nil, "GET", "/json?a=1&b[]=x", nil, "X-Askr-Demo", "demo value")
		lvWant(t, "status", r.status, 200)
		lvWant(t, "Content-Type", r.header.Get("Content-Type"), "application/json")
		m := r.json(t)
		lvWant(t, "framework", m["framework"], "Symfony")
		lvWant(t, "method", m["method"], "GET")
		lvWant(t, "path", m["path"], "/json")
		lvWant(t, "query", m["query"], map[string]any{"a": "1", "b": []any{"x"}})
		lvWant(t, "header", m["header"], "demo value")
		if r.hasCookie(sfSessionCookie) {
			t.Errorf("GET /json started a session: %v", r.header["Set-Cookie"])
		}
		for i := 0; i < 4; i++ { // neither the query nor the header may outlive their request
			m := s.send(nil, "GET", "/json", nil).json(t)
			lvWant(t, "query without one", fmt.Sprint(m["query"]), "[]")
			lvWant(t, "header without one", m["header"], nil)
		}
	})

	t.Run("Echo", func(t *testing.T) {
		// Over body_buffer_size (1 MiB): the body reaches PHP through a spool file, and the
		// controller hashes it from php://input as it reads.
		big := make([]byte, 5<<20+123)
		rand.Read(big)
		for _, body := range [][]byte{[]byte("hello, askr"), big, nil} {
			r := s.send(nil, "POST", "/echo", body, "Content-Type", "application/octet-stream")
			lvWant(t, fmt.Sprintf("%d bytes: status", len(body)), r.status, 200)
			m := r.json(t)
			lvWant(t, fmt.Sprintf("%d bytes: sha1", len(body)), m["sha1"], sfSHA1(body))
			lvWant(t, fmt.Sprintf("%d bytes: length", len(body)), m["length"], float64(len(body)))
		}
		lvWant(t, "GET /echo: status", s.send(nil, "GET", "/echo", nil).status, 405)
	})

	t.Run("Upload", func(t *testing.T) {
		var content bytes.Buffer
		for i := 0; content.Len() < 1500000; i++ {
			fmt.Fprintf(&content, "askr upload line %d\n", i)
		}
		body, ctype := sfMultipart(t, "f", "report.csv", "text/csv", content.Bytes())
		r := s.send(nil, "POST", "/upload", body, "Content-Type", ctype)
		lvWant(t, "status", r.status, 200)
		m := r.json(t)
		lvWant(t, "error", m["error"], 0)
		lvWant(t, "size", m["size"], float64(content.Len()))
		lvWant(t, "sha1", m["sha1"], sfSHA1(content.Bytes()))
		lvWant(t, "name", m["name"], "report.csv")
		lvWant(t, "client_mime", m["client_mime"], "text/csv")
		lvWant(t, "mime (guessed from the contents)", m["mime"], "text/plain")
		// UploadedFile::isValid() also requires is_uploaded_file() to recognise askrd's temp file:
		// the askr PHP extension (loaded in every test askrd) makes it.
		lvWant(t, "valid", m["valid"], true)
		// The file belongs to its request: the next POST without one has none.
		for i := 0; i < 2; i++ {
			lvWant(t, "POST /upload without a file: status", s.send(nil, "POST", "/upload", []byte("x=1"),
				"Content-Type", "application/x-www-form-urlencoded").status, 400)
		}
	})

	t.Run("Session", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		c := lvClient(jar)
		// Until the session has moved from one worker to the other (bounded): each request,
		// whichever worker serves it, continues the counter.
		var last any
		crossed, n := 0, 0
		for n < 6 || (crossed == 0 && n < 40) {
			n++
			r := s.send(c, "GET", "/session", nil)
			lvWant(t, "status", r.status, 200)
			m := r.json(t)
			lvWant(t, fmt.Sprintf("request %d: counter", n), m["counter"], n)
			if n > 1 && m["pid"] != last {
				crossed++
			}
			last = m["pid"]
			// The cookie goes out once, when the session is new, and only once in that response.
			cookies := 0
			for _, h := range r.header["Set-Cookie"] {
				if strings.HasPrefix(h, sfSessionCookie+"=") {
					cookies++
				}
			}
			if want := map[bool]int{true: 1, false: 0}[n == 1]; cookies != want {
				t.Errorf("request %d: %d session Set-Cookie headers, want %d: %v", n, cookies, want, r.header["Set-Cookie"])
			}
		}
		if crossed == 0 {
			t.Errorf("one worker (pid %v) served all %d session requests; want the session continued by the other", last, n)
		}
		// Without the cookie, or with one naming no session, every worker starts a new, empty one.
		for i := 0; i < 4; i++ {
			lvWant(t, "counter without a cookie", s.send(nil, "GET", "/session", nil).json(t)["counter"], 1)
			lvWant(t, "counter with a malformed cookie", s.send(nil, "GET", "/session", nil,
				"Cookie", sfSessionCookie+"=forged").json(t)["counter"], 1)
			unknown := fmt.Sprintf("unknownsession%012d", i)
			lvWant(t, "counter with an unknown cookie", s.send(nil, "GET", "/session", nil,
				"Cookie", sfSessionCookie+"="+unknown).json(t)["counter"], 1)
		}
		// The first visitor's session is intact, on either worker.
		for i := 0; i < 4; i++ {
			n++
			lvWant(t, "counter after the others", s.send(c, "GET", "/session", nil).json(t)["counter"], n)
		}
	})

	t.Run("Stream", func(t *testing.T) {
		r := s.send(nil, "GET", "/stream", nil)
		lvWant(t, "status", r.status, 200)
		lvWant(t, "Content-Type", r.header.Get("Content-Type"), "text/plain; charset=UTF-8")
		lvWant(t, "body", string(r.body), "line 1\nline 2\nline 3\nline 4\nline 5\n")
		// Each flush() reaches the client while the callback still runs: with 200 ms between the
		// lines, the first arrives long before the last.
		resp, err := lvClient(nil).Get(s.URL + "/stream?gap_ms=200")
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		first, _ := br.ReadString('\n')
		firstAt := time.Now()
		rest, _ := io.ReadAll(br)
		resp.Body.Close()
		lvWant(t, "streamed body", first+string(rest), "line 1\nline 2\nline 3\nline 4\nline 5\n")
		if d := time.Since(firstAt); d < 400*time.Millisecond {
			t.Errorf("the first line came only %v before the end; want it as soon as it was flushed (800 ms of waits follow it)", d)
		}
		// A streamed response leaves nothing behind for the next one.
		lvWant(t, "GET /json after it", s.send(nil, "GET", "/json", nil).json(t)["framework"], "Symfony")
	})

	t.Run("Status", func(t *testing.T) {
		for _, code := range []int{201, 404, 418, 503} {
			r := s.send(nil, "GET", fmt.Sprintf("/status/%d", code), nil)
			lvWant(t, "status", r.status, code)
			lvWant(t, "body status", r.json(t)["status"], code)
		}
		lvWant(t, "status after them", s.send(nil, "GET", "/json", nil).status, 200)
	})

	t.Run("NotFoundAndMethod", func(t *testing.T) {
		for _, path := range []string{"/no/such/route", "/status/999"} {
			r := s.send(nil, "GET", path, nil)
			lvWant(t, path+": status", r.status, 404)
			lvWant(t, path+": Content-Type", r.header.Get("Content-Type"), "text/html; charset=UTF-8")
			if !strings.Contains(string(r.body), `The server returned a "404 Not Found".`) {
				t.Errorf("%s: not Symfony's 404 page: %.300s", path, r.body)
			}
		}
		lvWant(t, "POST /session", s.send(nil, "POST", "/session", nil).status, 405)
	})

	t.Run("ExceptionKeepsWorkers", func(t *testing.T) {
		before := sfPids(t, s, 2)
		for i := 0; i < 4; i++ {
			r := s.send(nil, "GET", "/exception", nil)
			lvWant(t, "status", r.status, 500)
			if !strings.Contains(string(r.body), `The server returned a "500 Internal Server Error".`) {
				t.Errorf("not Symfony's 500 page: %.300s", r.body)
			}
		}
		// Symfony turned the exception into a response: the same workers go on serving.
		for pid := range sfPids(t, s, len(before)) {
			if !before[pid] {
				t.Errorf("GET /json answered by pid %v, not one of the workers before the exceptions %v", pid, before)
			}
		}
		// Symfony's logger reports it through error_log(), which askrd logs with the worker's pid.
		s.waitLog("thrown on purpose by the /exception route", 10*time.Second)
	})

	t.Run("LogIsClean", func(t *testing.T) {
		for _, bad := range []string{"PHP Fatal", "PHP Warning", "PHP Notice", "Deprecated", "level=ERROR"} {
			if strings.Contains(s.logs.String(), bad) {
				t.Errorf("askrd log contains %q", bad)
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		jsonLoad(t, s.URL+"/json", "Symfony", 1000, 16, 2*time.Minute)
	})
}
