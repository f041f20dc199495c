package integration

// Acceptance tests of askr's generic Symfony worker (examples/symfony-worker.php, installed as
// /usr/share/askr/workers/symfony.php) on an app that is not the example:
// testdata/symfony-app, written for these tests (kernel LeakTest\Kernel, Debian's Symfony 5.4).
// One worker, so every request meets the state the previous one left. Helpers are prefixed sfl.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const sflSessionCookie = "sf_leaks_session" // framework.session.name in testdata/symfony-app/config/framework.php

// sflCopyApp copies testdata/symfony-app to a new temporary directory and returns its path.
func sflCopyApp(t *testing.T) string {
	t.Helper()
	return copyTestdata(t, "symfony-app", filepath.Join(t.TempDir(), "symfony-app"))
}

// sflStart starts askrd with one worker running the Symfony worker on the app at base.
func sflStart(t *testing.T, base string, env ...string) *server {
	t.Helper()
	return sflServe(t, base, "examples/symfony-worker.php", nil, env...)
}

// sflServe starts askrd with one worker running script (relative to the repository) on the app at
// base, with extra serve flags.
func sflServe(t *testing.T, base, script string, args []string, env ...string) *server {
	t.Helper()
	return startAskrd(t, opts{
		root:   filepath.Join(base, "public"),
		script: filepath.Join(repoRoot(t), script),
		env:    append([]string{"ASKR_APP_BASE=" + base}, env...),
		args:   append([]string{"--workers", "1"}, args...),
	})
}

// sflReply is a response of the test app.
type sflReply struct {
	status int
	header http.Header
	body   string
	m      map[string]any // the body as JSON, if it is an object
}

// sflGet sends GET path with c (nil: a client that keeps no cookies).
func sflGet(t *testing.T, s *server, c *http.Client, path string) sflReply {
	t.Helper()
	if c == nil {
		c = lvClient(nil)
	}
	resp, err := c.Get(s.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", path, err)
	}
	r := sflReply{status: resp.StatusCode, header: resp.Header, body: string(b)}
	json.Unmarshal(b, &r.m)
	return r
}

// sflJSON is sflGet of a route that must answer 200 with a JSON object.
func sflJSON(t *testing.T, s *server, c *http.Client, path string) map[string]any {
	t.Helper()
	r := sflGet(t, s, c, path)
	if r.status != 200 || r.m == nil {
		t.Fatalf("GET %s: status %d, body %.300s; want 200 and a JSON object", path, r.status, r.body)
	}
	return r.m
}

// sessionCookie returns the value of the session cookie r sets, or "".
func (r sflReply) sessionCookie() string {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == sflSessionCookie {
			return c.Value
		}
	}
	return ""
}

// sflWaitLog polls askrd's log until it contains substr; unlike s.waitLog it fails t, a subtest.
func sflWaitLog(t *testing.T, s *server, substr string) {
	t.Helper()
	if !poll(10*time.Second, func() bool { return strings.Contains(s.logs.String(), substr) }) {
		t.Fatalf("askrd did not log %q within 10s", substr)
	}
}

// TestSfLeaks: for each kind of state a request can leave in a Symfony worker, one request sets it
// and the next one, from another client, finds none of it (normal and CoW mode). The subtests
// share one server with one worker.
func TestSfLeaks(t *testing.T) {
	sfSkipWithoutSymfony(t)
	s := sflStart(t, sflCopyApp(t), `ASKR_SYMFONY_KERNEL=LeakTest\Kernel`)
	// The worker's state after boot, as the first request finds it.
	first := sflJSON(t, s, nil, "/seen")
	pid, timezone := first["pid"], first["timezone"]
	lvWant(t, "first request: seen", first["seen"], []any{})

	t.Run("SessionWithAndWithoutCookie", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		owner := lvClient(jar)
		lvWant(t, "owner's 1st request: counter", sflJSON(t, s, owner, "/session")["counter"], 1)
		lvWant(t, "owner's 2nd request: counter", sflJSON(t, s, owner, "/session")["counter"], 2)
		// A visitor without a cookie gets a new session, every time (the bug: 3).
		for i := 0; i < 3; i++ {
			r := sflGet(t, s, nil, "/session")
			lvWant(t, "visitor without a cookie: counter", r.m["counter"], 1)
			if r.sessionCookie() == "" {
				t.Errorf("visitor without a cookie: no %s cookie set: %v", sflSessionCookie, r.header["Set-Cookie"])
			}
		}
		lvWant(t, "owner's 3rd request: counter", sflJSON(t, s, owner, "/session")["counter"], 3)
	})

	t.Run("SessionLeftOpen", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		owner := lvClient(jar)
		lvWant(t, "owner's 1st request: counter", sflJSON(t, s, owner, "/session")["counter"], 1)
		// The session is started while the response is sent, after Symfony's listener saved it:
		// the request ends with the session open and counter = 100 in it.
		open := sflJSON(t, s, owner, "/session/open")
		lvWant(t, "/session/open: session open", open["open"], true)
		for i := 0; i < 2; i++ {
			r := sflGet(t, s, nil, "/session")
			lvWant(t, "next visitor without a cookie: counter", r.m["counter"], 1)
			if c := r.sessionCookie(); c == "" || c == open["session_id"] {
				t.Errorf("next visitor without a cookie: session cookie %q; want a new session, not %v", c, open["session_id"])
			}
		}
		// As under php-fpm, the session open at the end of the request was written.
		lvWant(t, "owner after /session/open: counter", sflJSON(t, s, owner, "/session")["counter"], 101)
	})

	t.Run("KernelResetService", func(t *testing.T) {
		a := sflJSON(t, s, nil, "/seen?add=alice&x=1")
		lvWant(t, "alice's request: seen", a["seen"], []any{"alice"})
		b := sflJSON(t, s, nil, "/seen")
		lvWant(t, "next request: seen (RequestLog, tagged kernel.reset)", b["seen"], []any{})
		// Same worker, same container: the service was reset, not recreated by a new process, and
		// the untagged WorkerTally kept counting.
		lvWant(t, "next request: pid", b["pid"], pid)
		lvWant(t, "next request: served (WorkerTally, not tagged)", b["served"], a["served"].(float64)+1)
	})

	t.Run("ThrowingRoutes", func(t *testing.T) {
		for _, path := range []string{"/throw?add=mallory", "/throw?add=mallory&late=1"} {
			r := sflGet(t, s, nil, path)
			lvWant(t, path+": status", r.status, 500)
			// What it left: the request log, the default timezone, the session (counter 50).
			m := sflJSON(t, s, nil, "/seen")
			lvWant(t, "after "+path+": seen", m["seen"], []any{})
			lvWant(t, "after "+path+": timezone", m["timezone"], timezone)
			lvWant(t, "after "+path+": session_status (PHP_SESSION_NONE)", m["session_status"], 1)
			lvWant(t, "after "+path+": session_id", m["session_id"], "")
			lvWant(t, "after "+path+": pid (the worker survived)", m["pid"], pid)
			lvWant(t, "after "+path+": counter without a cookie", sflJSON(t, s, nil, "/session")["counter"], 1)
		}
		sflWaitLog(t, s, "thrown on purpose while the /throw?late=1 response was sent")
	})

	// Doctrine through stand-ins (testdata/symfony-app/src/StandIn: the DBAL Connection methods the
	// worker calls, the "doctrine" registry as DoctrineBundle names its services); Debian's Symfony
	// has no DoctrineBundle. The app opens its connection while booting.
	t.Run("DoctrineConnectionFromBoot", func(t *testing.T) {
		m := sflJSON(t, s, nil, "/db")
		lvWant(t, "first /db: connected at start (the boot's connection is closed before serving)", m["connected_at_start"], false)
		lvWant(t, "first /db: connection opened by this worker (not inherited from a CoW template)", m["connected_by_this_process"], true)
	})

	t.Run("DoctrineTransactionLeftOpen", func(t *testing.T) {
		before := sflJSON(t, s, nil, "/db")["rollbacks"].(float64)
		lvWant(t, "/db/begin?n=3: level", sflJSON(t, s, nil, "/db/begin?n=3")["level"], 3)
		m := sflJSON(t, s, nil, "/db")
		lvWant(t, "next request: transaction level", m["level"], 0)
		lvWant(t, "next request: rollbacks", m["rollbacks"], before+3)
		lvWant(t, "next request: connected at start (kept)", m["connected_at_start"], true)
		lvWant(t, "next request: pid", m["pid"], pid)
		lvWant(t, "/db/begin?n=2&throw=1: status", sflGet(t, s, nil, "/db/begin?n=2&throw=1").status, 500)
		lvWant(t, "after the throw: transaction level", sflJSON(t, s, nil, "/db")["level"], 0)
	})

	t.Run("LogIsClean", func(t *testing.T) {
		for _, bad := range []string{"PHP Warning", "PHP Notice", "Deprecated", "reset after a request failed"} {
			if strings.Contains(s.logs.String(), bad) {
				t.Errorf("askrd log contains %q", bad)
			}
		}
	})

	// kernel.terminate runs after the client has the response (php-fpm: fastcgi_finish_request()):
	// the listener waits for a file the test creates only once it has read the whole response.
	t.Run("TerminateAfterResponse", func(t *testing.T) {
		dir := t.TempDir()
		goFile, marker := filepath.Join(dir, "go"), filepath.Join(dir, "marker")
		sflJSON(t, s, nil, "/terminate?go="+url.QueryEscape(goFile)+"&marker="+url.QueryEscape(marker))
		if err := os.WriteFile(goFile, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		var got []byte
		if !poll(10*time.Second, func() bool { got, _ = os.ReadFile(marker); return len(got) > 0 }) {
			t.Fatal("the kernel.terminate listener wrote no marker within 10 s")
		}
		lvWant(t, "kernel.terminate listener", string(got), "after the response")
		// The worker serves on (the reset ran after the listener).
		lvWant(t, "next request: pid", sflJSON(t, s, nil, "/seen")["pid"], pid)
	})

	// Last: it ends the worker.
	t.Run("FailingResetEndsWorker", func(t *testing.T) {
		// The reset runs after the response; the worker exits there. A request sent right behind
		// (askrd may already have queued it for that worker) must still be answered, by the
		// replacement (one worker), which starts from boot: sflJSON fails on a 502.
		c := lvClient(nil)
		done := make(chan sflReply, 1)
		r := sflJSON(t, s, c, "/reset-fails")
		go func() {
			resp, err := c.Get(s.URL + "/seen")
			if err != nil {
				done <- sflReply{body: err.Error()}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			rep := sflReply{status: resp.StatusCode, body: string(b)}
			json.Unmarshal(b, &rep.m)
			done <- rep
		}()
		lvWant(t, "/reset-fails: pid", r["pid"], pid)
		sflWaitLog(t, s, "askr symfony worker: reset after a request failed, the worker exits (askrd starts another): "+
			"RuntimeException: RequestLog::reset() fails on purpose")
		next := <-done
		if next.status != 200 || next.m == nil {
			t.Fatalf("GET /seen right after /reset-fails: status %d, body %.300s; want 200 from the replacement", next.status, next.body)
		}
		m := next.m
		if m["pid"] == pid {
			t.Errorf("after a failed reset the same worker (pid %v) served on", pid)
		}
		lvWant(t, "replacement: served", m["served"], 1)
		lvWant(t, "replacement: seen", m["seen"], []any{})
	})
}

// TestSfWorkerBoot: the worker's boot conventions (vendor/autoload.php, APP_ENV) and its one-line
// errors for an app it cannot boot, which make askrd serve exit 1 with that line.
func TestSfWorkerBoot(t *testing.T) {
	sfSkipWithoutSymfony(t)

	t.Run("VendorAutoload", func(t *testing.T) {
		// A Composer layout: vendor/autoload.php and no config/bootstrap.php (no symfony/dotenv
		// here, so no .env is read).
		base := sflCopyApp(t)
		os.MkdirAll(filepath.Join(base, "vendor"), 0o755)
		if err := os.Rename(filepath.Join(base, "config", "bootstrap.php"), filepath.Join(base, "vendor", "autoload.php")); err != nil {
			t.Fatal(err)
		}
		s := sflStart(t, base, `ASKR_SYMFONY_KERNEL=LeakTest\Kernel`, "APP_ENV=leaktest")
		lvWant(t, "GET /seen: seen", sflJSON(t, s, nil, "/seen")["seen"], []any{})
		p := filepath.Join(base, "var", "cache", "leaktest", "LeakTest_KernelLeaktestContainer.php")
		if _, err := os.Stat(p); err != nil {
			t.Errorf("APP_ENV=leaktest: no container compiled for that environment: %v", err)
		}
	})

	for _, tc := range []struct {
		name  string
		setup func(base string) []string // returns extra environment
		want  string
	}{
		{"DefaultKernelMissing", func(string) []string { return nil },
			`askr symfony worker: kernel class App\\Kernel not found`},
		{"KernelMissing", func(string) []string { return []string{`ASKR_SYMFONY_KERNEL=LeakTest\Nope`} },
			`askr symfony worker: kernel class LeakTest\\Nope not found`},
		{"NotAKernel", func(string) []string { return []string{`ASKR_SYMFONY_KERNEL=LeakTest\WorkerTally`} },
			`askr symfony worker: LeakTest\\WorkerTally is not a Symfony kernel`},
		{"NoAutoloader", func(base string) []string {
			os.Remove(filepath.Join(base, "config", "bootstrap.php"))
			return []string{`ASKR_SYMFONY_KERNEL=LeakTest\Kernel`}
		}, "has neither config/bootstrap.php nor vendor/autoload.php"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := sflCopyApp(t)
			args := []string{"serve", "--listen", freeAddr(t), "--root", filepath.Join(base, "public"),
				"--worker-script", filepath.Join(repoRoot(t), "examples", "symfony-worker.php"), "--workers", "1"}
			if cowMode() {
				args = append(args, "--cow")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, askrdBinary(t), args...)
			cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir(), "ASKR_APP_BASE="+base)
			cmd.Env = append(cmd.Env, tc.setup(base)...)
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("askrd still ran 30 s after starting a worker that cannot boot:\n%s", out)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("askrd serve ended with %v; want exit status 1", err)
			}
			if !strings.Contains(string(out), "askrd failed") || !strings.Contains(string(out), tc.want) {
				t.Errorf("askrd log lacks \"askrd failed\" with %q:\n%s", tc.want, out)
			}
		})
	}
}

// TestSfHttpCache: with framework.http_cache enabled (APP_ENV=httpcache in the test app) the
// worker serves through the HttpCache, as Kernel::handle() does under php-fpm: a cacheable
// response's second hit comes from the cache and does not reach the app.
func TestSfHttpCache(t *testing.T) {
	sfSkipWithoutSymfony(t)
	s := sflStart(t, sflCopyApp(t), `ASKR_SYMFONY_KERNEL=LeakTest\Kernel`, "APP_ENV=httpcache")
	a := sflGet(t, s, nil, "/cached")
	b := sflGet(t, s, nil, "/cached")
	lvWant(t, "1st /cached: status", a.status, 200)
	lvWant(t, "2nd /cached: status", b.status, 200)
	lvWant(t, "2nd /cached: served (the app's count)", b.m["served"], a.m["served"])
	if h := b.header.Get("X-Symfony-Cache"); !strings.Contains(h, "fresh") {
		t.Errorf("2nd /cached: X-Symfony-Cache %q; want a fresh hit", h)
	}
	// A route that is not cacheable still reaches the app every time.
	lvWant(t, "/seen: seen", sflJSON(t, s, nil, "/seen")["seen"], []any{})
	// The cache's store remembers a key per Request object, for the life of the process: the
	// worker forgets them after each request, or it keeps every request it served. Only this
	// request's own key is left.
	for i := 0; i < 5; i++ {
		sflGet(t, s, nil, "/cached")
	}
	lvWant(t, "/cache-keys: keys", sflJSON(t, s, nil, "/cache-keys")["keys"], 1)
}

// TestSfDebug: APP_DEBUG=1 on an app with symfony/runtime (a stand-in SymfonyRuntime class, which
// makes FrameworkBundle leave error handling to the Runtime) gets Symfony's ErrorHandler and
// DebugClassLoader, as under the Runtime.
func TestSfDebug(t *testing.T) {
	sfSkipWithoutSymfony(t)
	s := sflStart(t, sflCopyApp(t), `ASKR_SYMFONY_KERNEL=LeakTest\Kernel`, "APP_DEBUG=1", "LEAKTEST_RUNTIME=1")
	m := sflJSON(t, s, nil, "/debug")
	lvWant(t, "error handler is Symfony's ErrorHandler ("+fmt.Sprint(m["error_handler"])+")", m["symfony_error_handler"], true)
	lvWant(t, "DebugClassLoader registered", m["debug_class_loader"], true)
}

// TestSfParanoid: the detector (--paranoid) with the Symfony worker's own probes stays silent on
// a clean run of the test app's routes and names the route of a leak: a static array that grows
// (GET /leak) and a security token left in the token storage (GET /login).
func TestSfParanoid(t *testing.T) {
	sfSkipWithoutSymfony(t)
	s := sflServe(t, sflCopyApp(t), "examples/symfony-worker.php", []string{"--paranoid"},
		`ASKR_SYMFONY_KERNEL=LeakTest\Kernel`, "ASKR_PARANOID_QUIET=1")
	jar, _ := cookiejar.New(nil)
	owner := lvClient(jar)
	for i := 0; i < 4; i++ {
		for _, p := range []string{"/seen", "/seen?add=a", "/session", "/session/open", "/db", "/db/begin?n=2",
			"/throw?add=m", "/cached", "/terminate"} {
			sflGet(t, s, nil, p)
			sflGet(t, s, owner, p)
		}
	}
	sflJSON(t, s, nil, "/seen") // the detector checks before it takes a request: this one checks the last
	if strings.Contains(s.logs.String(), `msg="askr paranoid: `) {
		t.Fatalf("the detector reported a clean run:\n%s", s.logs.String())
	}
	for i := 0; i < 3; i++ {
		sflJSON(t, s, nil, "/leak")
		sflJSON(t, s, nil, "/login")
	}
	sflJSON(t, s, nil, "/seen")
	sflWaitLog(t, s, `leak left statics LeakTest\\Hoard::$items changed (array:`) // slog doubles the backslash
	sflWaitLog(t, s, "login left sf-auth security.token_storage changed")
}

// TestSfNaive is the negative control: the loop a user writes from askr's README (handle, send,
// terminate; no resets) on the same app shows leaks that the generic worker, run through the same
// requests, does not. (TestSfLeaks/KernelResetService would pass under the naive loop too:
// Kernel::handle() resets the kernel.reset services at the start of the next request.)
func TestSfNaive(t *testing.T) {
	sfSkipWithoutSymfony(t)
	for _, tc := range []struct {
		name, script string
		leaks        bool
	}{
		{"Naive", "internal/integration/testdata/symfony-naive-worker.php", true},
		{"Generic", "examples/symfony-worker.php", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sflServe(t, sflCopyApp(t), tc.script, nil, `ASKR_SYMFONY_KERNEL=LeakTest\Kernel`)
			tz := sflJSON(t, s, nil, "/seen")["timezone"]
			// A request that changes the default timezone (as TestSfLeaks/ThrowingRoutes).
			sflGet(t, s, nil, "/throw?add=m")
			after := sflJSON(t, s, nil, "/seen")["timezone"]
			lvWant(t, fmt.Sprintf("timezone left by /throw (%v, boot: %v)", after, tz), after != tz, tc.leaks)
			// A session used while the response is sent (as TestSfLeaks/SessionLeftOpen): does the
			// next visitor, without a cookie, get that session?
			open := sflJSON(t, s, nil, "/session/open")
			r := sflGet(t, s, nil, "/session")
			got := r.m["counter"] != 1.0 || r.sessionCookie() == open["session_id"]
			lvWant(t, fmt.Sprintf("session of /session/open handed to the next visitor (counter %v)", r.m["counter"]), got, tc.leaks)
		})
	}
}
