package phpcgi

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/phpruntime"
)

func TestWorkerEnv(t *testing.T) {
	in := []string{"PATH=/usr/bin", "LISTEN_FDS=2", "LISTEN_PID=1", "LISTEN_FDNAMES=http", "NOTIFY_SOCKET=/run/x",
		"WATCHDOG_USEC=1", "WATCHDOG_PID=1", "ASKR_WORKER=0", "ASKR_APP_BASE=/old", "ASKR_PARANOID=1", "APP_ENV=prod"}
	got := workerEnv(in, "/srv/app", false)
	want := []string{"PATH=/usr/bin", "APP_ENV=prod", "ASKR_WORKER=1", "ASKR_APP_BASE=/srv/app"}
	if !slices.Equal(got, want) {
		t.Errorf("workerEnv(paranoid off) = %q; want %q (a user's ASKR_PARANOID does not reach the workers)", got, want)
	}
	got = workerEnv(in, "/srv/app", true)
	want = append(want, "ASKR_PARANOID=1")
	if !slices.Equal(got, want) {
		t.Errorf("workerEnv(paranoid on) = %q; want %q", got, want)
	}
}

// A worker whose extension does not load still starts; PHP's startup warning reaches the log as an error.
func TestStartLogsExtensionLoadFailure(t *testing.T) {
	bin, err := exec.LookPath("php-cgi")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("php-cgi not found: %v", err)
		}
		t.Skip("php-cgi not installed")
	}
	dir := t.TempDir()
	runtime, script := filepath.Join(dir, "runtime.php"), filepath.Join(dir, "worker.php")
	for _, f := range []string{runtime, script} {
		if err := os.WriteFile(f, []byte("<?php\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var logs lockedBuffer
	missing := filepath.Join(dir, "askr.so")
	l := NewLauncher(Config{Binary: bin, Runtime: runtime, Extension: missing, Script: script, AppBase: dir,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	p, err := l.Start()
	if err != nil {
		t.Fatalf("Start() error = %v; want nil", err)
	}
	defer p.Close()
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		p.Kill()
		t.Fatal("php-cgi did not exit")
	}
	want := "Unable to load dynamic library '" + missing + "'"
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, want) {
			if !strings.Contains(line, "level=ERROR") {
				t.Errorf("log line %q; want level=ERROR", line)
			}
			return
		}
	}
	t.Errorf("log = %q; want a line with %q", logs.String(), want)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A worker's hello is accepted only from the process askrd started: php-cgi run as a wrapper's
// child (not exec'd) says hello with its own pid, which is not the started one, and is refused.
func TestGreetWantsTheStartedProcess(t *testing.T) {
	bin := phpCGIBinary(t)
	dir := t.TempDir()
	rt, remove, err := phpruntime.Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	script := filepath.Join(dir, "worker.php")
	wrapper := filepath.Join(dir, "php-cgi-wrapper")
	for name, src := range map[string]string{
		script:  "<?php\nwhile (askr_handle_request(static function (): void {})) {\n}\n",
		wrapper: "#!/bin/sh\n" + bin + " \"$@\"\n",
	} {
		if err := os.WriteFile(name, []byte(src), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		binary, want string
	}{
		{bin, ""},
		{wrapper, "peer check failed"},
	} {
		l := NewLauncher(Config{Binary: tc.binary, Runtime: rt, Script: script, AppBase: dir, Env: os.Environ(),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		p, err := l.Start()
		if err != nil {
			t.Fatalf("Start(%s) error = %v; want nil", tc.binary, err)
		}
		h, err := p.Greet(30 * time.Second)
		switch {
		case tc.want == "" && (err != nil || h.PID != p.PID()):
			t.Errorf("%s: Greet() = pid %d, %v; want pid %d, nil", tc.binary, h.PID, err, p.PID())
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), "askrd started "+strconv.Itoa(p.PID()))):
			t.Errorf("%s: Greet() error = %v; want %q naming the started pid %d", tc.binary, err, tc.want, p.PID())
		}
		p.Close() // the worker reads end-of-file and leaves its loop
		select {
		case <-p.Done():
		case <-time.After(30 * time.Second):
			p.Kill()
			t.Errorf("%s: pid %d did not exit after its channel closed", tc.binary, p.PID())
		}
	}
}

// php-cgi's CGI headers and PHP's display of an error it has just logged are not logged again:
// one event, one line. Lines PHP code writes are kept, header-shaped or not.
func TestPumpOneLinePerEvent(t *testing.T) {
	in := "PHP Fatal error:  Allowed memory size of 16777216 bytes exhausted in /app/w.php on line 4\n" +
		"Status: 500 Internal Server Error\r\n" +
		"X-Powered-By: PHP/8.2.7\r\n" +
		"Set-Cookie: id=secret\r\n" +
		"Content-type: text/html; charset=UTF-8\r\n" +
		"\r\n" +
		"\n" +
		"Fatal error: Allowed memory size of 16777216 bytes exhausted in /app/w.php on line 4\n" +
		"Fatal error: something else\n" +
		"Content-type: written by the app\n" +
		"[06-Dec-2026 05:00:00 UTC] PHP Warning:  Undefined variable $x in /app/w.php on line 9\n" +
		"Warning: Undefined variable $x in /app/w.php on line 9\n"
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	var seen []string
	Pump(strings.NewReader(in), log, func(l string) { seen = append(seen, l) })
	want := []string{
		`level=ERROR msg="PHP Fatal error:  Allowed memory size of 16777216 bytes exhausted in /app/w.php on line 4"`,
		`level=INFO msg="Fatal error: something else"`,
		`level=INFO msg="Content-type: written by the app"`,
		`level=WARN msg="PHP Warning:  Undefined variable $x in /app/w.php on line 9"`,
	}
	if got := strings.Split(strings.TrimSpace(out.String()), "\n"); !slices.Equal(got, want) {
		t.Errorf("Pump logged\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(seen) != len(want) {
		t.Errorf("Pump passed %d lines to seen (%q); want the %d it logged", len(seen), seen, len(want))
	}
}

// A line is logged at the level PHP, or the app's Monolog, gave it: journalctl -p warning shows
// the problems. An app's own lines are never hidden below INFO.
func TestPumpLevels(t *testing.T) {
	for line, want := range map[string]slog.Level{
		"PHP Fatal error:  Uncaught Error: Call to undefined function f()":                        slog.LevelError,
		"PHP Parse error:  syntax error, unexpected end of file in /app/a.php on line 3":          slog.LevelError,
		"PHP Recoverable fatal error:  Object of class C could not be converted to string":        slog.LevelError,
		"askr: PHP Fatal error in the worker script":                                              slog.LevelError,
		"PHP Warning:  PHP Startup: Unable to load dynamic library 'askr.so'":                     slog.LevelError,
		"PHP Warning:  Undefined variable $x in /app/a.php on line 9":                             slog.LevelWarn,
		"PHP Notice:  Only variables should be passed by reference":                               slog.LevelWarn,
		"PHP Deprecated:  Creation of dynamic property C::$p is deprecated":                       slog.LevelWarn,
		"askr paranoid: the request left ob level 1":                                              slog.LevelWarn,
		"askr: fork safety: Redis connection to 127.0.0.1:6379 open in the template: …":           slog.LevelWarn,
		"[2026-12-06T12:00:00.123456+00:00] production.ERROR: Division by zero {\"exception\":…}": slog.LevelError,
		"[2026-12-06 12:00:00] local.CRITICAL: disk full":                                         slog.LevelError,
		"[2026-12-06T12:00:00+00:00] app.WARNING: slow query":                                     slog.LevelWarn,
		"[2026-12-06T12:00:00+00:00] request.NOTICE: route not found":                             slog.LevelInfo,
		"[2026-12-06T12:00:00+00:00] app.DEBUG: cache hit":                                        slog.LevelInfo,
		"error_log from worker":                      slog.LevelInfo,
		"Fatal error: something else":                slog.LevelInfo,
		"[not a date] app.ERROR: looks like Monolog": slog.LevelInfo,
	} {
		if got := levelOf(line); got != want {
			t.Errorf("levelOf(%q) = %v; want %v", line, got, want)
		}
	}
}
