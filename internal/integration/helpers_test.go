package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/harness"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	// Many askrd run at once: none may take the default admin socket, /run/askr/admin.sock
	// (startAskrd gives each its own).
	os.Setenv("ASKR_ADMIN_SOCKET", "")
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// repoRoot is the repository's top directory.
func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// askrdBinary builds askrd once per test binary and returns its path.
func askrdBinary(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("php-cgi"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("php-cgi not found: %v (make deps installs it)", err)
		}
		t.Skip("php-cgi not installed (run make deps)")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "askrd-bin-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-race", "-o", filepath.Join(binDir, "askrd"), filepath.Join(repoRoot(t), "cmd", "askrd")).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		if buildErr = os.Symlink("askrd", filepath.Join(binDir, "askr")); buildErr == nil {
			buildErr = linkExtension(repoRoot(t), binDir)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "askrd")
}

// linkExtension puts askr's PHP extension next to the test's askrd, where [worker] extension =
// "auto" finds it: build/ext/askr.so, brought up to date by `make ext` where php8.2-dev is
// installed. Without php8.2-dev the workers run without it (askrd warns).
func linkExtension(root, binDir string) error {
	if _, err := exec.LookPath("phpize"); err != nil {
		return nil
	}
	if out, err := exec.Command("make", "-C", root, "--no-print-directory", "ext").CombinedOutput(); err != nil {
		return fmt.Errorf("make ext: %v\n%s", err, out)
	}
	return os.Symlink(filepath.Join(root, "build", "ext", "askr.so"), filepath.Join(binDir, "askr.so"))
}

// syncBuffer collects a process's output.
type syncBuffer = harness.Buffer

type server struct {
	t    testing.TB
	URL  string
	Addr string
	cmd  *exec.Cmd
	logs *syncBuffer
	tmp  string // askrd's TMPDIR, where it spools bodies and uploads
	conf string // the file passed with --config, if any
	// admin is its admin socket (ASKR_ADMIN_SOCKET), in a directory of its own with a short path
	// (a Unix socket's path has at most 107 bytes).
	admin string
	done  chan struct{}
	err   error
}

// options for startAskrd.
type opts struct {
	args    []string // extra serve flags
	env     []string
	config  string // contents of an askr.toml passed with --config
	noReady bool   // do not wait for the workers
	root    string // document root (default: the hello example's)
	script  string // worker script (default: testdata/worker.php)
	// perRequest starts askrd without a worker script (per-request mode; never with --cow).
	perRequest bool
	bin        string // the askrd to run (default: askrdBinary)
}

// needSocketActivate skips the test without systemd-socket-activate (systemd's package), or fails it
// under CI=true.
func needSocketActivate(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("systemd-socket-activate"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("systemd-socket-activate not found: %v", err)
		}
		t.Skip("systemd-socket-activate not installed")
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// cowMode reports whether this run of the suite tests CoW template mode (ASKR_TEST_COW=1): every
// askrd the tests start then runs with --cow. make test runs the suite in both modes.
func cowMode() bool { return os.Getenv("ASKR_TEST_COW") == "1" }

// startAskrd starts askrd serve and waits until its workers are ready. It is stopped (SIGTERM)
// when the test ends.
func startAskrd(t testing.TB, o opts) *server {
	t.Helper()
	bin := askrdBinary(t)
	if o.bin != "" {
		bin = o.bin
	}
	root := repoRoot(t)
	addr := freeAddr(t)
	if o.root == "" {
		o.root = filepath.Join(root, "examples", "hello", "public")
	}
	if o.script == "" {
		o.script = filepath.Join(root, "internal", "integration", "testdata", "worker.php")
	}
	args := []string{"serve", "--listen", addr, "--root", o.root}
	if !o.perRequest {
		args = append(args, "--worker-script", o.script)
	}
	conf := ""
	if o.config != "" {
		p := filepath.Join(t.TempDir(), "askr.toml")
		conf = p
		if err := os.WriteFile(p, []byte(o.config), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", p)
	}
	args = append(args, o.args...)
	if cowMode() && !o.perRequest {
		args = append(args, "--cow")
	}
	cmd := exec.Command(bin, args...)
	tmp := t.TempDir()
	adminDir, err := os.MkdirTemp("", "askr-admin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(adminDir) })
	adminSock := filepath.Join(adminDir, "admin.sock")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "ASKR_ADMIN_SOCKET="+adminSock)
	cmd.Env = append(cmd.Env, o.env...)
	s := &server{t: t, URL: "http://" + addr, Addr: addr, cmd: cmd, logs: &syncBuffer{}, tmp: tmp, conf: conf, admin: adminSock, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("askrd log:\n%s", s.logs.String())
		}
	})
	want := "workers ready"
	if o.noReady {
		want = "askrd serving"
	}
	s.waitLog(want, 30*time.Second)
	return s
}

// runCommand starts cmd (an askrd, or a launcher of one such as systemd-socket-activate) with its
// output in the returned server's logs; the caller stops it.
func runCommand(t *testing.T, cmd *exec.Cmd) *server {
	t.Helper()
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	return s
}

func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("askrd did not stop within 30s of SIGTERM")
	}
}

// waitLog polls the log until it contains substr.
func (s *server) waitLog(substr string, timeout time.Duration) {
	s.t.Helper()
	if !poll(timeout, func() bool { return strings.Contains(s.logs.String(), substr) }) {
		select {
		case <-s.done:
			s.t.Fatalf("askrd exited (%v) before logging %q:\n%s", s.err, substr, s.logs.String())
		default:
		}
		s.t.Fatalf("askrd did not log %q within %v:\n%s", substr, timeout, s.logs.String())
	}
}

// poll calls cond every few milliseconds until it is true or timeout passes (harness.Poll).
var poll = harness.Poll

var client = &http.Client{
	Timeout:       60 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request and reads the whole answer.
func (s *server) do(method, path string, body io.Reader, header ...string) response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.URL+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if strings.EqualFold(header[i], "Host") {
			req.Host = header[i+1]
			continue
		}
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (s *server) get(path string, header ...string) response {
	s.t.Helper()
	return s.do(http.MethodGet, path, nil, header...)
}

// loadRun is a bounded request loop against askrd, for tests that change askrd under load.
type loadRun struct {
	ok, failed atomic.Int64
	stop       chan struct{}
	wg         sync.WaitGroup
}

// startLoad sends GET path from conc goroutines, at most n requests each, until Stop.
func (s *server) startLoad(path string, conc, n int) *loadRun {
	l := &loadRun{stop: make(chan struct{})}
	for range conc {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for range n {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := client.Get(s.URL + path)
				if err != nil {
					l.failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					l.ok.Add(1)
				} else {
					l.failed.Add(1)
				}
			}
		}()
	}
	return l
}

// Stop ends the loop and waits for its requests.
func (l *loadRun) Stop() {
	close(l.stop)
	l.wg.Wait()
}

// countStatuses sends n GETs of url from conc goroutines and counts the answers by status (0: no
// answer; -1: a 200 whose body ok, if not nil, rejects).
func countStatuses(url string, conc, n int, ok func(body []byte) bool) map[int]int {
	var mu sync.Mutex
	statuses := map[int]int{}
	next := make(chan struct{})
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				code := 0
				if resp, err := client.Get(url); err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
					if code == 200 && ok != nil && !ok(b) {
						code = -1
					}
				}
				mu.Lock()
				statuses[code]++
				mu.Unlock()
			}
		}()
	}
	for range n {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	return statuses
}

// copyTestdata copies testdata/NAME (an app written for the tests) to dst and returns dst.
func copyTestdata(t *testing.T, name, dst string) string {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(filepath.Join(repoRoot(t), "internal", "integration", "testdata", name))); err != nil {
		t.Fatalf("copy testdata/%s: %v", name, err)
	}
	return dst
}
