package phpcgi

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/fastcgi"
)

func TestFastCGIEnv(t *testing.T) {
	in := []string{"PATH=/usr/bin", "LISTEN_FDS=2", "NOTIFY_SOCKET=/run/x", "WATCHDOG_USEC=1", "ASKR_WORKER=1",
		"PHP_FCGI_CHILDREN=8", "PHP_FCGI_MAX_REQUESTS=500", "APP_ENV=prod"}
	got := fastcgiEnv(in)
	want := []string{"PATH=/usr/bin", "APP_ENV=prod", "PHP_FCGI_MAX_REQUESTS=0"}
	if !slices.Equal(got, want) {
		t.Errorf("fastcgiEnv = %q; want %q", got, want)
	}
}

func phpCGIBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("php-cgi")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("php-cgi not found: %v", err)
		}
		t.Skip("php-cgi not installed")
	}
	return bin
}

// fcgiFixture is a Launcher for FastCGI processes with a document root of PHP scripts.
type fcgiFixture struct {
	l    *Launcher
	root string
	logs *lockedBuffer
}

func newFCGIFixture(t *testing.T, scripts map[string]string, ini ...string) *fcgiFixture {
	t.Helper()
	f := &fcgiFixture{root: t.TempDir(), logs: &lockedBuffer{}}
	for name, src := range scripts {
		if err := os.WriteFile(filepath.Join(f.root, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sockets := t.TempDir()
	f.l = NewLauncher(Config{Binary: phpCGIBinary(t), AppBase: f.root, INI: ini, SocketDir: sockets,
		Env: append(os.Environ(), "PHP_FCGI_MAX_REQUESTS=2", "ASKR_TEST_MARK=42"), Logger: slog.New(slog.NewTextHandler(f.logs, nil))})
	return f
}

// start starts a process and waits for its hello; it is killed when the test ends.
func (f *fcgiFixture) start(t *testing.T) *FastCGIProcess {
	t.Helper()
	p, err := f.l.StartFastCGI()
	if err != nil {
		t.Fatalf("StartFastCGI() error = %v", err)
	}
	t.Cleanup(func() {
		p.Kill()
		<-p.Done()
		p.Close()
		if t.Failed() {
			t.Logf("log:\n%s", f.logs.String())
		}
	})
	if _, err := p.Greet(30 * time.Second); err != nil {
		t.Fatalf("Greet() error = %v", err)
	}
	return p
}

// request builds a GET of the script name.
func (f *fcgiFixture) request(name, query string, stdout *bytes.Buffer) *fastcgi.Request {
	return &fastcgi.Request{Params: []fastcgi.Param{
		{Name: "REQUEST_METHOD", Value: "GET"}, {Name: "SCRIPT_FILENAME", Value: filepath.Join(f.root, name)},
		{Name: "SCRIPT_NAME", Value: "/" + name}, {Name: "REQUEST_URI", Value: "/" + name + "?" + query},
		{Name: "QUERY_STRING", Value: query}, {Name: "DOCUMENT_ROOT", Value: f.root}, {Name: "REDIRECT_STATUS", Value: "200"},
		{Name: "SERVER_PROTOCOL", Value: "HTTP/1.1"}, {Name: "GATEWAY_INTERFACE", Value: "CGI/1.1"},
	}, Stdout: stdout}
}

// body returns what follows the CGI head.
func body(t *testing.T, out *bytes.Buffer) string {
	t.Helper()
	_, b, ok := strings.Cut(out.String(), "\r\n\r\n")
	if !ok {
		t.Fatalf("output without a head: %q", out.String())
	}
	return b
}

// A process answers its hello, serves requests on its one kept connection whatever the
// environment says of PHP_FCGI_MAX_REQUESTS, answers pings between them, and exits on Stop.
func TestFastCGIProcessServes(t *testing.T) {
	f := newFCGIFixture(t, map[string]string{
		"pid.php": `<?php echo getmypid(), ' ', getenv('PHP_FCGI_MAX_REQUESTS'), ' ', $_SERVER['ASKR_TEST_MARK'] ?? '-', ' ', getenv('ASKR_WORKER') === false ? 'no-worker' : 'worker';`,
	})
	p := f.start(t)
	want := strconv.Itoa(p.PID()) + " 0 42 no-worker"
	for i := range 4 {
		var out bytes.Buffer
		reusable, reached, err := p.Do(context.Background(), f.request("pid.php", "", &out))
		if err != nil || !reusable || !reached {
			t.Fatalf("request %d: Do() = %v, %v, %v; want true, true, nil", i, reusable, reached, err)
		}
		if got := body(t, &out); got != want {
			t.Errorf("request %d: body %q; want %q", i, got, want)
		}
		if err := p.Ping(5 * time.Second); err != nil {
			t.Errorf("Ping() after request %d = %v", i, err)
		}
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("php-cgi did not exit after Stop")
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if _, err := os.Stat(p.sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket %s after Close: %v; want it removed", p.sock, err)
	}
}

// STDERR records reach the log with the process's pid, at PHP's level.
func TestFastCGIStderrLogged(t *testing.T) {
	f := newFCGIFixture(t, map[string]string{
		"warn.php": `<?php error_log("askr-test: from error_log"); trigger_error("askr-test: a warning", E_USER_WARNING); echo "done";`,
	}, "log_errors=1", "display_errors=0")
	p := f.start(t)
	var out bytes.Buffer
	if _, _, err := p.Do(context.Background(), f.request("warn.php", "", &out)); err != nil {
		t.Fatalf("Do() = %v", err)
	}
	var sawLog, sawWarn bool
	// The log pipe is read on another goroutine: poll.
	deadline := time.Now().Add(5 * time.Second)
	for !(sawLog && sawWarn) && time.Now().Before(deadline) {
		for _, line := range strings.Split(f.logs.String(), "\n") {
			pid := "pid=" + strconv.Itoa(p.PID())
			switch {
			case strings.Contains(line, "askr-test: from error_log") && strings.Contains(line, pid):
				sawLog = true
			case strings.Contains(line, "askr-test: a warning") && strings.Contains(line, pid) && strings.Contains(line, "level=WARN"):
				sawWarn = true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !sawLog || !sawWarn {
		t.Errorf("log lacks the error_log line (%v) or the warning at WARN (%v):\n%s", sawLog, sawWarn, f.logs.String())
	}
}

// A request whose client goes away mid-response: Do returns once php-cgi has aborted the script
// (at its next output) and answers again, and the process serves the next request.
func TestFastCGICancelledRequestLeavesProcessIdle(t *testing.T) {
	stop := filepath.Join(t.TempDir(), "stop")
	f := newFCGIFixture(t, map[string]string{
		// Writes until aborted; bounded so that a broken test ends.
		"loop.php": `<?php for ($i = 0; $i < 2000 && !file_exists($_GET['stop']); $i++) { echo str_repeat('x', 100), "\n"; ob_flush(); flush(); usleep(5000); } file_put_contents($_GET['stop'] . '.ran-out', '1');`,
		"pid.php":  `<?php echo getmypid();`,
	})
	p := f.start(t)
	ctx, cancel := context.WithCancel(context.Background())
	req := f.request("loop.php", "stop="+stop, nil)
	req.Stdout = writerFunc(func(b []byte) (int, error) { cancel(); return len(b), nil })
	reusable, reached, err := p.Do(ctx, req)
	if !errors.Is(err, context.Canceled) || !reusable || !reached {
		t.Fatalf("Do() of a cancelled request = %v, %v, %v; want reusable, reached, context.Canceled", reusable, reached, err)
	}
	var out bytes.Buffer
	if reusable, _, err := p.Do(context.Background(), f.request("pid.php", "", &out)); err != nil || !reusable || body(t, &out) != strconv.Itoa(p.PID()) {
		t.Errorf("next request: %v, %v, %q; want the same process answering", reusable, err, out.String())
	}
	if _, err := os.Stat(stop + ".ran-out"); err == nil {
		t.Errorf("the script ran to its end; want it aborted at its first write after the cancel")
	}
}

// A process killed mid-request is not reusable.
func TestFastCGIKilledProcess(t *testing.T) {
	f := newFCGIFixture(t, map[string]string{"die.php": `<?php posix_kill(getmypid(), 9); echo "unreachable";`})
	p := f.start(t)
	var out bytes.Buffer
	reusable, reached, err := p.Do(context.Background(), f.request("die.php", "", &out))
	if err == nil || reusable || !reached {
		t.Errorf("Do() of a script that kills its process = %v, %v, %v; want not reusable, reached, an error", reusable, reached, err)
	}
	<-p.Done()
	if reusable, reached, err := p.Do(context.Background(), f.request("die.php", "", &out)); err == nil || reusable || reached {
		t.Errorf("Do() on an exited process = %v, %v, %v; want not reached", reusable, reached, err)
	}
}

// A php-cgi that exits at startup fails its Greet at once, with its last words.
func TestFastCGIGreetFailsWhenPHPExits(t *testing.T) {
	f := newFCGIFixture(t, nil)
	f.l.cfg.Binary = "/bin/false"
	p, err := f.l.StartFastCGI()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start := time.Now()
	if _, err := p.Greet(30 * time.Second); err == nil {
		t.Errorf("Greet() of a process that exited = nil; want an error")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Greet() took %v; want it to notice the exit", d)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
