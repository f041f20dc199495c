package integration

// Tests of the state-bleed detector (askrd serve --paranoid, [worker] paranoid = true,
// internal/phpruntime/paranoid.php) on real php-cgi workers. The helpers here are prefixed pd.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pdLine matches a line askrd logged from a worker, capturing its message.
var pdLine = regexp.MustCompile(`msg="((?:[^"\\]|\\.)*)"`)

// pdReports returns the detector's lines in askrd's log, unquoted, in order.
func pdReports(logs string) []string {
	var out []string
	for line := range strings.Lines(logs) {
		m := pdLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		msg, err := strconv.Unquote(`"` + m[1] + `"`)
		if err == nil && strings.HasPrefix(msg, "askr paranoid: ") {
			out = append(out, msg)
		}
	}
	return out
}

// pdMatching returns the reports that start with prefix (after "askr paranoid: ").
func pdMatching(logs, prefix string) []string {
	var out []string
	for _, r := range pdReports(logs) {
		if strings.HasPrefix(r, "askr paranoid: "+prefix) {
			out = append(out, r)
		}
	}
	return out
}

// pdStart starts askrd with one worker running testdata/paranoid-worker.php.
func pdStart(t *testing.T, o opts) *server {
	t.Helper()
	o.script = filepath.Join(repoRoot(t), "internal", "integration", "testdata", "paranoid-worker.php")
	o.args = append([]string{"--workers", "1"}, o.args...)
	return startAskrd(t, o)
}

// pdSync returns once askrd has logged everything the (single) worker wrote before this call:
// the worker logs a mark in a request of its own, after what the previous request left was checked.
func pdSync(t *testing.T, s *server, id string) {
	t.Helper()
	if r := s.get("/mark?id=" + id); r.status != 200 {
		t.Fatalf("GET /mark?id=%s = %d; want 200", id, r.status)
	}
	s.waitLog("paranoid-test mark "+id+"\"", 15*time.Second)
}

// A worker leaking one kind of state per route gets each reported once, naming the route (without
// its query) and what changed: a route's first request is its warm-up, its second is reported, a
// third within the quiet period is not, and the next line, after it, counts what was not. A clean
// route is never reported.
func TestParanoidReportsEachKind(t *testing.T) {
	s := pdStart(t, opts{args: []string{"--paranoid"}, env: []string{"ASKR_PARANOID_QUIET=3"}})
	if !strings.Contains(s.logs.String(), "paranoid mode on") {
		t.Errorf("askrd --paranoid did not warn that paranoid mode is on")
	}
	if r := s.get("/loaded"); r.body != "loaded" {
		t.Errorf("GET /loaded = %q with --paranoid; want the detector loaded", r.body)
	}
	// Clean routes, each warmed up and then served again.
	for _, p := range []string{"/a", "/b", "/c?x=1", "/a", "/b", "/c", "/a"} {
		s.get(p)
	}
	pdSync(t, s, "clean")
	if r := pdReports(s.logs.String()); len(r) != 0 {
		t.Fatalf("the detector reported clean requests: %q", r)
	}

	for _, k := range []struct{ path, kind, want string }{
		{"/leak/static", "statics", "Leaky::$seen changed (array:1 -> array:2)"},
		{"/leak/global", "globals", "$leak changed (int:1 -> int:2)"},
		{"/leak/ini", "ini", `user_agent changed (string:"leak `},
		{"/leak/watch", "store", "items changed (int:1 -> int:2)"},
	} {
		s.get(k.path)          // the route's warm-up
		s.get(k.path + "?q=1") // reported
		s.get(k.path)          // within the quiet period: counted, not reported
		pdSync(t, s, k.kind)
		got := pdMatching(s.logs.String(), "GET "+k.path+" ")
		if len(got) != 1 {
			t.Errorf("after three GET %s: %d reports naming the route; want 1: %q", k.path, len(got), pdReports(s.logs.String()))
			continue
		}
		want := fmt.Sprintf("askr paranoid: GET %s left %s %s", k.path, k.kind, k.want)
		if !strings.HasPrefix(got[0], want) || !strings.HasSuffix(got[0], "; further "+k.kind+" changes are not reported for 3s") {
			t.Errorf("report = %q; want %q…; further %s changes are not reported for 3s", got[0], want, k.kind)
		}
	}
	if n := len(pdReports(s.logs.String())); n != 4 {
		t.Errorf("%d reports; want 4, one per kind: %q", n, pdReports(s.logs.String()))
	}

	// After the quiet period the next leak is reported again, with the count of those that were not.
	var next []string
	suppressed := 1 // the third /leak/static above
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; len(next) == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no second statics report within 20s of leaking every few ms (quiet period 3s): %q", pdReports(s.logs.String()))
		}
		s.get("/leak/static")
		pdSync(t, s, fmt.Sprintf("again-%d", i))
		next = pdMatching(s.logs.String(), "GET /leak/static left statics")[1:]
		if len(next) == 0 {
			suppressed++
		}
	}
	if want := fmt.Sprintf("; %d more statics changes were not reported;", suppressed); !strings.Contains(next[0], want) {
		t.Errorf("report after the quiet period = %q; want it to say %q", next[0], want)
	}

	// Last, as the buffer it leaves swallows every later response of this worker. The output
	// buffer level's clean state is known: no warm-up.
	s.get("/leak/ob")
	pdSync(t, s, "ob")
	if got := pdMatching(s.logs.String(), "GET /leak/ob "); len(got) != 1 || !strings.HasPrefix(got[0], "askr paranoid: GET /leak/ob left ob level changed (1 -> 2);") {
		t.Errorf("after GET /leak/ob: %q; want one report of the output buffer level 1 -> 2", got)
	}
}

// A route's first request is its warm-up, and requests with an id in their path are one route:
// the path's numeric, UUID and long hex segments are collapsed, or a worker names the route with
// askr_paranoid_route(). A static that grows at every request, each with a new id, is reported at
// the second, naming the route.
func TestParanoidRouteKeys(t *testing.T) {
	for _, c := range []struct{ first, second, route string }{
		{"/users/1", "/users/2", "/users/{n}"},
		{"/files/0b7e2a52-8c1d-4a3e-9f6b-1c2d3e4f5a6b", "/files/0B7E2A52-8C1D-4A3E-9F6B-1C2D3E4F5A6C", "/files/{uuid}"},
		{"/t/0123456789abcdef0123", "/t/fedcba98765432100123", "/t/{hex}"},
		{"/p/alice?route=profile", "/p/bob?route=profile", "profile"},
	} {
		s := pdStart(t, opts{args: []string{"--paranoid"}})
		s.get(c.first)
		s.get(c.second)
		pdSync(t, s, "keys")
		want := "askr paranoid: GET " + c.route + " left statics Grown::$ids changed (array:"
		got := pdMatching(s.logs.String(), "GET ")
		if len(got) != 1 || !strings.HasPrefix(got[0], want) {
			t.Errorf("GET %s, then %s: reports %q; want one, %q…", c.first, c.second, got, want)
		}
		s.stop()
	}
}

// A worker remembers 1 000 routes as warmed up; past that, a new route's first request is checked
// too, and the worker says so once.
func TestParanoidRouteCap(t *testing.T) {
	s := pdStart(t, opts{args: []string{"--paranoid"}})
	s.get("/mark?id=x") // /mark: one route of the 1 000
	for i := range 999 {
		if r := s.get(fmt.Sprintf("/r/x%d", i)); r.status != 200 {
			t.Fatalf("GET /r/x%d = %d", i, r.status)
		}
	}
	s.get("/leak/static") // the 1 001st route: checked at its first request
	s.get("/r/x1")
	pdSync(t, s, "cap")
	logs := s.logs.String()
	if got := pdMatching(logs, "this worker has served 1000 routes;"); len(got) != 1 {
		t.Errorf("reports %q; want the worker to say once that it has served 1000 routes", pdReports(logs))
	}
	if got := pdMatching(logs, "GET /leak/static left statics Leaky::$seen changed (array:0 -> array:1);"); len(got) != 1 {
		t.Errorf("reports %q; want the first GET /leak/static past the cap reported", pdReports(logs))
	}
}

// What clean frameworks change in ini settings is no leak: the default locale Symfony's
// Request::setLocale() sets at every request is not watched, and the session settings its session
// storage sets when first built (in a request that may not be its route's first) are a new
// baseline; a later change of them is reported.
func TestParanoidIniLazy(t *testing.T) {
	s := pdStart(t, opts{args: []string{"--paranoid"}})
	for _, p := range []string{"/locale?l=fr_FR", "/locale?l=de_DE", "/locale?l=nb_NO",
		"/sess", "/sess?open=1234", "/sess?open=1234", "/sess"} {
		s.get(p)
	}
	pdSync(t, s, "lazy")
	if r := pdReports(s.logs.String()); len(r) != 0 {
		t.Errorf("reports %q; want none", r)
	}
	s.get("/sess?open=99")
	pdSync(t, s, "again")
	want := `askr paranoid: GET /sess left ini session.gc_maxlifetime changed (string:"1234" -> string:"99");`
	if r := pdReports(s.logs.String()); len(r) != 1 || !strings.HasPrefix(r[0], want) {
		t.Errorf("reports %q; want one, %q…", r, want)
	}
}

// A probe that fails is said once per worker, and its failure is taken for no change (the Laravel
// kinds' probes go the same way).
func TestParanoidProbeFails(t *testing.T) {
	s := pdStart(t, opts{args: []string{"--paranoid"}, env: []string{"ASKR_PARANOID_QUIET=1"}})
	for _, p := range []string{"/a", "/a", "/break", "/a", "/b", "/break", "/a"} {
		s.get(p)
	}
	pdSync(t, s, "fails")
	want := "askr paranoid: the fragile probe failed; fragile is not checked while it fails (said once per worker): RuntimeException: the store is gone at "
	if r := pdReports(s.logs.String()); len(r) != 1 || !strings.HasPrefix(r[0], want) {
		t.Errorf("reports %q; want one, %q…", r, want)
	}
}

// A string left in a global or a static is reported by its length and a short hash, never its
// value (a token, a session id, an email address).
func TestParanoidHidesStrings(t *testing.T) {
	s := pdStart(t, opts{args: []string{"--paranoid"}})
	var tokens []string
	for range 3 {
		tokens = append(tokens, s.get("/leak/secret").body)
	}
	pdSync(t, s, "secret")
	logs := s.logs.String()
	for kind, key := range map[string]string{"globals": "$token", "statics": "Secrets::$last"} {
		want := regexp.MustCompile(`^askr paranoid: GET /leak/secret left ` + kind + ` ` + regexp.QuoteMeta(key) +
			` changed \(string\(20\):[0-9a-f]{8} -> string\(20\):[0-9a-f]{8}\);`)
		if got := pdMatching(logs, "GET /leak/secret left "+kind+" "); len(got) != 1 || !want.MatchString(got[0]) {
			t.Errorf("reports %q; want one matching %s", got, want)
		}
	}
	for _, tok := range tokens {
		if len(tok) != 20 || strings.Contains(logs, tok) {
			t.Errorf("GET /leak/secret = %q (want a token of 20 bytes), in askrd's log: %t", tok, strings.Contains(logs, tok))
		}
	}
}

// Off by default: the detector's file is not loaded (a user's ASKR_PARANOID does not reach the
// workers), askr_paranoid_watch() does nothing, and leaks go unreported.
func TestParanoidOff(t *testing.T) {
	s := pdStart(t, opts{env: []string{"ASKR_PARANOID=1", "ASKR_PARANOID_QUIET=3"}})
	if r := s.get("/loaded"); r.status != 200 || r.body != "not loaded" {
		t.Errorf("GET /loaded = %d %q without --paranoid; want 200 \"not loaded\"", r.status, r.body)
	}
	for range 4 {
		for _, p := range []string{"/a", "/leak/static", "/leak/global", "/leak/ini", "/leak/watch", "/leak/ob"} {
			s.get(p)
		}
	}
	pdSync(t, s, "off")
	logs := s.logs.String()
	if r := pdReports(logs); len(r) != 0 || strings.Contains(logs, "paranoid mode on") {
		t.Errorf("without --paranoid askrd logged %q (paranoid mode on: %t); want nothing", r, strings.Contains(logs, "paranoid mode on"))
	}
	if strings.Contains(logs, "the probe ran without the detector") {
		t.Errorf("askr_paranoid_watch() ran its probe without the detector")
	}
}

// [worker] paranoid = true in askr.toml turns the detector on as --paranoid does, without the
// "not supported" notice it had before this version implemented it.
func TestParanoidConfigKey(t *testing.T) {
	s := pdStart(t, opts{config: "[worker]\nparanoid = true\n"})
	if r := s.get("/loaded"); r.body != "loaded" {
		t.Errorf("GET /loaded = %q with paranoid = true; want the detector loaded", r.body)
	}
	for _, p := range []string{"/a", "/leak/static", "/leak/static"} {
		s.get(p)
	}
	pdSync(t, s, "config")
	logs := s.logs.String()
	if got := pdMatching(logs, "GET /leak/static left statics Leaky::$seen changed"); len(got) != 1 {
		t.Errorf("paranoid = true: reports %q; want the static leak reported once", pdReports(logs))
	}
	if !strings.Contains(logs, "paranoid mode on") || strings.Contains(logs, "worker.paranoid") {
		t.Errorf("paranoid = true: want the paranoid warning and no notice about worker.paranoid:\n%s", logs)
	}
}

// Per-request mode has no long-lived state to watch: --paranoid says so once and askrd serves.
func TestParanoidPerRequest(t *testing.T) {
	s := startAskrd(t, opts{perRequest: true, args: []string{"--workers", "1", "--paranoid"}})
	if r := s.get("/"); r.status != 200 {
		t.Errorf("GET / in per-request mode with --paranoid = %d; want 200", r.status)
	}
	logs := s.logs.String()
	if c := strings.Count(logs, "paranoid: nothing to watch in per-request mode"); c != 1 || strings.Contains(logs, "paranoid mode on") {
		t.Errorf("per-request mode with --paranoid logged the notice %d times (and paranoid mode on: %t); want once, and no warning", c, strings.Contains(logs, "paranoid mode on"))
	}
}

// pdLaravel starts askrd with --paranoid and workers workers on a private copy of the Laravel test
// app (testdata/laravel-app), running the worker script script (absolute).
func pdLaravel(t *testing.T, script string, workers int, env ...string) *server {
	t.Helper()
	lvSkipWithoutPHP(t)
	base := filepath.Join(t.TempDir(), "laravel-app")
	copyExample(t, filepath.Join("..", "internal", "integration", "testdata", "laravel-app"), base, "storage", filepath.Join("bootstrap", "cache"))
	// What the generic worker makes at boot; the naive loop does not.
	for _, d := range []string{"storage/framework/sessions", "storage/framework/views", "storage/framework/cache", "bootstrap/cache"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return startAskrd(t, opts{
		root:   filepath.Join(base, "public"),
		script: script,
		env:    append([]string{"ASKR_APP_BASE=" + base}, env...),
		args:   []string{"--workers", strconv.Itoa(workers), "--paranoid"},
	})
}

// pdBarrier sends GET /leak/static (a static array that grows) until every one of pids (workers
// of s) has reported it, and returns the log up to that point: each worker's lines reach the log
// in the order it wrote them, so whatever it reported before is in it.
func pdBarrier(t *testing.T, s *server, pids map[string]bool) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		logs := s.logs.String()
		missing := 0
		for pid := range pids {
			if !pdReportedBy(logs, "GET /leak/static left statics", pid) {
				missing++
			}
		}
		if missing == 0 {
			return logs
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /leak/static was not reported by every worker (%v) within 60s: %q", pids, pdReports(logs))
		}
		if r := s.get("/leak/static"); r.status != 200 {
			t.Fatalf("GET /leak/static = %d; want 200: %.300s", r.status, r.body)
		}
	}
}

// pdReportedBy reports whether the worker with pid logged a report starting with prefix.
func pdReportedBy(logs, prefix, pid string) bool {
	for line := range strings.Lines(logs) {
		if strings.HasSuffix(strings.TrimSpace(line), " pid="+pid) && strings.Contains(line, `msg="askr paranoid: `+prefix) {
			return true
		}
	}
	return false
}

// A worker without resets (the README's loop) leaves what a request binds in Laravel's container:
// /leak/instance binds a new object to one fixed key at every call (as a middleware binding the
// tenant would), reported with the route (the container is compared with its state after boot,
// which this loop leaves to the first request, no warm-up) at a later call, the quiet period over
// (the object is a new one each time). Laravel's own Router binds the matched Route at every
// request: left over too, reported for the first /leak/instance (the first /pid's was boot's). The
// session the first request left in the store is reported too (the leak), as are the
// growing static array, the user /auth/login left logged in, the cookie /cookie/queue left queued
// and the transaction /tx/begin left open.
func TestParanoidLaravelNaiveWorker(t *testing.T) {
	s := pdLaravel(t, filepath.Join(repoRoot(t), "internal", "integration", "testdata", "laravel-naive-worker.php"), 1, "ASKR_PARANOID_QUIET=1")
	for _, p := range []string{"/pid", "/pid"} {
		if r := s.get(p); r.status != 200 {
			t.Fatalf("GET %s = %d; want 200: %.300s", p, r.status, r.body)
		}
	}
	pid := s.get("/pid").body
	var m struct{ Pid int }
	if err := json.Unmarshal([]byte(pid), &m); err != nil {
		t.Fatalf("GET /pid = %q: %v", pid, err)
	}
	// /leak/instance until its rebinding is reported (the first call's report may be of the Route).
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r := s.get("/leak/instance"); r.status != 200 {
			t.Fatalf("GET /leak/instance = %d; want 200: %.300s", r.status, r.body)
		}
		if len(pdMatching(s.logs.String(), "GET /leak/instance left container leaks.tenant changed (stdClass#")) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /leak/instance, rebinding leaks.tenant at every call for 30s, was not reported (quiet period 1s): %q", pdReports(s.logs.String()))
		}
	}
	// A user logged in, a cookie queued, a transaction left open: each kind's first change, so
	// reported at once whatever the quiet period. /tx/begin comes last: its transaction keeps
	// SQLite's write lock (the requests after it here do not write).
	for _, p := range []string{"/auth/login?id=1", "/cookie/queue?v=x", "/tx/begin"} {
		if r := s.get(p); r.status != 200 {
			t.Fatalf("GET %s = %d; want 200: %.300s", p, r.status, r.body)
		}
	}
	logs := pdBarrier(t, s, map[string]bool{strconv.Itoa(m.Pid): true})
	for _, want := range []string{
		"GET /auth/login left auth guard web new (a user);",
		"GET /cookie/queue left cookies queued new (1);",
		"GET /tx/begin left transactions connection sqlite new (level 1);",
	} {
		if got := pdMatching(logs, want); len(got) != 1 {
			t.Errorf("reports %q; want %q once", pdReports(logs), want)
		}
	}
	if got := pdMatching(logs, "GET /leak/instance left container Illuminate\\Routing\\Route changed (Illuminate\\Routing\\Route#"); len(got) != 1 {
		t.Errorf("reports %q; want the Route the router bound in the first GET /leak/instance reported once", pdReports(logs))
	}
	if got := pdMatching(logs, "GET /pid left session store "); len(got) != 1 {
		t.Errorf("reports %q; want the session the first GET /pid left in the store reported once", pdReports(logs))
	}
	if got := pdMatching(logs, "GET /leak/static left statics Leaks\\Support\\Leaky::$calls changed (array:1 -> array:2);"); len(got) != 1 {
		t.Errorf("reports %q; want the static array that grows reported once, from its second call (its class was first declared in the first)", pdReports(logs))
	}
}

// pdMixed sends n GET requests for paths, in turn ("{n}" in a path becomes the request's number),
// from clients goroutines (each a client without cookies), bounded by a deadline, and fails the
// test on a transport error or a status ok rejects. It returns the bodies of the responses to GET /pid.
func pdMixed(t *testing.T, s *server, paths []string, n, clients int, ok func(path string, status int) bool) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var (
		mu   sync.Mutex
		pids []string
		errs []string
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				p := strings.ReplaceAll(paths[int(i)%len(paths)], "{n}", strconv.FormatInt(i, 10))
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+p, nil)
				resp, err := client.Do(req)
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("GET %s: %v", p, err))
					mu.Unlock()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				if !ok(p, resp.StatusCode) {
					errs = append(errs, fmt.Sprintf("GET %s = %d: %.200s", p, resp.StatusCode, b))
				}
				if p == "/pid" {
					pids = append(pids, string(b))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("%d requests did not finish within 3 minutes", n)
	}
	if len(errs) > 0 {
		t.Fatalf("%d of %d requests failed, the first: %s", len(errs), n, errs[0])
	}
	return pids
}

// pdLaravelClean is every route of the Laravel test app but those that leak or fail on purpose;
// each sets or reads state the generic worker resets, the values different at every request.
var pdLaravelClean = []string{
	"/session", "/session/put?v={n}", "/session/get", "/auth/login?id=1", "/auth/user", "/auth/login?id=2",
	"/cookie/queue?v={n}", "/cookie/none", "/view/share?v={n}", "/view/read", "/locale/set?l=fr{n}", "/locale",
	"/log/context?v={n}", "/log/read", "/tx/begin", "/tx/read", "/tx/write", "/config/set?v={n}", "/config/read",
	"/container/bind?v={n}", "/container/read", "/url", "/url/force?root=http://example{n}.org", "/url",
	"/cache/put?v={n}", "/cache/get", "/events/listen", "/events/read", "/basket/add?v={n}", "/basket", "/pid",
}

// Under the generic Laravel worker (examples/laravel-worker.php), two workers, 1 000 requests of
// every clean route from four clients leave nothing for the detector to report; /leak/static is
// then reported by each worker with its route (the barrier that shows the log is complete).
func TestParanoidLaravelGenericWorkerSilent(t *testing.T) {
	s := pdLaravel(t, filepath.Join(repoRoot(t), "examples", "laravel-worker.php"), 2)
	pidBodies := pdMixed(t, s, pdLaravelClean, 1000, 4, func(_ string, status int) bool { return status == 200 })
	pids := map[string]bool{}
	for _, b := range pidBodies {
		var m struct{ Pid int }
		if err := json.Unmarshal([]byte(b), &m); err != nil || m.Pid == 0 {
			t.Fatalf("GET /pid = %q; want {\"pid\":…}", b)
		}
		pids[strconv.Itoa(m.Pid)] = true
	}
	logs := pdBarrier(t, s, pids)
	var other []string
	for _, r := range pdReports(logs) {
		if !strings.HasPrefix(r, "askr paranoid: GET /leak/static left statics Leaks\\Support\\Leaky::$calls changed") {
			other = append(other, r)
		}
	}
	if len(other) > 0 {
		t.Errorf("the detector reported %d lines besides /leak/static after 1 000 clean requests: %q", len(other), other)
	}
}

// What /leak/instance binds, which the detector reports under the naive loop
// (TestParanoidLaravelNaiveWorker), is discarded by the generic worker after each request, as is
// the Route the router binds: with one worker and the same requests, nothing in the container is
// reported, though it is compared with its state after boot at every request.
func TestParanoidLaravelGenericDiscards(t *testing.T) {
	s := pdLaravel(t, filepath.Join(repoRoot(t), "examples", "laravel-worker.php"), 1)
	var m struct{ Pid int }
	for _, p := range []string{"/pid", "/pid", "/leak/instance", "/leak/instance?x=1", "/leak/instance"} {
		r := s.get(p)
		if r.status != 200 {
			t.Fatalf("GET %s = %d; want 200: %.300s", p, r.status, r.body)
		}
		if p == "/pid" {
			json.Unmarshal([]byte(r.body), &m)
		}
	}
	logs := pdBarrier(t, s, map[string]bool{strconv.Itoa(m.Pid): true})
	if r := pdReports(logs); len(r) != 1 {
		t.Errorf("reports %q; want only /leak/static's (the instance is discarded, the session emptied)", r)
	}
}

// With Laravel the route is the one the router matched (its URI): GET /leak/static/ is the route
// of GET /leak/static, so it is no warm-up, and the static array it grows is reported naming the
// route, though the generic worker resets the router after each request.
func TestParanoidLaravelRoute(t *testing.T) {
	s := pdLaravel(t, filepath.Join(repoRoot(t), "examples", "laravel-worker.php"), 1)
	for _, p := range []string{"/leak/static", "/leak/static/", "/pid"} {
		if r := s.get(p); r.status != 200 {
			t.Fatalf("GET %s = %d; want 200: %.300s", p, r.status, r.body)
		}
	}
	want := "GET /leak/static left statics Leaks\\Support\\Leaky::$calls changed (array:1 -> array:2);"
	if !poll(15*time.Second, func() bool { return len(pdMatching(s.logs.String(), want)) == 1 }) {
		t.Errorf("after GET /leak/static, /leak/static/, /pid: reports %q; want %q…", pdReports(s.logs.String()), want)
	}
}

// The generic Symfony worker (examples/symfony-worker.php, which also hands the detector the
// container's services) on the Symfony test app: a clean mixed run is silent.
func TestParanoidSymfonySilent(t *testing.T) {
	if _, err := os.Stat("/usr/share/php/Symfony/Component/HttpKernel/Kernel.php"); err != nil {
		t.Skip("Symfony not installed in /usr/share/php/Symfony (apt-get install php-symfony)")
	}
	base := sflCopyApp(t)
	s := startAskrd(t, opts{
		root:   filepath.Join(base, "public"),
		script: filepath.Join(repoRoot(t), "examples", "symfony-worker.php"),
		env:    []string{"ASKR_APP_BASE=" + base, "ASKR_SYMFONY_KERNEL=LeakTest\\Kernel"},
		args:   []string{"--workers", "1", "--paranoid"},
	})
	paths := []string{"/session", "/seen", "/seen?add={n}", "/session/open", "/throw", "/db/begin?n=2", "/db"}
	pdMixed(t, s, paths, 300, 3, func(p string, status int) bool { return status == 200 || (p == "/throw" && status == 500) })
	// After /reset-fails the worker logs why and exits: all it wrote before, including the check
	// of the request before, is then in the log.
	s.get("/reset-fails")
	s.waitLog("reset after a request failed", 15*time.Second)
	if r := pdReports(s.logs.String()); len(r) != 0 {
		t.Errorf("the detector reported a clean run of the Symfony test app: %q", r)
	}
}
