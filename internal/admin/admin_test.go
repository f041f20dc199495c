package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/pool"
)

// fakeSource is a pool as the admin API sees it.
type fakeSource struct {
	mu        sync.Mutex
	stats     pool.Stats
	workers   []pool.WorkerInfo
	block     chan struct{} // Workers waits for it to close, if set
	calls     atomic.Int64  // Workers calls
	reloadErr error
	reloads   int
	recycled  []int
	template  int
}

func (f *fakeSource) Stats() pool.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func (f *fakeSource) Workers() []pool.WorkerInfo {
	f.calls.Add(1)
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]pool.WorkerInfo(nil), f.workers...)
}

func (f *fakeSource) Recycle(pid int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range f.workers {
		if w.PID == pid {
			f.recycled = append(f.recycled, pid)
			return nil
		}
	}
	return pool.ErrNoSuchWorker
}

func (f *fakeSource) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	return f.reloadErr
}

func (f *fakeSource) TemplatePID() int { return f.template }

// newFake has two workers: this test process (busy, so that /proc has its memory) and a pid
// that does not exist (idle, recycling).
func newFake() *fakeSource {
	st := pool.Stats{Ready: 2, Busy: 1, Waiting: 3, WaitingMax: 7, QueueSize: 16, Served: 41, Accepted: 45,
		MaxWorkersReached: 5, Slow: 2, Generation: 3, Target: 4}
	st.Exits[pool.ExitMemory] = 4
	return &fakeSource{stats: st, workers: []pool.WorkerInfo{
		{PID: os.Getpid(), Generation: 3, Busy: true, Served: 40, Peak: 2 << 20, Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			Current: &pool.Visit{Method: "GET", URI: "/slow?x=1", Start: time.Now().Add(-2 * time.Second)}, Last: 1500 * time.Millisecond},
		{PID: 1 << 30, Generation: 2, Served: 1, Recycling: true},
	}}
}

func get(t *testing.T, h http.Handler, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestStatus(t *testing.T) {
	f := newFake()
	f.template = os.Getpid()
	s := New(f, Options{Mode: "cow", Version: "1.2.3", Started: time.Now().Add(-time.Minute)})
	rec := get(t, s.Handler(), "GET", "/status")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /status = %d %q; want 200 JSON", rec.Code, rec.Header().Get("Content-Type"))
	}
	var raw map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"mode", "version", "generation", "uptime_seconds", "workers", "queue", "accepted", "max_workers_reached",
		"slow", "served", "template_pid", "exits", "memory"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("GET /status has no %q: %s", k, rec.Body)
		}
	}
	if w := raw["workers"].(map[string]any); w["list"] != nil {
		t.Errorf("GET /status lists the workers; want them only with ?full")
	}
	var st Status
	json.Unmarshal(rec.Body.Bytes(), &st)
	want := Status{Mode: "cow", Version: "1.2.3", Generation: 3, Workers: Workers{Total: 2, Idle: 1, Busy: 1, Target: 4},
		Queue: Queue{Length: 3, HighWater: 7, Bound: 16}, Accepted: 45, MaxWorkersReached: 5, Slow: 2, Served: 41, TemplatePID: os.Getpid()}
	got := st
	got.UptimeSeconds, got.Exits, got.Memory, got.TemplateMemory = 0, nil, Memory{}, nil
	if got.Mode != want.Mode || got.Version != want.Version || got.Generation != want.Generation || got.Workers.Total != 2 ||
		got.Workers.Busy != 1 || got.Workers.Idle != 1 || got.Workers.Target != 4 || got.Queue != want.Queue || got.Accepted != 45 ||
		got.MaxWorkersReached != 5 || got.Slow != 2 || got.Served != 41 || got.TemplatePID != want.TemplatePID {
		t.Errorf("GET /status = %+v; want %+v", got, want)
	}
	if st.UptimeSeconds < 59 || st.UptimeSeconds > 120 {
		t.Errorf("uptime_seconds = %v; want about 60", st.UptimeSeconds)
	}
	if len(st.Exits) != len(pool.ExitReasons()) || st.Exits["memory"] != 4 || st.Exits["crash"] != 0 {
		t.Errorf("exits = %v; want every reason, memory 4", st.Exits)
	}
	if st.Memory.RSS <= 0 || st.Memory.PSS <= 0 || st.TemplateMemory == nil || st.TemplateMemory.RSS <= 0 {
		t.Errorf("memory = %+v, template %+v; want this process's", st.Memory, st.TemplateMemory)
	}
}

func TestStatusFull(t *testing.T) {
	s := New(newFake(), Options{Mode: "worker"})
	rec := get(t, s.Handler(), "GET", "/status?full")
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || rec.Code != 200 {
		t.Fatalf("GET /status?full = %d %s (%v)", rec.Code, rec.Body, err)
	}
	if len(st.Workers.List) != 2 {
		t.Fatalf("workers.list = %+v; want 2", st.Workers.List)
	}
	busy, gone := st.Workers.List[0], st.Workers.List[1]
	if busy.PID != os.Getpid() || busy.State != "busy" || busy.Requests != 40 || busy.Generation != 3 || busy.PeakMemory != 2<<20 ||
		busy.LastRequestSeconds != 1.5 || busy.Started != "2026-01-02T03:04:05Z" || busy.RSS <= 0 || busy.PSS <= 0 || busy.PrivateDirty <= 0 {
		t.Errorf("busy worker = %+v", busy)
	}
	if c := busy.Current; c == nil || c.Method != "GET" || c.URI != "/slow?x=1" || c.Seconds < 2 || c.Seconds > 60 {
		t.Errorf("busy worker's current = %+v; want GET /slow?x=1 for about 2 s", c)
	}
	if gone.State != "recycling" || gone.Current != nil || gone.RSS != 0 {
		t.Errorf("recycling worker = %+v", gone)
	}
	if !strings.Contains(rec.Body.String(), `"current": null`) {
		t.Errorf("an idle worker's current is not null: %s", rec.Body)
	}
}

// A pool whose owner loop does not answer: /status answers in time with what it has, and a
// single call waits on the pool however many requests come.
func TestStatusWhilePoolWedged(t *testing.T) {
	f := newFake()
	f.block = make(chan struct{})
	defer close(f.block)
	s := New(f, Options{Mode: "worker", WorkersTimeout: 50 * time.Millisecond})
	for range 5 {
		start := time.Now()
		rec := get(t, s.Handler(), "GET", "/status?full")
		var st Status
		json.Unmarshal(rec.Body.Bytes(), &st)
		if rec.Code != 200 || !st.Partial || st.Workers.Total != 2 {
			t.Fatalf("GET /status?full with the pool wedged = %d %s; want 200, partial, the counters", rec.Code, rec.Body)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("GET /status took %v with the pool wedged", d)
		}
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("Workers called %d times while the first call waits; want 1", n)
	}
}

func TestReadyz(t *testing.T) {
	for _, tt := range []struct {
		name                              string
		ready, busy, waiting, queue, code int
	}{
		{"idle worker", 2, 1, 0, 0, 200},
		{"queue below its bound", 2, 2, 3, 4, 200},
		{"queue full", 2, 2, 4, 4, 503},
		{"no queue", 2, 2, 0, 0, 503},
		{"no worker", 0, 0, 0, 4, 503},
	} {
		f := &fakeSource{stats: pool.Stats{Ready: tt.ready, Busy: tt.busy, Waiting: tt.waiting, QueueSize: tt.queue}}
		if rec := get(t, New(f, Options{}).Handler(), "GET", "/readyz"); rec.Code != tt.code {
			t.Errorf("%s: GET /readyz = %d %q; want %d", tt.name, rec.Code, rec.Body, tt.code)
		}
	}
}

func TestEndpoints(t *testing.T) {
	f := newFake()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "askr_requests_total 1\n") })
	history := func() any {
		return map[string]any{"interval_seconds": 1, "points": []any{map[string]any{"t": 1, "rps": 2}}}
	}
	h := New(f, Options{Mode: "worker", Metrics: metrics, History: history, Listen: "127.0.0.1:8000", Configured: 2}).Handler()
	bare := New(f, Options{Mode: "worker"}).Handler()
	for _, tt := range []struct {
		h              http.Handler
		method, target string
		code           int
		body           string
	}{
		{h, "GET", "/healthz", 200, "ok\n"},
		{h, "GET", "/metrics", 200, "askr_requests_total 1\n"},
		{bare, "GET", "/metrics", 404, ""},
		{h, "GET", "/history", 200, `"rps": 2`},
		{bare, "GET", "/history", 200, `"points": []`},
		{h, "GET", "/", 200, "<title>askr</title>"},
		{h, "GET", "/api/status", 200, `"workers_configured": 2`},
		{h, "GET", "/nope", 404, ""},
		{h, "POST", "/status", 405, ""},
		{h, "GET", "/reload", 405, ""},
		{h, "DELETE", "/", 405, ""},
		{h, "POST", "/workers/" + strconv.Itoa(os.Getpid()) + "/recycle", 200, `"ok": true`},
		{h, "POST", "/workers/12/recycle", 404, "no worker has pid 12"},
		{h, "POST", "/workers/x/recycle", 400, "is not a process id"},
		{h, "POST", "/reload", 200, `"ok": true`},
		{h, "POST", "/api/reload", 200, `"action": "reload"`},
	} {
		rec := get(t, tt.h, tt.method, tt.target)
		if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.body) {
			t.Errorf("%s %s = %d %q; want %d with %q", tt.method, tt.target, rec.Code, rec.Body, tt.code, tt.body)
		}
	}
	if len(f.recycled) != 1 || f.recycled[0] != os.Getpid() || f.reloads != 2 {
		t.Errorf("recycled %v, reloads %d; want [%d], 2", f.recycled, f.reloads, os.Getpid())
	}
	f.reloadErr = errors.New("reload canary pid 9: PHP Parse error")
	if rec := get(t, h, "POST", "/reload"); rec.Code != 500 || !strings.Contains(rec.Body.String(), "PHP Parse error") {
		t.Errorf("POST /reload that fails = %d %q; want 500 with the error", rec.Code, rec.Body)
	}
	// In CoW mode too a reload is the pool's (a new template); the answer carries the rollout.
	cow := newFake()
	cow.stats.Rollout = pool.Rollout{State: pool.RolloutOK, Cause: "reload", From: 1, To: 2, Canary: 42}
	rec := get(t, New(cow, Options{Mode: "cow"}).Handler(), "POST", "/reload")
	var res struct {
		OK      bool
		Rollout Rollout
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || rec.Code != 200 || !res.OK || cow.reloads != 1 ||
		res.Rollout.State != "ok" || res.Rollout.Canary != 42 || res.Rollout.To != 2 {
		t.Errorf("POST /reload in CoW mode = %d %q (reloads %d); want 200, ok, the rollout (canary 42, to 2), one reload", rec.Code, rec.Body, cow.reloads)
	}
}

func TestTokenListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(newFake(), Options{Mode: "worker"})
	s.Serve(ln, Token, "s3cret")
	defer s.Close()
	base := "http://" + ln.Addr().String()
	for _, tt := range []struct {
		path, auth string
		code       int
	}{
		{"/healthz", "", 200},
		{"/", "", 200},
		{"/status", "", 401},
		{"/metrics", "", 401},
		{"/history", "Bearer nope", 401},
		{"/status", "Bearer s3cret", 200},
		{"/api/status", "Bearer s3cret", 200},
	} {
		req, _ := http.NewRequest("GET", base+tt.path, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("GET %s with %q = %d; want %d", tt.path, tt.auth, resp.StatusCode, tt.code)
		}
	}
	req, _ := http.NewRequest("POST", base+"/reload", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("POST /reload without the token = %d; want 401", resp.StatusCode)
	}
}

func TestListenUnix(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "askr")
	path := filepath.Join(dir, "admin.sock")
	ln, err := ListenUnix(path)
	if err != nil {
		t.Fatalf("ListenUnix(%s) error = %v", path, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("the socket's directory: %v %v; want made with mode 0755", fi.Mode(), err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o666 {
		t.Errorf("the socket: %v %v; want mode 0666", fi.Mode(), err)
	}
	go func(ln net.Listener) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}(ln)
	if _, err := ListenUnix(path); !errors.Is(err, ErrInUse) {
		t.Errorf("ListenUnix of a live socket error = %v; want ErrInUse", err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // leaves a stale socket file
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	ln, err = ListenUnix(path)
	if err != nil {
		t.Fatalf("ListenUnix of a stale socket error = %v; want it replaced", err)
	}
	ln.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket after Close: %v; want removed", err)
	}
	os.WriteFile(path, []byte("x"), 0o644)
	if _, err := ListenUnix(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("ListenUnix of a regular file error = %v; want \"not a socket\"", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "x" {
		t.Errorf("the regular file was touched")
	}
}

// clientEnv makes this test binary, run as another user, a client of the socket it names.
const clientEnv = "ASKR_ADMIN_TEST_CLIENT"

func TestMain(m *testing.M) {
	if path := os.Getenv(clientEnv); path != "" {
		resp, err := Client(path, 10*time.Second).Get("http://askrd/status")
		if err != nil {
			os.Stdout.WriteString("error: " + err.Error())
			os.Exit(2)
		}
		body, _ := io.ReadAll(resp.Body)
		os.Stdout.WriteString(resp.Status + "\n" + string(body))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Root and askrd's own user are served on the socket; another uid gets 403 naming it.
func TestPeerCredentials(t *testing.T) {
	dir, err := os.MkdirTemp("", "askr-admin-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "admin.sock")
	ln, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	s := New(newFake(), Options{Mode: "worker"})
	s.Serve(ln, PeerCred, "")
	defer s.Close()
	resp, err := Client(path, 10*time.Second).Get("http://askrd/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /status as askrd's own user = %d; want 200", resp.StatusCode)
	}
	t.Run("another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			if os.Getenv("CI") != "" {
				t.Fatal("not root: cannot run a client as another user")
			}
			t.Skip("not root: cannot run a client as another user")
		}
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "client")
		b, err := os.ReadFile(exe)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), clientEnv+"="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("client as uid 65534: %v: %s", err, out)
		}
		if !strings.HasPrefix(string(out), "403 ") || !strings.Contains(string(out), "refused by askrd: uid 65534 is not root") {
			t.Errorf("GET /status as uid 65534 = %q; want 403 refused, naming the uid", out)
		}
	})
}

// The proxy of askrd dashboard lets through only requests with its token, and the page.
func TestProxy(t *testing.T) {
	dir, err := os.MkdirTemp("", "askr-admin-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "admin.sock")
	ln, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	s := New(newFake(), Options{Mode: "worker"})
	s.Serve(ln, PeerCred, "")
	defer s.Close()
	p := httptest.NewServer(Proxy(path, "tok"))
	defer p.Close()
	for _, tt := range []struct {
		path, auth string
		code       int
	}{
		{"/", "", 200},
		{"/status?full", "", 401},
		{"/status?full", "Bearer tok", 200},
		{"/history", "Bearer tok", 200},
	} {
		req, _ := http.NewRequest("GET", p.URL+tt.path, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("GET %s through the proxy with %q = %d; want %d", tt.path, tt.auth, resp.StatusCode, tt.code)
		}
	}
}

// A socket directory others could change is refused: one others may write to, or a symbolic link.
func TestListenUnixRefusesAnUnsafeDirectory(t *testing.T) {
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	if ln, err := ListenUnix(filepath.Join(open, "admin.sock")); err == nil || !strings.Contains(err.Error(), "may be written by others") {
		if ln != nil {
			ln.Close()
		}
		t.Errorf("ListenUnix in a 0777 directory error = %v; want a refusal", err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if ln, err := ListenUnix(filepath.Join(link, "admin.sock")); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		if ln != nil {
			ln.Close()
		}
		t.Errorf("ListenUnix in a linked directory error = %v; want a refusal", err)
	}
}
