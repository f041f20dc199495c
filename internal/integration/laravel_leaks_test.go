package integration

// Acceptance tests of the generic Laravel worker (examples/laravel-worker.php, installed as
// /usr/share/askr/workers/laravel.php) on an app that is not the example: testdata/laravel-app,
// written for these tests. For each kind of state a request can leave in a worker, one client sets
// it and the next request, from another client without cookies, must not see it. The helpers
// here are prefixed lk.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// lkCopyApp copies testdata/laravel-app to a new directory and returns it: the app as a user
// would deploy it, without storage/ or bootstrap/cache/, which the worker creates.
func lkCopyApp(t *testing.T) string {
	t.Helper()
	return copyTestdata(t, "laravel-app", filepath.Join(t.TempDir(), "app"))
}

// lkStart starts askrd on a copy of the test app with the given worker script (relative to the
// repository) and returns once its workers are ready.
func lkStart(t *testing.T, script string, args ...string) *lvServer {
	t.Helper()
	lvSkipWithoutPHP(t)
	base := lkCopyApp(t)
	return lkStartAt(t, base, script, nil, args...)
}

// lkStartAt is lkStart on the app at base, with env added to askrd's environment.
func lkStartAt(t *testing.T, base, script string, env []string, args ...string) *lvServer {
	t.Helper()
	s := startAskrd(t, opts{
		root:   filepath.Join(base, "public"),
		script: filepath.Join(repoRoot(t), script),
		env:    append([]string{"ASKR_APP_BASE=" + base}, env...),
		args:   args,
	})
	return &lvServer{server: s, Base: base}
}

const lkWorker = "examples/laravel-worker.php"

// lkJar returns a client with a cookie jar of its own: one visitor.
func lkJar() *http.Client {
	jar, _ := cookiejar.New(nil)
	return lvClient(jar)
}

// lkGet sends GET path with c (nil: no cookies), wants 200 and a JSON object, and returns it.
func (s *lvServer) lkGet(c *http.Client, path string, header ...string) map[string]any {
	s.t.Helper()
	r := s.send(c, "GET", path, nil, header...)
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); r.status != 200 || err != nil {
		s.t.Fatalf("GET %s: status %d (%v): %.500s", path, r.status, err, r.body)
	}
	return m
}

// TestLvLeaks: with one worker (so the next request meets exactly the state the last one left),
// visitor A sets each kind of state and visitor B, without cookies, must find none of it.
func TestLvLeaks(t *testing.T) {
	s := lkStart(t, lkWorker, "--workers", "1")

	// First, before any query: the connection the worker closed before its first request (or
	// the template before the fork) must still give a PDO to code that asks for one.
	t.Run("PDOBeforeQuery", func(t *testing.T) {
		lvWant(t, "DB::connection()->getPdo() in the first request", s.lkGet(nil, "/db/pdo")["pdo"], "PDO")
	})

	t.Run("IssueRepro", func(t *testing.T) {
		a := lkJar()
		lvWant(t, "A's 1st /session", s.lkGet(a, "/session")["counter"], 1)
		lvWant(t, "A's 2nd /session", s.lkGet(a, "/session")["counter"], 2)
		lvWant(t, "/session without cookies", s.lkGet(nil, "/session")["counter"], 1)
		lvWant(t, "A's 3rd /session", s.lkGet(a, "/session")["counter"], 3)
	})

	t.Run("SessionWithoutCookie", func(t *testing.T) {
		a := lkJar()
		lvWant(t, "A puts", s.lkGet(a, "/session/put?v=secret-of-A")["secret"], "secret-of-A")
		b := s.lkGet(nil, "/session/get")
		lvWant(t, "B's secret", b["secret"], nil)
		lvWant(t, "A's secret after B", s.lkGet(a, "/session/get")["secret"], "secret-of-A")
		if a2 := s.lkGet(a, "/session/get"); a2["id"] == b["id"] {
			t.Errorf("B got A's session id %v", b["id"])
		}
	})

	t.Run("SessionWithCookie", func(t *testing.T) {
		a, b := lkJar(), lkJar()
		lvWant(t, "B puts", s.lkGet(b, "/session/put?v=B")["secret"], "B")
		lvWant(t, "A puts", s.lkGet(a, "/session/put?v=A")["secret"], "A")
		lvWant(t, "B's secret after A", s.lkGet(b, "/session/get")["secret"], "B")
		lvWant(t, "A's secret after B", s.lkGet(a, "/session/get")["secret"], "A")
		// A session cookie the server does not know starts an empty session.
		m := s.lkGet(nil, "/session/get", "Cookie", "leaks_session=unknown")
		lvWant(t, "secret with an unknown cookie", m["secret"], nil)
	})

	t.Run("AuthenticatedUser", func(t *testing.T) {
		a, b := lkJar(), lkJar()
		lvWant(t, "A logs in", s.lkGet(a, "/auth/login?id=1")["user"], "alice")
		m := s.lkGet(nil, "/auth/user")
		lvWant(t, "Auth::user() without a cookie", m["user"], nil)
		lvWant(t, "Auth::check() without a cookie", m["check"], false)
		lvWant(t, "$request->user() without a cookie", m["request_user"], nil)
		lvWant(t, "Gate::allows('is-alice') without a cookie", m["gate"], false)
		lvWant(t, "B logs in", s.lkGet(b, "/auth/login?id=2")["user"], "bob")
		lvWant(t, "A after B", s.lkGet(a, "/auth/user")["user"], "alice")
		lvWant(t, "A's Gate after B", s.lkGet(a, "/auth/user")["gate"], true)
		lvWant(t, "B after A", s.lkGet(b, "/auth/user")["user"], "bob")
		lvWant(t, "B's Gate after A", s.lkGet(b, "/auth/user")["gate"], false)
	})

	t.Run("QueuedCookie", func(t *testing.T) {
		r := s.send(lkJar(), "GET", "/cookie/queue?v=of-A", nil)
		if !r.hasCookie("leak") {
			t.Fatalf("GET /cookie/queue set no cookie: %v", r.header["Set-Cookie"])
		}
		if r := s.send(nil, "GET", "/cookie/none", nil); r.hasCookie("leak") {
			t.Errorf("the next response carries the cookie queued by the one before: %v", r.header["Set-Cookie"])
		}
	})

	t.Run("ViewShare", func(t *testing.T) {
		lvWant(t, "A's page", strings.TrimSpace(string(s.send(lkJar(), "GET", "/view/share?v=of-A", nil).body)), "shared=of-A")
		lvWant(t, "B's page", strings.TrimSpace(string(s.send(nil, "GET", "/view/read", nil).body)), "shared=none")
	})

	t.Run("Locale", func(t *testing.T) {
		lvWant(t, "A sets", s.lkGet(lkJar(), "/locale/set?l=fr")["app"], "fr")
		m := s.lkGet(nil, "/locale")
		lvWant(t, "B: App::getLocale()", m["app"], "en")
		lvWant(t, "B: translator locale", m["translator"], "en")
		lvWant(t, "B: config app.locale", m["config"], "en")
	})

	t.Run("LogContext", func(t *testing.T) {
		s.lkGet(lkJar(), "/log/context?v=of-A")
		m := s.lkGet(nil, "/log/read")
		lvWant(t, "B's log context", m["context"], map[string]any{})
		lvWant(t, "log records B's handler holds", m["records"], 1) // Monolog's handlers reset too
	})

	t.Run("OpenTransaction", func(t *testing.T) {
		lvWant(t, "A begins", s.lkGet(lkJar(), "/tx/begin")["level"], 1)
		m := s.lkGet(nil, "/tx/read")
		lvWant(t, "B: transaction level", m["level"], 0)
		lvWant(t, "B: rows of A's uncommitted insert", m["uncommitted"], 0)
		start := time.Now()
		lvWant(t, "B writes", fmt.Sprint(s.lkGet(nil, "/tx/write")["committed"] != nil), "true")
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("B's write took %v: it waited for a lock (busy timeout 5 s)", d)
		}
	})

	t.Run("Config", func(t *testing.T) {
		lvWant(t, "A sets", s.lkGet(lkJar(), "/config/set?v=of-A")["name"], "of-A")
		m := s.lkGet(nil, "/config/read")
		lvWant(t, "B: an existing key", m["name"], "leaks")
		lvWant(t, "B: a key A added", m["new"], nil)
	})

	t.Run("ContainerInstance", func(t *testing.T) {
		lvWant(t, "A binds", s.lkGet(lkJar(), "/container/bind?v=of-A")["bound"], "of-A")
		lvWant(t, "B: bound", s.lkGet(nil, "/container/read")["bound"], false)
		// The same with the deliberately leaky route: each call starts from boot's container.
		for i := 0; i < 3; i++ {
			lvWant(t, "/leak/instance: instances", s.lkGet(nil, "/leak/instance")["instances"], 1)
		}
	})

	t.Run("URL", func(t *testing.T) {
		m := s.lkGet(lkJar(), "/url", "Host", "evil.example")
		lvWant(t, "A's url() (Host: evil.example)", m["url"], "http://evil.example/x")
		lvWant(t, "B's url()", s.lkGet(nil, "/url")["url"], s.URL+"/x")
		lvWant(t, "A forces a root", s.lkGet(lkJar(), "/url/force?root=http://forced.example")["url"], "http://forced.example/x")
		m = s.lkGet(nil, "/url")
		lvWant(t, "B's url() after URL::forceRootUrl()", m["url"], s.URL+"/x")
		lvWant(t, "B's URL defaults after URL::defaults()", m["defaults"], map[string]any{})
	})

	t.Run("ArrayCache", func(t *testing.T) {
		lvWant(t, "A caches", s.lkGet(lkJar(), "/cache/put?v=of-A")["cached"], "of-A")
		lvWant(t, "B reads", s.lkGet(nil, "/cache/get")["cached"], nil)
	})

	t.Run("EventListener", func(t *testing.T) {
		lvWant(t, "A listens", s.lkGet(lkJar(), "/events/listen")["listening"], true)
		lvWant(t, "B: a listener", s.lkGet(nil, "/events/read")["listening"], false)
	})

	t.Run("ResetHook", func(t *testing.T) {
		lvWant(t, "A's basket", s.lkGet(lkJar(), "/basket/add?v=of-A")["items"], []any{"of-A"})
		lvWant(t, "B's basket", s.lkGet(nil, "/basket")["items"], []any{})
	})

	// A model first used in a request registers its listeners in booted(); the reset drops them
	// with the request's other listeners, so the model must boot again in the next request.
	t.Run("ModelEvents", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			lvWant(t, fmt.Sprintf("request %d: attribute set by the creating hook", i+1),
				s.lkGet(lkJar(), fmt.Sprintf("/model/create?v=n%d", i))["stamp"], "set-by-creating")
		}
	})

	t.Run("Controller", func(t *testing.T) {
		m := s.lkGet(lkJar(), "/controller?v=A-secret")
		lvWant(t, "A's controller: built with", m["built_with"], "A-secret")
		m = s.lkGet(nil, "/controller")
		lvWant(t, "B's controller: built with", m["built_with"], nil)
		lvWant(t, "B's request", m["request"], nil)
	})

	t.Run("NotFoundRoute", func(t *testing.T) {
		lvWant(t, "A's named route", s.lkGet(lkJar(), "/named/of-A")["thing"], "of-A")
		r := s.send(nil, "GET", "/askr-missing/x", nil)
		var m map[string]any
		if err := json.Unmarshal(r.body, &m); r.status != 404 || err != nil {
			t.Fatalf("GET /askr-missing/x: status %d (%v): %.500s", r.status, err, r.body)
		}
		lvWant(t, "B's 404: Route::currentRouteName()", m["route"], nil)
		lvWant(t, "B's 404: current route's parameters", m["params"], nil)
	})

	t.Run("GateBefore", func(t *testing.T) {
		lvWant(t, "A: Gate::before(true), allows", s.lkGet(lkJar(), "/gate/before")["allows"], true)
		lvWant(t, "B (a guest): allows('is-alice')", s.lkGet(nil, "/gate/read")["allows"], false)
	})

	t.Run("ValidatorExtend", func(t *testing.T) {
		lvWant(t, "A: Validator::extend(), passes", s.lkGet(lkJar(), "/validator/extend")["passes"], true)
		m := s.lkGet(nil, "/validator/read")
		lvWant(t, "B: A's rule", m["passes"], "no such rule")
		lvWant(t, "B: the rule the app's provider registered at boot", m["boot_rule"], true)
	})

	t.Run("BladeDirective", func(t *testing.T) {
		lvWant(t, "A: Blade::directive(), directives", s.lkGet(lkJar(), "/blade/directive")["directives"], []any{"askrboot", "askrleak"})
		lvWant(t, "B: directives", s.lkGet(nil, "/blade/read")["directives"], []any{"askrboot"})
	})

	// The terminating callback waits until the test has the response and says so: the response
	// must not wait for terminate() (the client would time out after 5 s, the callback after 15).
	t.Run("TerminateAfterResponse", func(t *testing.T) {
		c := lkJar()
		c.Timeout = 5 * time.Second
		lvWant(t, "the response", s.lkGet(c, "/terminate/wait?id=t1")["id"], "t1")
		if err := os.WriteFile(filepath.Join(s.Base, "storage", "release-t1"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		var got []byte
		if !poll(20*time.Second, func() bool {
			got, _ = os.ReadFile(filepath.Join(s.Base, "storage", "terminated-t1"))
			return len(got) > 0
		}) {
			t.Fatal("the terminating callback never wrote its marker")
		}
		lvWant(t, "the terminating callback", string(got), "released")
	})

	// Static properties are out of any worker's reach: this route leaks on purpose, for the
	// state-bleed detector. That it still grows shows these requests share one worker.
	t.Run("StaticPropertyStillLeaks", func(t *testing.T) {
		first := s.lkGet(nil, "/leak/static")["calls"].(float64)
		lvWant(t, "the next call", s.lkGet(nil, "/leak/static")["calls"], first+1)
	})

	t.Run("LogIsClean", func(t *testing.T) {
		for _, bad := range []string{"PHP Fatal", "PHP Warning", "PHP Notice", "Deprecated", "Uncaught",
			"askr laravel worker", "level=ERROR", "level=WARN"} {
			if strings.Contains(s.logs.String(), bad) {
				t.Errorf("askrd log contains %q", bad)
			}
		}
	})
}

// TestLvLeaksTwoWorkers: state one worker held must not reach either worker. Mostly this is the
// transaction: an open one holds SQLite's write lock for every process, so the other worker's
// writes would wait out the busy timeout and fail.
func TestLvLeaksTwoWorkers(t *testing.T) {
	s := lkStart(t, lkWorker, "--workers", "2")
	pids := map[any]bool{}
	for i := 0; i < 6; i++ {
		lvWant(t, "A begins", s.lkGet(lkJar(), "/tx/begin")["level"], 1)
		start := time.Now()
		m := s.lkGet(nil, "/tx/write")
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("write %d after an abandoned transaction took %v: it waited for the lock", i, d)
		}
		if m["committed"] == nil {
			t.Errorf("write %d: %v", i, m)
		}
		m = s.lkGet(nil, "/tx/read")
		lvWant(t, "transaction level", m["level"], 0)
		lvWant(t, "uncommitted rows", m["uncommitted"], 0)
		pids[s.lkGet(nil, "/pid")["pid"]] = true
	}
	a := lkJar()
	lvWant(t, "A logs in", s.lkGet(a, "/auth/login?id=1")["user"], "alice")
	for i := 0; i < 4; i++ { // whichever worker: no one else is alice; A stays alice
		lvWant(t, "user without a cookie", s.lkGet(nil, "/auth/user")["user"], nil)
		lvWant(t, "session without a cookie", s.lkGet(nil, "/session")["counter"], 1)
		lvWant(t, "A", s.lkGet(a, "/auth/user")["user"], "alice")
		pids[s.lkGet(nil, "/pid")["pid"]] = true
	}
	if len(pids) < 2 {
		t.Errorf("only pid %v answered; want both workers", pids)
	}
	if strings.Contains(s.logs.String(), "database is locked") {
		t.Errorf("askrd log: database is locked")
	}
}

// TestLvDatabaseSessions: Laravel's database session handler remembers that the last session it
// read or wrote has a row, and never forgets it; a worker that kept that flag would "update" the
// missing row of every new visitor's session, which is then never stored.
func TestLvDatabaseSessions(t *testing.T) {
	lvSkipWithoutPHP(t)
	s := lkStartAt(t, lkCopyApp(t), lkWorker, []string{"SESSION_DRIVER=database"}, "--workers", "1")
	a, b := lkJar(), lkJar()
	lvWant(t, "A puts", s.lkGet(a, "/session/put?v=A")["secret"], "A")
	lvWant(t, "B puts", s.lkGet(b, "/session/put?v=B")["secret"], "B")
	lvWant(t, "B's secret, next request", s.lkGet(b, "/session/get")["secret"], "B")
	lvWant(t, "A's secret after B", s.lkGet(a, "/session/get")["secret"], "A")
	lvWant(t, "without a cookie", s.lkGet(nil, "/session/get")["secret"], nil)
	lvWant(t, "/session without a cookie", s.lkGet(nil, "/session")["counter"], 1)
	lvWant(t, "A's counter", s.lkGet(a, "/session")["counter"], 1)
	lvWant(t, "A's counter, next request", s.lkGet(a, "/session")["counter"], 2)
}

// TestLvCowMariaDB: the test app on MariaDB in CoW mode (lkCowDB).
func TestLvCowMariaDB(t *testing.T) {
	lvSkipWithoutPHP(t)
	needFiles(t, "Laravel on MariaDB needs mariadb-server and php8.2-mysql", "/usr/sbin/mariadbd",
		"/usr/bin/mariadb-install-db", "/usr/bin/mariadb", "/etc/php/8.2/mods-available/pdo_mysql.ini")
	m := startMariaDB(t)
	m.exec(t, "CREATE DATABASE leaks")
	lkCowDB(t, []string{"DB_CONNECTION=mysql", "DB_SOCKET=" + m.Socket},
		"SQLSTATE", "gone away", "Packets out of order")
}

// TestLvCowPg: the same on PostgreSQL, a private cluster the test starts (lkStartPg).
func TestLvCowPg(t *testing.T) {
	lvSkipWithoutPHP(t)
	needFiles(t, "Laravel on PostgreSQL needs postgresql-15 and php8.2-pgsql", lkPgBin+"/initdb",
		lkPgBin+"/postgres", lkPgBin+"/psql", "/etc/php/8.2/mods-available/pdo_pgsql.ini")
	dir := lkStartPg(t)
	lkCowDB(t, []string{"DB_CONNECTION=pgsql", "DB_SOCKET=" + dir},
		"SQLSTATE", "server closed the connection", "no connection to the server")
}

// lkCowDB runs the test app on a database server (env points it there) in CoW mode with four
// workers. The template connects while booting (its provider creates the tables, and writes the
// server's id of that connection to storage/boot-backends); workers that used the template's
// connection would share its socket, their queries and answers interleaving. So each worker must
// query through a connection of its own, opened after the fork; writes, and transactions left
// open, from the four at once must all succeed and every committed row be there; and a
// connection the server ends inside a transaction must leave a worker that reconnects. The log
// must contain none of bad (the driver's errors) nor PHP's.
func lkCowDB(t *testing.T, env []string, bad ...string) {
	t.Helper()
	s := lkStartAt(t, lkCopyApp(t), lkWorker, env, "--cow", "--workers", "4")
	lvWant(t, "getPdo() in a worker's first request", s.lkGet(nil, "/db/pdo")["pdo"], "PDO")
	const n, conc = 400, 16
	var writes atomic.Int64
	var mu sync.Mutex
	backends := map[string]any{} // server's connection id → the worker (pid) that used it
	lvConcurrently(t, "GET /tx/write, /tx/begin or /db/backend", n, conc, 2*time.Minute, func(ctx context.Context, c *http.Client, i int) error {
		path := "/tx/write"
		switch i % 5 {
		case 0:
			path = "/tx/begin" // left open: the reset rolls it back
		case 1:
			path = "/db/backend"
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+path, nil)
		req.Header.Set("Accept", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			return fmt.Errorf("%s: status %d (%v): %.300s", path, resp.StatusCode, err, body)
		}
		switch path {
		case "/tx/write":
			writes.Add(1)
		case "/db/backend":
			var m struct {
				Backend string
				Pid     any
			}
			if err := json.Unmarshal(body, &m); err != nil || m.Backend == "" {
				return fmt.Errorf("%s: %v: %.300s", path, err, body)
			}
			mu.Lock()
			defer mu.Unlock()
			if pid, ok := backends[m.Backend]; ok && fmt.Sprint(pid) != fmt.Sprint(m.Pid) {
				return fmt.Errorf("workers %v and %v both query through connection %s", pid, m.Pid, m.Backend)
			}
			backends[m.Backend] = m.Pid
		}
		return nil
	})
	boot, err := os.ReadFile(filepath.Join(s.Base, "storage", "boot-backends"))
	if err != nil || strings.Count(string(boot), "\n") != 1 {
		t.Fatalf("storage/boot-backends: want the one connection the template booted with: %q (%v)", boot, err)
	}
	workers := map[string]bool{}
	for b, pid := range backends {
		workers[fmt.Sprint(pid)] = true
		if b == strings.TrimSpace(string(boot)) {
			t.Errorf("worker %v queries through connection %s, the template's", pid, b)
		}
	}
	if len(workers) < 2 {
		t.Errorf("only workers %v answered /db/backend; want several, each on its own connection", workers)
	}
	m2 := s.lkGet(nil, "/tx/read")
	lvWant(t, "committed rows", m2["committed"], writes.Load())
	lvWant(t, "uncommitted rows", m2["uncommitted"], 0)
	// A transaction whose connection the server dropped cannot be rolled back: the worker closes
	// it and reconnects at the next query, which sees no transaction. With four workers the next
	// request may go to another one, so each response names its worker: every worker that lost a
	// connection must later answer /tx/state with no transaction. (A worker that serves /tx/killed
	// again in between shows the same: it begins at level 1, not 2.)
	lost, checked := map[any]bool{}, map[any]bool{}
	for i := 0; i < 8; i++ {
		k := s.lkGet(nil, "/tx/killed")
		lvWant(t, "/tx/killed: level", k["level"], 1)
		lost[k["pid"]] = true
	}
	for i := 0; i < 400 && len(checked) < len(lost); i++ {
		st := s.lkGet(nil, "/tx/state")
		lvWant(t, "after a lost connection: level", st["level"], 0)
		lvWant(t, "after a lost connection: uncommitted rows", st["uncommitted"], 0)
		if lost[st["pid"]] {
			checked[st["pid"]] = true
		}
	}
	if len(checked) < len(lost) {
		t.Errorf("workers %v lost a connection; only %v answered /tx/state in 400 requests", lost, checked)
	}
	for _, b := range append(bad, "PHP Fatal", "PHP Warning", "askr laravel worker", "exited") {
		if strings.Contains(s.logs.String(), b) {
			t.Errorf("askrd log contains %q", b)
		}
	}
}

// lkPgBin holds Debian's PostgreSQL 15 server programs.
const lkPgBin = "/usr/lib/postgresql/15/bin"

// lkStartPg starts a private PostgreSQL cluster in a temp dir, listening only on a Unix socket
// there (no TCP), with a database "leaks" that the user postgres reaches without a password
// (trust: the socket is in the test's own directory). PostgreSQL refuses to run as root, so when
// the test is root the cluster runs as the system user postgres. It returns the socket's
// directory (libpq's host) and is stopped when the test ends.
func lkStartPg(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("PostgreSQL will not run as root, and there is no user postgres: %v", err)
			}
			t.Skipf("PostgreSQL will not run as root, and there is no user postgres: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
		// t.TempDir's directories are root's, mode 0700: let postgres through to its own.
		if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	initdb := exec.CommandContext(ctx, lkPgBin+"/initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p := startHelperCmd(t, "postgres", nil, cred, lkPgBin+"/postgres", "-D", data, "-k", dir,
		"-c", "listen_addresses=", "-c", "fsync=off", "-c", "shared_buffers=16MB", "-c", "max_connections=40")
	psql := func(sql string) ([]byte, error) {
		return exec.CommandContext(ctx, lkPgBin+"/psql", "-X", "-h", dir, "-U", "postgres", "-d", "postgres",
			"-v", "ON_ERROR_STOP=1", "-c", sql).CombinedOutput()
	}
	waitUntil(t, p, "accepting connections in "+dir, time.Minute, func() bool {
		_, err := psql("SELECT 1")
		return err == nil
	})
	if out, err := psql("CREATE DATABASE leaks"); err != nil {
		t.Fatalf("psql: CREATE DATABASE leaks: %v\n%s", err, out)
	}
	return dir
}

// TestLvNaiveWorkerLeaks runs the worker loop the README suggests (no resets) on the same app:
// the repro shows the leak, so the tests above can see one when it is there.
func TestLvNaiveWorkerLeaks(t *testing.T) {
	lvSkipWithoutPHP(t)
	base := lkCopyApp(t)
	for _, d := range []string{"storage/framework/sessions", "storage/framework/views", "storage/framework/cache", "bootstrap/cache"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := lkStartAt(t, base, "internal/integration/testdata/laravel-naive-worker.php", nil, "--workers", "1")
	a := lkJar()
	s.lkGet(a, "/session")
	s.lkGet(a, "/session")
	lvWant(t, "/session without cookies after A's two (the leak)", s.lkGet(nil, "/session")["counter"], 3)
	s.lkGet(lkJar(), "/config/set?v=of-A")
	lvWant(t, "config after A's write (the leak)", s.lkGet(nil, "/config/read")["new"], "of-A")
}

// TestLvWorkerBootErrors: an app_base that is not a Laravel app, or storage the worker cannot
// create, fails askrd serve with one line naming the path. (An app_base that is not a directory
// is a configuration error askrd reports itself.)
func TestLvWorkerBootErrors(t *testing.T) {
	lvSkipWithoutPHP(t)
	write := func(path, data string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	empty := t.TempDir()
	notApp := t.TempDir()
	write(filepath.Join(notApp, "bootstrap", "app.php"), "<?php return 42;\n")
	blocked := lkCopyApp(t)
	write(filepath.Join(blocked, "storage"), "a file where storage/ should be")
	broken := lkCopyApp(t) // names a provider class that does not exist
	conf := filepath.Join(broken, "config", "app.php")
	b, err := os.ReadFile(conf)
	if err != nil || !strings.Contains(string(b), "Leaks\\Providers\\AppServiceProvider::class") {
		t.Fatalf("%s: %v", conf, err)
	}
	write(conf, strings.Replace(string(b), "Leaks\\Providers\\AppServiceProvider::class", "'Leaks\\Providers\\Missing'", 1))
	for _, c := range []struct {
		name, base, want string
	}{
		{"NoBootstrap", empty, filepath.Join(empty, "bootstrap", "app.php") + " not found"},
		{"NotAnApp", notApp, "app.php returned int, not an Illuminate"},
		{"StorageNotWritable", blocked, "cannot create " + filepath.Join(blocked, "storage", "framework", "sessions")},
		{"ProviderMissing", broken, "booting the app at " + broken + " failed: Error: Class"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"--workers", "1", "--root", filepath.Join(repoRoot(t), "examples", "hello", "public"),
				"--worker-script", filepath.Join(repoRoot(t), lkWorker)}
			if cowMode() {
				args = append(args, "--cow")
			}
			out, err := runUnbootable(t, newFakeNotify(t), []string{"ASKR_APP_BASE=" + c.base}, args...)
			if code := statusOf(err); code != 1 || !strings.Contains(out, "askr laravel worker: ") || !strings.Contains(out, c.want) {
				t.Errorf("askrd serve: exit %d (%v); want 1 and a line containing %q:\n%s", code, err, c.want, out)
			}
			if strings.Contains(out, "PHP Warning") || strings.Contains(out, "PHP Notice") || strings.Contains(out, "Stack trace") {
				t.Errorf("want one clear line, not PHP's warnings or a trace:\n%s", out)
			}
		})
	}
}

// TestLvResetFailureReplacesWorker: a reset that throws leaves the worker's state unknown, so the
// worker logs one line and exits after the response, and askrd starts a clean one. The request
// sent right behind may already be queued for the leaving worker: it is answered all the same.
func TestLvResetFailureReplacesWorker(t *testing.T) {
	s := lkStart(t, lkWorker, "--workers", "1")
	pid := s.lkGet(nil, "/reset/fail")["pid"]
	next := s.lkGet(nil, "/pid")["pid"]
	s.waitLog("askr laravel worker: a reset after GET /reset/fail failed", 10*time.Second)
	s.waitLog("tripwire: reset failed on purpose", time.Second)
	s.waitLog("the worker script ended between requests; no request is lost", 10*time.Second)
	if next == pid {
		t.Errorf("pid %v answered after its failed reset; want a new worker", pid)
	}
	lvWant(t, "session without a cookie on the new worker", s.lkGet(nil, "/session")["counter"], 1)
}
