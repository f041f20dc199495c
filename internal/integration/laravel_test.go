package integration

// End-to-end tests of the Laravel example (examples/laravel, examples/laravel-worker.php) on a
// real askrd with real php-cgi workers and Debian's php-laravel-framework. The helpers here are
// prefixed lv.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lvSkipWithoutPHP skips the test unless Debian's Laravel is installed (make deps installs it).
func lvSkipWithoutPHP(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/usr/share/php/Illuminate/Foundation/Application.php"); err != nil {
		t.Skip("Laravel not installed in /usr/share/php/Illuminate (apt-get install php-laravel-framework)")
	}
}

// copyExample copies examples/NAME to dst, leaving out the directories skip names (relative to
// the example): what the app writes at run time, which its worker script must create itself.
func copyExample(t *testing.T, name, dst string, skip ...string) {
	t.Helper()
	src := filepath.Join(repoRoot(t), "examples", name)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if slices.Contains(skip, rel) {
			return fs.SkipDir
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatalf("copy the %s example: %v", name, err)
	}
}

// lvServer is one askrd serving a private copy of the Laravel example.
type lvServer struct {
	*server
	Base string // the app's base directory (ASKR_APP_BASE)
}

// lvStart starts askrd on a copy of the Laravel example and returns once its workers are ready.
// askrd gets SIGTERM when t ends.
func lvStart(t *testing.T, args ...string) *lvServer {
	t.Helper()
	return lvStartConfig(t, "", args...)
}

// lvStartConfig is lvStart with an askr.toml.
func lvStartConfig(t *testing.T, config string, args ...string) *lvServer {
	t.Helper()
	base := filepath.Join(t.TempDir(), "laravel")
	copyExample(t, "laravel", base, "storage", filepath.Join("bootstrap", "cache"))
	s := startAskrd(t, opts{
		root:   filepath.Join(base, "public"),
		script: filepath.Join(repoRoot(t), "examples", "laravel-worker.php"),
		env:    []string{"ASKR_APP_BASE=" + base},
		args:   args,
		config: config,
	})
	return &lvServer{server: s, Base: base}
}

type lvResponse struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a map, failing the test if it is not a JSON object.
func (r lvResponse) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object (%v): %.500s", err, r.body)
	}
	return m
}

// hasCookie reports whether the response sets a cookie called name.
func (r lvResponse) hasCookie(name string) bool {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return true
		}
	}
	return false
}

// do sends one request with c (nil: a client without cookies) and reads the whole response.
func (s *lvServer) send(c *http.Client, method, path string, body []byte, header ...string) lvResponse {
	s.t.Helper()
	if c == nil {
		c = lvClient(nil)
	}
	req, err := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if strings.EqualFold(header[i], "Host") {
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return lvResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// lvClient returns a client that keeps cookies in jar (nil: none) and does not follow redirects.
func lvClient(jar http.CookieJar) *http.Client {
	return &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func lvWant(t *testing.T, what string, got, want any) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// TestLaravel runs the example's routes on askrd with two workers. The subtests share one server;
// the worker state they leave behind is part of what they test.
func TestLaravel(t *testing.T) {
	lvSkipWithoutPHP(t)
	s := lvStart(t, "--workers", "2")

	t.Run("WorkerCreatesStorage", func(t *testing.T) {
		for _, d := range []string{"storage/framework/sessions", "storage/framework/views",
			"storage/framework/cache", "storage/logs", "bootstrap/cache"} {
			if fi, err := os.Stat(filepath.Join(s.Base, d)); err != nil || !fi.IsDir() {
				t.Errorf("%s: not a directory (%v)", d, err)
			}
		}
	})

	t.Run("BladePage", func(t *testing.T) {
		r := s.send(nil, "GET", "/?name=%3Cb%3Easkr%3C/b%3E", nil)
		lvWant(t, "status", r.status, 200)
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("Content-Type = %q, want text/html", ct)
		}
		body := string(r.body)
		for _, want := range []string{"Hello, &lt;b&gt;askr&lt;/b&gt;!", "Laravel 8.", "(cgi-fcgi)", "GET|HEAD /session"} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %q:\n%s", want, body)
			}
		}
		if r := s.send(nil, "HEAD", "/", nil); r.status != 200 || len(r.body) != 0 {
			t.Errorf("HEAD /: status %d, %d body bytes", r.status, len(r.body))
		}
		// The query of one request must not reach the next.
		if r := s.send(nil, "GET", "/", nil); !strings.Contains(string(r.body), "Hello, world!") {
			t.Errorf("GET / without ?name: %s", r.body)
		}
	})

	t.Run("JSON", func(t *testing.T) {
		r := s.send(nil, "GET", "/api/json?a=1&b[]=x", nil)
		lvWant(t, "status", r.status, 200)
		lvWant(t, "Content-Type", r.header.Get("Content-Type"), "application/json")
		m := r.json(t)
		lvWant(t, "framework", m["framework"], "Laravel")
		lvWant(t, "query", m["query"], map[string]any{"a": "1", "b": []any{"x"}})
		lvWant(t, "url", m["url"], s.URL+"/api/json?a=1&b%5B0%5D=x")
		if r.hasCookie("askr_laravel_session") {
			t.Errorf("the api group must not start a session: %v", r.header["Set-Cookie"])
		}
		for i := 0; i < 4; i++ { // both workers: no query left over
			m := s.send(nil, "GET", "/api/json", nil).json(t)
			lvWant(t, "query without one", fmt.Sprint(m["query"]), "[]")
			lvWant(t, "url", m["url"], s.URL+"/api/json")
		}
	})

	t.Run("Echo", func(t *testing.T) {
		in := `{"name":"askr","list":[1,2.5,"ü"],"nested":{"null":null,"yes":true}}`
		r := s.send(nil, "POST", "/api/echo", []byte(in), "Content-Type", "application/json", "X-Echo", "round trip 1")
		lvWant(t, "status", r.status, 200)
		lvWant(t, "X-Echo", r.header.Get("X-Echo"), "round trip 1")
		m := r.json(t)
		var want map[string]any
		json.Unmarshal([]byte(in), &want)
		lvWant(t, "json", m["json"], want)
		lvWant(t, "bytes", m["bytes"], len(in))
		for i := 0; i < 4; i++ { // neither the body nor the header may outlive their request
			r := s.send(nil, "POST", "/api/echo", []byte(`{"i":`+fmt.Sprint(i)+`}`), "Content-Type", "application/json")
			lvWant(t, "json", r.json(t)["json"], map[string]any{"i": i})
			if v, ok := r.header["X-Echo"]; ok {
				t.Errorf("X-Echo %q sent back for a request without it", v)
			}
		}
		r = s.send(nil, "POST", "/api/echo", nil, "Content-Type", "application/json")
		lvWant(t, "empty body: json", fmt.Sprint(r.json(t)["json"]), "[]")
		// A body over body_buffer_size (1 MiB) reaches PHP through a spool file.
		big := `{"big":"` + strings.Repeat("x", 3<<20) + `"}`
		r = s.send(nil, "POST", "/api/echo", []byte(big), "Content-Type", "application/json")
		lvWant(t, "3 MiB body: bytes", r.json(t)["bytes"], float64(len(big)))
		if m, _ := r.json(t)["json"].(map[string]any); len(fmt.Sprint(m["big"])) != 3<<20 {
			t.Errorf("3 MiB body: the decoded string has %d bytes", len(fmt.Sprint(m["big"])))
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
		}
		if crossed == 0 {
			t.Errorf("one worker (pid %v) served all %d session requests; want the session continued by the other", last, n)
		}
		// Without the cookie, or with an unknown one, every worker starts a new, empty session.
		for i := 0; i < 4; i++ {
			m := s.send(nil, "GET", "/session", nil).json(t)
			lvWant(t, "counter without a cookie", m["counter"], 1)
			m = s.send(nil, "GET", "/session", nil, "Cookie", "askr_laravel_session=forged").json(t)
			lvWant(t, "counter with an unknown cookie", m["counter"], 1)
		}
		// The first visitor's session is intact.
		for i := 0; i < 2; i++ {
			n++
			lvWant(t, "counter after the others", s.send(c, "GET", "/session", nil).json(t)["counter"], n)
		}
	})

	t.Run("Cookie", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		c := lvClient(jar)
		r := s.send(c, "GET", "/cookie?value=v1", nil)
		lvWant(t, "status", r.status, 200)
		if !r.hasCookie("askr_demo") {
			t.Fatalf("GET /cookie set no askr_demo cookie: %v", r.header["Set-Cookie"])
		}
		for _, v := range []string{"v2", "v3"} {
			m := s.send(c, "GET", "/cookie?value="+v, nil).json(t)
			received, _ := m["received"].(map[string]any)
			if received["askr_demo"] == nil || received["askr_laravel_session"] == nil {
				t.Errorf("received cookies %v lack askr_demo or the session", received)
			}
		}
		lvWant(t, "cookie sent back", s.send(c, "GET", "/cookie?value=v4", nil).json(t)["received"].(map[string]any)["askr_demo"], "v3")
		// Queued cookies belong to their request: no other response may carry them.
		for i := 0; i < 4; i++ {
			if r := s.send(nil, "GET", "/session", nil); r.hasCookie("askr_demo") {
				t.Errorf("GET /session (no cookies) got the askr_demo cookie queued by an earlier request")
			}
		}
		m := s.send(nil, "GET", "/cookie?value=x", nil).json(t)
		lvWant(t, "cookies received without a jar", fmt.Sprint(m["received"]), "[]")
	})

	t.Run("Status", func(t *testing.T) {
		for _, code := range []int{201, 404, 418, 503} {
			r := s.send(nil, "GET", fmt.Sprintf("/status/%d", code), nil)
			lvWant(t, "status", r.status, code)
			lvWant(t, "body status", r.json(t)["status"], code)
		}
		lvWant(t, "status after them", s.send(nil, "GET", "/api/json", nil).status, 200)
	})

	t.Run("NotFoundAndMethod", func(t *testing.T) {
		r := s.send(nil, "GET", "/no/such/route", nil)
		lvWant(t, "status", r.status, 404)
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("Content-Type = %q, want Laravel's HTML error page", ct)
		}
		if !strings.Contains(string(r.body), "Not Found") {
			t.Errorf("404 page lacks \"Not Found\": %.300s", r.body)
		}
		r = s.send(nil, "GET", "/no/such/route", nil, "Accept", "application/json")
		lvWant(t, "status (JSON)", r.status, 404)
		if _, ok := r.json(t)["message"]; !ok {
			t.Errorf("JSON 404 lacks a message: %s", r.body)
		}
		lvWant(t, "POST /session", s.send(nil, "POST", "/session", nil).status, 405)
	})

	t.Run("LogIsClean", func(t *testing.T) {
		for _, bad := range []string{"PHP Fatal", "PHP Warning", "PHP Notice", "Deprecated", "Uncaught", "level=ERROR", "level=WARN"} {
			if strings.Contains(s.logs.String(), bad) {
				t.Errorf("askrd log contains %q", bad)
			}
		}
	})

	t.Run("Load", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short")
		}
		lvLoad(t, s, 10000, 64, 5*time.Minute)
	})
}

// lvLoad sends n GET /api/json requests from conc goroutines and fails on any error, or if they
// take longer than limit.
func lvLoad(t *testing.T, s *lvServer, n, conc int, limit time.Duration) {
	elapsed := jsonLoad(t, s.URL+"/api/json", "Laravel", n, conc, limit)
	t.Logf("%d requests at concurrency %d in %v (%.0f req/s), 0 errors", n, conc, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
}

// jsonLoad sends n GET url?i=N requests from conc goroutines to an example's JSON route, which
// answers {"framework": …, "query": …}, and checks each answer is its own.
func jsonLoad(t *testing.T, url, framework string, n, conc int, limit time.Duration) time.Duration {
	t.Helper()
	return lvConcurrently(t, "GET "+url, n, conc, limit, func(ctx context.Context, c *http.Client, i int) error {
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s?i=%d", url, i), nil)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var m struct {
			Framework string
			Query     map[string]string
		}
		err = json.NewDecoder(resp.Body).Decode(&m)
		io.Copy(io.Discard, resp.Body)
		switch {
		case resp.StatusCode != 200:
			return fmt.Errorf("status %d", resp.StatusCode)
		case err != nil:
			return err
		case m.Framework != framework || m.Query["i"] != fmt.Sprint(i):
			return fmt.Errorf("got the answer %+v", m)
		}
		return nil
	})
}

// lvConcurrently runs do for requests 1…n from conc goroutines sharing one client, and fails the
// test if any returns an error (showing the first ten) or if they take longer than limit.
func lvConcurrently(t *testing.T, what string, n, conc int, limit time.Duration, do func(ctx context.Context, c *http.Client, i int) error) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}}
	defer c.CloseIdleConnections()
	var next, failed atomic.Int64
	var mu sync.Mutex
	var errs []string
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > n || ctx.Err() != nil {
					return
				}
				if err := do(ctx, c, i); err != nil {
					failed.Add(1)
					mu.Lock()
					if len(errs) < 10 {
						errs = append(errs, fmt.Sprintf("request %d: %v", i, err))
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("%d %s did not finish within %v (%d started)", n, what, limit, min(int(next.Load()), n))
	}
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d %s failed; first ones:\n%s", f, n, what, strings.Join(errs, "\n"))
	}
	return elapsed
}
