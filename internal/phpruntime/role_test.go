package phpruntime

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/phpcgi"
)

// logLines is a slog.Handler that keeps the messages logged.
type logLines struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logLines) WithGroup(string) slog.Handler            { return l }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}

func (l *logLines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.msgs)
}

// waitFor polls the log until a message equal to want appears, or fails after 30 s.
func (l *logLines) waitFor(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if slices.Contains(l.all(), want) {
			return
		}
	}
	t.Fatalf("log %q; want a line %q", l.all(), want)
}

// roleWorker is the worker script of the role tests: it sets globals, as the Laravel worker's
// booted $app, and its own askr_worker_role(), and serves requests.
const roleWorker = `<?php
$app = 'the booted app';
$role = askr_worker_role();
while (askr_handle_request(static function (): void { echo 'served'; })) {
}
`

// startRole starts a real php-cgi worker running roleWorker (with ini settings), reads its hello
// and sends it a Run frame for the PHP code role (written to a file) with argv ("SCRIPT" as
// argv[0] stands for the script's path; nil: a Run frame for role "http", which is none). It returns the worker and its log.
func startRole(t *testing.T, role string, argv []string, ini ...string) (*phpcgi.Process, *logLines) {
	t.Helper()
	bin := phpCGI(t)
	dir := t.TempDir()
	rt, remove, err := Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
	worker, script := filepath.Join(dir, "worker.php"), filepath.Join(dir, "role.php")
	for name, src := range map[string]string{worker: roleWorker, script: role} {
		if err := os.WriteFile(name, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logs := &logLines{}
	l := phpcgi.NewLauncher(phpcgi.Config{Binary: bin, Runtime: rt, Script: worker, AppBase: dir, INI: ini,
		Env: []string{"PATH=/usr/bin:/bin"}, Logger: slog.New(logs)})
	p, err := l.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		<-p.Done()
		p.Close()
	})
	if _, err := p.Greet(30 * time.Second); err != nil {
		t.Fatalf("Greet() error = %v; log %q", err, logs.all())
	}
	if len(argv) > 0 && argv[0] == "SCRIPT" {
		argv[0] = script
	}
	run := channel.AppendRun(nil, "queue", script, argv)
	if argv == nil { // a Run frame that names no valid role
		payload := `a:3:{s:4:"role";s:4:"http";s:6:"script";s:` + strconv.Itoa(len(script)) + `:"` + script + `";s:4:"argv";a:0:{}}`
		run = append(channel.AppendHeader(nil, channel.TypeRun, 0, len(payload)), payload...)
	}
	if _, err := p.Conn().Write(run); err != nil {
		t.Fatal(err)
	}
	return p, logs
}

// exited waits for p to exit and returns its exit code (-1: killed by a signal).
func exited(t *testing.T, p *phpcgi.Process) int {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("role process pid %d did not exit", p.PID())
	}
	var ee *exec.ExitError
	if p.Err() == nil {
		return 0
	}
	if errors.As(p.Err(), &ee) {
		return ee.ExitCode()
	}
	t.Fatalf("role process: %v", p.Err())
	return 0
}

// noFrames checks that the role process wrote nothing on the channel after its hello: no Bye, no
// End, no output.
func noFrames(t *testing.T, p *phpcgi.Process) {
	t.Helper()
	p.Conn().SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(p.Conn())
	if err != nil || len(rest) > 0 {
		t.Errorf("the channel after the Run frame: %q, %v; want nothing, then end of file", rest, err)
	}
}

// A Run frame makes the worker a role process that runs the script as php-cli would: its role,
// argv, STDIN/STDOUT/STDERR, echo and php://output to the process's stdout (the log), not the
// channel; the worker script's globals; askr_handle_request() refused; exit(N) kept.
func TestRunFrameRunsScriptAsCLI(t *testing.T) {
	p, logs := startRole(t, `<?php
echo 'role=', askr_worker_role(), "\n";
print "print\n";
fwrite(STDOUT, 'argv=' . json_encode($argv) . " argc=$argc server=" . json_encode([$_SERVER['argv'], $_SERVER['argc']]) . "\n");
file_put_contents('php://output', "php-output\n");
file_put_contents('php://stdout', "php-stdout\n");
fwrite(STDERR, "stderr\n");
file_put_contents('php://stderr', "php-stderr\n");
echo 'app=', $GLOBALS['app'], ' local=', isset($app) ? 'set' : 'unset', ' worker script role=', $GLOBALS['role'], "\n";
echo 'stdin=', json_encode(fread(STDIN, 10)), ' php-stdin=', json_encode(file_get_contents('php://stdin')), "\n";
echo 'env=', getenv('ASKR_ROLE'), ' time-limit=', ini_get('max_execution_time'), "\n";
try {
    askr_handle_request(static function (): void {});
    echo "askr_handle_request returned\n";
} catch (LogicException $e) {
    echo 'refused: ', $e->getMessage(), "\n";
}
exit((int) $argv[1]);
`, []string{"SCRIPT", "7", "two words"})
	if code := exited(t, p); code != 7 {
		t.Errorf("exit code %d; want 7 (exit(7) in the script); log %q", code, logs.all())
	}
	noFrames(t, p)
	got := logs.all()
	want := []string{
		"role=queue", "print",
		`argv=["SCRIPT","7","two words"] argc=3 server=[["SCRIPT","7","two words"],3]`,
		"php-output", "php-stdout", "stderr", "php-stderr",
		"app=the booted app local=unset worker script role=http",
		`stdin="" php-stdin=""`,
		"env=queue time-limit=0",
		"refused: askr_handle_request() cannot be called in a queue process: it runs its script once, as php-cli would, and serves no request",
	}
	var norm []string
	for _, g := range got {
		norm = append(norm, regexpScript.ReplaceAllString(g, `"SCRIPT"`))
	}
	if !slices.Equal(norm, want) {
		t.Errorf("log\n%s\nwant\n%s", strings.Join(norm, "\n"), strings.Join(want, "\n"))
	}
}

// regexpScript matches the role script's path as json_encode() writes it.
var regexpScript = regexp.MustCompile(`"(\\/[^"]*)role\.php"`)

// An uncaught exception in a role's script is logged as php-cli logs it, and the process exits 255.
func TestRunFrameUncaughtExits255(t *testing.T) {
	p, logs := startRole(t, "<?php\necho \"before\\n\";\nthrow new RuntimeException('boom');\n", []string{})
	if code := exited(t, p); code != 255 {
		t.Errorf("exit code %d; want 255; log %q", code, logs.all())
	}
	noFrames(t, p)
	got := logs.all()
	if len(got) < 2 || got[0] != "before" || !strings.HasPrefix(got[1], "PHP Fatal error:  Uncaught RuntimeException: boom in /") ||
		!strings.HasSuffix(got[len(got)-1], "role.php on line 3") {
		t.Errorf("log %q; want before, then PHP Fatal error:  Uncaught RuntimeException: boom … thrown in …role.php on line 3", got)
	}
}

// A role process has no time limit: a script that computes for 2 s in a worker whose
// max_execution_time is 1 (CPU time) ends normally.
func TestRunFrameHasNoTimeLimit(t *testing.T) {
	p, logs := startRole(t, `<?php
$end = microtime(true) + 2;
while (microtime(true) < $end) {
}
echo "done\n";
`, []string{}, "max_execution_time=1")
	if code := exited(t, p); code != 0 {
		t.Errorf("exit code %d; want 0; log %q", code, logs.all())
	}
	if got := logs.all(); !slices.Equal(got, []string{"done"}) {
		t.Errorf("log %q; want [done]", got)
	}
}

// SIGTERM reaches a role script's own pcntl handler (Laravel's queue:work installs one): the
// script finishes the job it is in and exits 0.
func TestRunFrameSIGTERMReachesScriptHandler(t *testing.T) {
	p, logs := startRole(t, `<?php
pcntl_async_signals(true);
$stop = false;
pcntl_signal(SIGTERM, static function () use (&$stop): void {
    $stop = true;
    echo "got SIGTERM\n";
});
while (!$stop) {
    echo "job start\n";
    $end = microtime(true) + 0.3;
    while (microtime(true) < $end) {
        usleep(10000);
    }
    echo "job done\n";
}
exit(0);
`, []string{})
	logs.waitFor(t, "job start")
	if err := syscall.Kill(p.PID(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exited(t, p); code != 0 {
		t.Errorf("exit code %d; want 0 (the handler ran, the job finished); log %q", code, logs.all())
	}
	got := logs.all()
	starts, dones := 0, 0
	for _, l := range got {
		switch l {
		case "job start":
			starts++
		case "job done":
			dones++
		}
	}
	if !slices.Contains(got, "got SIGTERM") || starts != dones || got[len(got)-1] != "job done" {
		t.Errorf("log %q; want got SIGTERM, every job started done, and job done last", got)
	}
}

// In php-cli (askrd's role processes outside CoW mode) the prepended runtime only defines the
// askr_* functions: askr_worker_role() reads ASKR_ROLE, php-cli's streams, argv, output and
// signal handling are left as they are, and askr_handle_request() says it needs a worker.
func TestRuntimeInPHPCLI(t *testing.T) {
	phpCGI(t)
	php, err := exec.LookPath("php")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("php (php-cli) not found: %v", err)
		}
		t.Skip("php-cli not installed")
	}
	dir := t.TempDir()
	rt, remove, err := Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	script := filepath.Join(dir, "role.php")
	src := `<?php
fwrite(STDOUT, 'role=' . askr_worker_role() . ' sapi=' . PHP_SAPI . ' argv=' . count($argv) . ' ob=' . ob_get_level()
    . ' wrapper=' . stream_get_meta_data(fopen('php://stdout', 'wb'))['wrapper_type'] . "\n");
echo 'handler=', var_export(pcntl_signal_get_handler(SIGTERM), true), "\n";
try {
    askr_handle_request(static function (): void {});
} catch (RuntimeException $e) {
    echo $e->getMessage(), "\n";
}
askr_cow_ready();
exit(3);
`
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ env, role string }{{"ASKR_ROLE=scheduler", "scheduler"}, {"", ""}} {
		cmd := exec.Command(php, "-d", "auto_prepend_file="+rt, script, "x")
		cmd.Env = []string{"PATH=/usr/bin:/bin", tc.env}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Errorf("php-cli %s: %v; want exit status 3; stderr %q", tc.env, err, stderr.String())
		}
		want := "role=" + tc.role + " sapi=cli argv=2 ob=0 wrapper=PHP\nhandler=0\n" +
			"askr_handle_request() works only in a worker started by askrd\n"
		if string(out) != want || stderr.Len() > 0 {
			t.Errorf("php-cli %s printed %q, stderr %q; want %q and nothing on stderr", tc.env, out, stderr.String(), want)
		}
	}
}

// A Run frame that names no role, or no absolute script, is refused: the worker logs why and
// exits 1 without running anything.
func TestRunFrameMalformed(t *testing.T) {
	p, logs := startRole(t, "<?php\necho \"ran\\n\";\n", nil)
	if code := exited(t, p); code != 1 {
		t.Errorf("exit code %d; want 1; log %q", code, logs.all())
	}
	noFrames(t, p)
	if got := logs.all(); !slices.Equal(got, []string{"askr: malformed Run frame; exiting"}) {
		t.Errorf("log %q; want [askr: malformed Run frame; exiting]", got)
	}
}

// A role process leads a process group of its own, so that askrd's signals to the group reach
// what its script starts (the commands Laravel's schedule:run runs) too.
func TestRunFrameLeadsProcessGroup(t *testing.T) {
	p, logs := startRole(t, "<?php\necho 'leader=', var_export(posix_getpgid(0) === getmypid(), true), \"\\n\";\n", []string{})
	if code := exited(t, p); code != 0 {
		t.Errorf("exit code %d; want 0; log %q", code, logs.all())
	}
	if got := logs.all(); !slices.Equal(got, []string{"leader=true"}) {
		t.Errorf("log %q; want [leader=true]", got)
	}
}
