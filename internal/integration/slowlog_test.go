package integration

// The slow log (request_slowlog_timeout): a request running past it is logged once, while it still
// runs, with the PHP backtrace of the process that has it, and the request is not disturbed.

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// slowlogDir is the slow log tests' app: a worker script, and public/ for per-request mode.
func slowlogDir(t testing.TB) string {
	return filepath.Join(repoRoot(t), "internal", "integration", "testdata", "slowlog")
}

const slowlogConfig = "[server]\nrequest_slowlog_timeout = \"1s\"\n"

// In worker mode (CoW mode under ASKR_TEST_COW=1).
func TestSlowLog(t *testing.T) {
	dir := slowlogDir(t)
	s := startAskrd(t, opts{args: []string{"--workers", "1"}, script: filepath.Join(dir, "worker.php"), config: slowlogConfig})
	checkSlowLog(t, s, "/slow?s=3")
}

func TestSlowLogPerRequest(t *testing.T) {
	dir := slowlogDir(t)
	s := startAskrd(t, opts{perRequest: true, root: filepath.Join(dir, "public"), args: []string{"--workers", "1"}, config: slowlogConfig})
	checkSlowLog(t, s, "/slow.php?s=3")
}

// The answer of a request sent in the background.
type answer struct {
	status int
	body   string
	took   time.Duration
	err    error
}

var (
	sleptPattern   = regexp.MustCompile(`^slept ([0-9]+) ns in pid ([0-9]+)\n$`)
	runningPattern = regexp.MustCompile(` running=([0-9.]+) `)
)

// checkSlowLog sends path (a 3 s sleep in SlowRoute->slow_function_name, past the 1 s
// request_slowlog_timeout) and checks that askrd logs it while it runs, once, with the function
// and the line it sleeps at, and that the sleep ran to its end.
func checkSlowLog(t *testing.T, s *server, path string) {
	t.Helper()
	script, err := filepath.EvalSymlinks(filepath.Join(slowlogDir(t), "slow.php"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	line := 0
	for i, l := range strings.Split(string(src), "\n") {
		if strings.Contains(l, "SLOW SLEEP") {
			line = i + 1
		}
	}
	done := make(chan answer, 1)
	go func() {
		start := time.Now()
		resp, err := client.Get(s.URL + path)
		if err != nil {
			done <- answer{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- answer{status: resp.StatusCode, body: string(b), took: time.Since(start), err: err}
	}()
	var logged string
	if !poll(10*time.Second, func() bool { logged = slowLines(s); return logged != "" }) {
		t.Fatalf("no \"slow request\" line within 10 s")
	}
	select {
	case a := <-done:
		t.Fatalf("the answer (%d %q, %v) came before the slow log line:\n%s", a.status, a.body, a.err, logged)
	default:
	}
	for _, want := range []string{"level=WARN", "method=GET", "uri=" + strconv.Quote(path),
		`] usleep()\n[0x`, fmt.Sprintf(`] SlowRoute->slow_function_name() %s:%d\n`, script, line)} {
		if !strings.Contains(logged, want) {
			t.Errorf("slow log line\n%s\nwants %q", logged, want)
		}
	}
	if m := runningPattern.FindStringSubmatch(logged); m == nil {
		t.Errorf("slow log line\n%s\nhas no running=", logged)
	} else if r, _ := strconv.ParseFloat(m[1], 64); r < 1 || r >= 3 {
		t.Errorf("running=%v; want at least request_slowlog_timeout (1 s), less than the 3 s sleep", r)
	}

	a := <-done
	if a.err != nil || a.status != http.StatusOK {
		t.Fatalf("GET %s = %d %q, %v; want 200", path, a.status, a.body, a.err)
	}
	m := sleptPattern.FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("GET %s body %q; want \"slept N ns in pid P\"", path, a.body)
	}
	if ns, _ := strconv.ParseInt(m[1], 10, 64); ns < 3e9 || a.took < 3*time.Second {
		t.Errorf("the sleep took %d ns, the request %v; want both at least 3 s (the slow log must not cut it short)", ns, a.took)
	}
	if !strings.Contains(logged, " pid="+m[2]+" ") {
		t.Errorf("slow log line\n%s\nnames another pid than the one that ran the request (%s)", logged, m[2])
	}
	if n := strings.Count(s.logs.String(), `msg="slow request"`); n != 1 {
		t.Errorf("%d slow log lines for one slow request; want 1:\n%s", n, s.logs.String())
	}
}

// slowLines is askrd's "slow request" log lines so far.
func slowLines(s *server) string {
	var out []string
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(l, `msg="slow request"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
