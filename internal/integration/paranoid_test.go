package integration

// Tests of the state-bleed detector (askrd serve --paranoid, [worker] paranoid = true,
// internal/phpruntime/paranoid.php) on real php-cgi workers. The helpers here are prefixed pd.

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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
// its query) and what changed; a second leak of the same kind within the quiet period is not
// reported, and the next line, after it, counts what was not. A clean route is never reported.
func TestParanoidReportsEachKind(t *testing.T) {
	s := pdStart(t, opts{args: []string{"--paranoid"}, env: []string{"ASKR_PARANOID_QUIET=3"}})
	if !strings.Contains(s.logs.String(), "paranoid mode on") {
		t.Errorf("askrd --paranoid did not warn that paranoid mode is on")
	}
	if r := s.get("/loaded"); r.body != "loaded" {
		t.Errorf("GET /loaded = %q with --paranoid; want the detector loaded", r.body)
	}
	// The warm-up and clean requests after it.
	for _, p := range []string{"/a", "/b", "/c?x=1", "/d"} {
		s.get(p)
	}
	pdSync(t, s, "clean")
	if r := pdReports(s.logs.String()); len(r) != 0 {
		t.Fatalf("the detector reported clean requests: %q", r)
	}

	for _, k := range []struct{ path, kind, want string }{
		{"/leak/static", "statics", "Leaky::$seen changed (array:0 -> array:1)"},
		{"/leak/global", "globals", "$leak new (int:1)"},
		{"/leak/ini", "ini", `user_agent changed (string:"" -> string:"leak `},
		{"/leak/watch", "store", "items changed (int:0 -> int:1)"},
	} {
		s.get(k.path + "?q=1")
		s.get(k.path) // within the quiet period: counted, not reported
		pdSync(t, s, k.kind)
		got := pdMatching(s.logs.String(), "GET "+k.path+" ")
		if len(got) != 1 {
			t.Errorf("after two GET %s: %d reports naming the route; want 1: %q", k.path, len(got), pdReports(s.logs.String()))
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
	suppressed := 1 // the second /leak/static above
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

	// Last, as the buffer it leaves swallows every later response of this worker.
	s.get("/leak/ob")
	pdSync(t, s, "ob")
	if got := pdMatching(s.logs.String(), "GET /leak/ob "); len(got) != 1 || !strings.HasPrefix(got[0], "askr paranoid: GET /leak/ob left ob level changed (1 -> 2);") {
		t.Errorf("after GET /leak/ob: %q; want one report of the output buffer level 1 -> 2", got)
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
	for _, p := range []string{"/a", "/b", "/leak/static"} {
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
