package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/admin"
)

// adminDo sends a request to s's admin socket.
func (s *server) adminDo(method, path string) response {
	s.t.Helper()
	req, err := http.NewRequest(method, "http://askrd"+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	resp, err := admin.Client(s.admin, 60*time.Second).Do(req)
	if err != nil {
		s.t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("admin %s %s: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// adminStatus is GET /status?full on s's admin socket.
func (s *server) adminStatus() admin.Status {
	s.t.Helper()
	r := s.adminDo("GET", "/status?full")
	var st admin.Status
	if err := json.Unmarshal([]byte(r.body), &st); r.status != 200 || err != nil {
		s.t.Fatalf("admin GET /status?full = %d %q (%v); want 200 JSON", r.status, r.body, err)
	}
	return st
}

// adminModes are the modes the admin tests run askrd in: the suite's (worker, or CoW with
// ASKR_TEST_COW=1) and per-request mode.
func adminModes(t testing.TB) []struct {
	name, sleep string
	o           opts
} {
	name := "worker"
	if cowMode() {
		name = "cow"
	}
	return []struct {
		name, sleep string
		o           opts
	}{
		{name, "/sleep?s=%d&n=%d", opts{args: []string{"--workers", "2"}}},
		{"per-request", "/sleep.php?s=%d&n=%d", opts{perRequest: true, root: plainRoot(t), args: []string{"--workers", "2"}}},
	}
}

// Every endpoint answers in every mode, also while every worker is busy and requests wait.
func TestAdminEndpoints(t *testing.T) {
	for _, m := range adminModes(t) {
		t.Run(m.name, func(t *testing.T) {
			// shutdown_timeout = 1: the sleeping requests are cut when the test ends.
			m.o.config = "[server]\nqueue_size = 1\nshutdown_timeout = 1\n"
			s := startAskrd(t, m.o)
			checkEndpoints(t, s, m.name, false)
			// Hold both workers and fill the queue (queue_size = 1) for longer than the test takes.
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel()
			for i := range 3 {
				wg.Go(func() {
					req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+fmt.Sprintf(m.sleep, 60, i), nil)
					if resp, err := client.Do(req); err == nil {
						resp.Body.Close()
					}
				})
			}
			if !poll(20*time.Second, func() bool { st := s.adminStatus(); return st.Workers.Busy == 2 && st.Queue.Length == 1 }) {
				t.Fatalf("the workers never all became busy with one request queued: %+v", s.adminStatus())
			}
			checkEndpoints(t, s, m.name, true)
			st := s.adminStatus()
			for _, w := range st.Workers.List {
				if w.State != "busy" && w.State != "recycling" {
					t.Errorf("worker %d is %q while every worker sleeps; want busy", w.PID, w.State)
				}
			}
			for _, w := range st.Workers.List {
				if w.Current == nil || !strings.HasPrefix(w.Current.URI, "/sleep") || w.Current.Method != "GET" || w.Current.Seconds <= 0 {
					t.Errorf("worker %d's current request = %+v; want GET /sleep… and its age", w.PID, w.Current)
				}
			}
		})
	}
}

// checkEndpoints asks every endpoint of s's admin socket; busy: every worker is busy and the
// queue is full.
func checkEndpoints(t *testing.T, s *server, mode string, busy bool) {
	t.Helper()
	if r := s.adminDo("GET", "/healthz"); r.status != 200 || r.body != "ok\n" {
		t.Errorf("GET /healthz = %d %q; want 200 ok", r.status, r.body)
	}
	want := 200
	if busy {
		want = 503
	}
	if r := s.adminDo("GET", "/readyz"); r.status != want {
		t.Errorf("GET /readyz (busy %t) = %d %q; want %d", busy, r.status, r.body, want)
	}
	st := s.adminStatus()
	if st.Mode != mode || st.Workers.Total != 2 || len(st.Workers.List) != 2 || st.Queue.Bound != 1 || st.Version == "" {
		t.Errorf("GET /status?full = %+v; want mode %s, 2 workers listed, queue bound 1", st, mode)
	}
	for _, w := range st.Workers.List {
		if w.PID <= 0 || w.RSS <= 0 || w.PSS <= 0 {
			t.Errorf("worker %+v; want its pid and memory", w)
		}
	}
	if (mode == "cow") != (st.TemplatePID > 0) {
		t.Errorf("template_pid = %d in %s mode", st.TemplatePID, mode)
	}
	for _, c := range []struct {
		method, path string
		codes        []int
		body         string
	}{
		{"GET", "/status", []int{200}, `"workers"`},
		{"GET", "/metrics", []int{200, 404}, ""}, // 404 until a metrics handler is given
		{"GET", "/history", []int{200}, `"points"`},
		{"GET", "/", []int{200}, "<title>askr</title>"},
		{"GET", "/api/status", []int{200}, `"workers_alive": 2`},
		{"POST", "/workers/1/recycle", []int{404}, "no worker has pid 1"},
		{"POST", "/status", []int{405}, ""},
	} {
		r := s.adminDo(c.method, c.path)
		ok := strings.Contains(r.body, c.body)
		if !ok || !containsInt(c.codes, r.status) {
			t.Errorf("%s %s (busy %t) = %d %q; want %v with %q", c.method, c.path, busy, r.status, clipBody(r.body), c.codes, c.body)
		}
	}
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

func clipBody(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// POST /reload replaces the workers in every mode (in CoW mode from a new template); askrd reload
// does it through the socket and waits for the result.
func TestAdminReload(t *testing.T) {
	for _, m := range adminModes(t) {
		t.Run(m.name, func(t *testing.T) {
			s := startAskrd(t, m.o)
			before := pids(s.adminStatus())
			r := s.adminDo("POST", "/reload")
			if r.status != 200 || !strings.Contains(r.body, `"ok": true`) {
				t.Fatalf("POST /reload = %d %q; want 200 ok", r.status, r.body)
			}
			if !poll(30*time.Second, func() bool { return disjoint(before, pids(s.adminStatus())) }) {
				t.Errorf("workers after POST /reload: %v, before %v; want all replaced", pids(s.adminStatus()), before)
			}
			before = pids(s.adminStatus())
			out, err := exec.Command(askrdBinary(t), "reload", "--socket", s.admin).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "reloaded") {
				t.Fatalf("askrd reload: %v %q; want it to say reloaded", err, out)
			}
			if !poll(30*time.Second, func() bool { return disjoint(before, pids(s.adminStatus())) }) {
				t.Errorf("workers after askrd reload: %v, before %v; want all replaced", pids(s.adminStatus()), before)
			}
			if r := s.get(map[bool]string{true: "/pid.php", false: "/pid"}[m.name == "per-request"]); r.status != 200 {
				t.Errorf("GET after the reloads = %d; want 200", r.status)
			}
		})
	}
}

func pids(st admin.Status) []int {
	var out []int
	for _, w := range st.Workers.List {
		out = append(out, w.PID)
	}
	return out
}

// disjoint reports whether a and b share no pid and b is not empty.
func disjoint(a, b []int) bool {
	if len(b) == 0 {
		return false
	}
	for _, x := range a {
		if containsInt(b, x) {
			return false
		}
	}
	return true
}

// askrd recycle PID replaces that worker.
func TestAskrdRecycle(t *testing.T) {
	for _, m := range adminModes(t) {
		t.Run(m.name, func(t *testing.T) {
			s := startAskrd(t, m.o)
			victim := pids(s.adminStatus())[0]
			out, err := exec.Command(askrdBinary(t), "recycle", "--socket", s.admin, strconv.Itoa(victim)).CombinedOutput()
			if err != nil {
				t.Fatalf("askrd recycle %d: %v %q", victim, err, out)
			}
			if !poll(30*time.Second, func() bool { p := pids(s.adminStatus()); return len(p) == 2 && !containsInt(p, victim) }) {
				t.Errorf("workers after askrd recycle %d: %v; want 2, without it", victim, pids(s.adminStatus()))
			}
			out, err = exec.Command(askrdBinary(t), "recycle", "--socket", s.admin, strconv.Itoa(victim)).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "no worker has pid") {
				t.Errorf("askrd recycle of a pid gone: %v %q; want a failure saying so", err, out)
			}
		})
	}
}

// askrd status prints one line per worker and a summary; as an unrelated user it is refused.
func TestAskrdStatus(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "3"}})
	out, err := exec.Command(askrdBinary(t), "status", "--socket", s.admin).CombinedOutput()
	if err != nil {
		t.Fatalf("askrd status: %v %q", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	st := s.adminStatus()
	if len(lines) != 2+len(st.Workers.List) || len(st.Workers.List) != 3 {
		t.Fatalf("askrd status printed %d lines; want a header, one per worker (3) and a summary:\n%s", len(lines), out)
	}
	if f := strings.Fields(lines[0]); len(f) < 7 || f[0] != "PID" || f[1] != "STATE" {
		t.Errorf("header %q; want PID STATE REQUESTS CURRENT FOR PSS PRIVATE …", lines[0])
	}
	for i, w := range st.Workers.List {
		if f := strings.Fields(lines[1+i]); len(f) < 7 || f[0] != strconv.Itoa(w.PID) || f[1] != "idle" {
			t.Errorf("line %q; want worker %d idle", lines[1+i], w.PID)
		}
	}
	sum := lines[len(lines)-1]
	for _, want := range []string{st.Mode + " mode", "3 workers (0 busy, 3 idle)", "queue 0/1024", "memory: PSS", "private", "shared", "RSS"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary %q; want %q", sum, want)
		}
	}
	out, err = exec.Command(askrdBinary(t), "status", "--json", "--socket", s.admin).Output()
	var js admin.Status
	if err != nil || json.Unmarshal(out, &js) != nil || len(js.Workers.List) != 3 {
		t.Errorf("askrd status --json: %v %q; want the full status", err, out)
	}
	out, err = exec.Command(askrdBinary(t), "status", "--socket", filepath.Join(t.TempDir(), "none.sock")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "askrd is not running") {
		t.Errorf("askrd status without askrd: %v %q; want a failure saying it is not running", err, out)
	}
	t.Run("unrelated user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			if os.Getenv("CI") != "" {
				t.Fatal("not root: cannot run askrd status as another user")
			}
			t.Skip("not root: cannot run askrd status as another user")
		}
		os.Chmod(filepath.Dir(s.admin), 0o755)
		dir, err := os.MkdirTemp("", "askr-status-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		os.Chmod(dir, 0o755)
		bin := filepath.Join(dir, "askrd")
		copyFile(t, askrdBinary(t), bin, 0o755)
		cmd := exec.Command(bin, "status", "--socket", s.admin)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "askrd status: refused by askrd: uid 65534 is not root") {
			t.Errorf("askrd status as uid 65534: %v %q; want refused, naming the uid", err, out)
		}
	})
}

// After the CoW template is killed, every endpoint still answers.
func TestAdminAfterTemplateKill(t *testing.T) {
	if !cowMode() {
		t.Skip("CoW mode only (ASKR_TEST_COW=1)")
	}
	s := startAskrd(t, opts{args: []string{"--workers", "2"}})
	tmpl := s.adminStatus().TemplatePID
	if tmpl <= 0 {
		t.Fatalf("template_pid = %d; want the template's", tmpl)
	}
	if err := syscall.Kill(tmpl, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		for _, p := range []string{"/healthz", "/readyz", "/status?full", "/history", "/", "/api/status"} {
			start := time.Now()
			r := s.adminDo("GET", p)
			if r.status >= 500 && p != "/readyz" || time.Since(start) > 5*time.Second {
				t.Errorf("GET %s after the template was killed = %d %q in %v", p, r.status, clipBody(r.body), time.Since(start))
			}
		}
	}
	// A reload boots a template of its own: it works whether or not the old one has been replaced.
	if r := s.adminDo("POST", "/reload"); r.status != 200 {
		t.Errorf("POST /reload after the template was killed = %d %q; want 200", r.status, clipBody(r.body))
	}
}

// [admin] listen serves only with a token file, and then only requests that carry the token.
func TestAdminTCPToken(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	s := startAskrd(t, opts{config: fmt.Sprintf("[admin]\nlisten = %q\ntoken_file = %q\n", addr, token)})
	for _, c := range []struct {
		method, path, auth string
		code               int
	}{
		{"GET", "/healthz", "", 200},
		{"GET", "/status", "", 401},
		{"GET", "/metrics", "", 401},
		{"POST", "/reload", "", 401},
		{"GET", "/status", "Bearer wrong", 401},
		{"GET", "/status?full", "Bearer s3cret-token", 200},
	} {
		req, _ := http.NewRequest(c.method, "http://"+addr+c.path, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("TCP %s %s with %q = %d; want %d", c.method, c.path, c.auth, resp.StatusCode, c.code)
		}
	}
	if r := s.adminDo("GET", "/healthz"); r.status != 200 {
		t.Errorf("the socket beside the TCP listener: /healthz = %d", r.status)
	}

	addr = freeAddr(t)
	s = startAskrd(t, opts{config: fmt.Sprintf("[admin]\nlisten = %q\n", addr)})
	s.waitLog(`[admin] listen is not served: it needs [admin] token_file`, 5*time.Second)
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Errorf("[admin] listen without token_file accepts connections; want it not served")
	}
}

// A Unix socket systemd passes under the name "admin" is served (peer-checked); a TCP one is
// served only with [admin] token_file, else askrd closes its copy and warns. systemd-socket-activate
// execs askrd, so askrd's copy is the only one and a connection to a closed one is refused.
func TestAdminSystemdSocket(t *testing.T) {
	needSocketActivate(t)
	bin := askrdBinary(t)
	root := repoRoot(t)
	conf := filepath.Join(t.TempDir(), "askr.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("[server]\nroot = %q\nworkers = 1\n[worker]\nscript = %q\ncow = %t\n",
		filepath.Join(root, "examples", "hello", "public"), proofsScript(t), cowMode())), 0o644)
	start := func(t *testing.T, adminAddr string) (*server, string) {
		httpAddr := freeAddr(t)
		cmd := exec.Command("systemd-socket-activate", "-l", httpAddr, "-l", adminAddr, "--fdname=http:admin", bin, "--config", conf)
		s := runCommand(t, cmd)
		t.Cleanup(func() {
			s.stop()
			if t.Failed() {
				t.Logf("askrd log:\n%s", s.logs.String())
			}
		})
		if !poll(30*time.Second, func() bool {
			resp, err := http.Get("http://" + httpAddr + "/hello.txt")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil && resp.StatusCode == 200
		}) {
			t.Fatal("the http socket never answered")
		}
		s.waitLog("workers ready", 30*time.Second)
		return s, httpAddr
	}
	t.Run("unix", func(t *testing.T) {
		dir, err := os.MkdirTemp("", "askr-sd-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		sock := filepath.Join(dir, "admin.sock")
		s, _ := start(t, sock)
		s.admin = sock
		if r := s.adminDo("GET", "/healthz"); r.status != 200 {
			t.Errorf("GET /healthz on systemd's admin socket = %d %q; want 200", r.status, r.body)
		}
		if st := s.adminStatus(); st.Workers.Total != 1 {
			t.Errorf("GET /status on systemd's admin socket: %+v; want 1 worker", st)
		}
		s.waitLog("admin API on the socket systemd passed", 5*time.Second)
	})
	t.Run("tcp without token", func(t *testing.T) {
		adminAddr := freeAddr(t)
		s, _ := start(t, adminAddr)
		s.waitLog(`closed the TCP socket named \"admin\" systemd passed`, 5*time.Second)
		c, err := net.Dial("tcp", adminAddr)
		if err == nil {
			c.Close()
			t.Fatalf("a connection to the TCP admin socket was accepted; want it refused (socket closed)")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("connecting to the admin socket: %v; want connection refused", err)
		}
	})
}
