package template

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/phpcgi"
	"github.com/askr-php/askr/internal/phpruntime"
	"github.com/askr-php/askr/internal/proc"
	"github.com/askr-php/askr/internal/sidecar"
)

// laravelRoleApp copies examples/laravel with testdata/laravel-roles laid over it (a database
// queue, a job, a schedule) to a temporary directory and returns it, with the examples directory
// and php-cli's path.
func laravelRoleApp(t *testing.T) (app, examples, php string) {
	t.Helper()
	if _, err := os.Stat("/usr/share/php/Illuminate/Foundation/Application.php"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Laravel not installed: %v", err)
		}
		t.Skip("Laravel not installed in /usr/share/php/Illuminate (apt-get install php-laravel-framework)")
	}
	php, err := exec.LookPath("php")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("php (php-cli) not found: %v", err)
		}
		t.Skip("php-cli not installed")
	}
	examples, _ = filepath.Abs("../../examples")
	app = filepath.Join(t.TempDir(), "app")
	if err := os.CopyFS(app, os.DirFS(filepath.Join(examples, "laravel"))); err != nil {
		t.Fatal(err)
	}
	// The example has a database queue, the console providers and kernel; the overlay's console
	// kernel (its schedule) and queue config replace the example's.
	for _, f := range []string{"app/Console/Kernel.php", "config/queue.php"} {
		os.Remove(filepath.Join(app, f))
	}
	if err := os.CopyFS(app, os.DirFS("testdata/laravel-roles")); err != nil {
		t.Fatal(err)
	}
	return app, examples, php
}

// dispatch queues n Note jobs taking seconds each, from php-cli.
func dispatch(t *testing.T, php, app string, n int, seconds string) {
	t.Helper()
	cmd := exec.Command(php, "dispatch.php", strconv.Itoa(n), seconds)
	cmd.Dir = app
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dispatch.php: %v\n%s", err, out)
	}
}

// notes waits until the file storage/name has n lines, and returns them.
func notes(t *testing.T, app, name string, n int) []string {
	t.Helper()
	var lines []string
	poll(t, name+": "+strconv.Itoa(n)+" lines", func() bool {
		b, _ := os.ReadFile(filepath.Join(app, "storage", name))
		lines = strings.Fields(strings.ReplaceAll(string(b), " ", "_"))
		return len(lines) >= n
	})
	os.Remove(filepath.Join(app, "storage", name))
	return lines
}

// stopRole sends p SIGTERM and waits for it to exit.
func stopRole(t *testing.T, p sidecar.Proc) {
	t.Helper()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	awaitExit(t, p, "after SIGTERM")
	p.Close()
}

// awaitExit waits up to 30 s for p to exit, else kills it and fails the test.
func awaitExit(t *testing.T, p sidecar.Proc, what string) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		p.Signal(syscall.SIGKILL)
		t.Fatalf("pid %d did not exit within 30 s %s", p.PID(), what)
	}
}

// The shipped Laravel scripts in CoW mode: laravel-queue.php forked from the template that booted
// the app with laravel-worker.php works the database queue (each job once, in the fork, with
// runningInConsole() true), finishes the job it is in on SIGTERM and exits; laravel-scheduler.php
// runs the schedule once and exits.
func TestLaravelRoleScriptsCoW(t *testing.T) {
	app, examples, php := laravelRoleApp(t)
	dispatch(t, php, app, 5, "0")
	tm, _ := realTemplate(t, app, filepath.Join(examples, "laravel-worker.php"))
	q, err := tm.StartRole("queue", filepath.Join(examples, "laravel-queue.php"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if parent := proc.Parent(q.PID()); parent != tm.PID() {
		t.Errorf("queue worker's parent = %d; want the template %d", parent, tm.PID())
	}
	want := []string{}
	for n := 1; n <= 5; n++ {
		want = append(want, strconv.Itoa(n)+"_"+strconv.Itoa(q.PID())+"_cgi-fcgi_console=true")
	}
	if got := notes(t, app, "notes", 5); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("jobs noted %q; want %q", got, want)
	}
	dispatch(t, php, app, 1, "1")
	if got := notes(t, app, "notes", 1); got[0] != "start_1" {
		t.Fatalf("noted %q; want start_1", got)
	}
	stopRole(t, q)
	if got := notes(t, app, "notes", 1); got[0] != "1_"+strconv.Itoa(q.PID())+"_cgi-fcgi_console=true" {
		t.Errorf("after SIGTERM the job noted %q; want it done by pid %d", got, q.PID())
	}

	s, err := tm.StartRole("scheduler", filepath.Join(examples, "laravel-scheduler.php"), nil)
	if err != nil {
		t.Fatal(err)
	}
	awaitExit(t, s, "(a scheduler run)")
	s.Close()
	if got := notes(t, app, "schedule", 1); got[0] != strconv.Itoa(s.PID())+"_cgi-fcgi" {
		t.Errorf("schedule noted %q; want a run by pid %d", got, s.PID())
	}
}

// The same scripts outside CoW mode: php-cli processes (phpcgi.StartCLI) that boot the app at
// ASKR_APP_BASE themselves.
func TestLaravelRoleScriptsCLI(t *testing.T) {
	app, examples, php := laravelRoleApp(t)
	dispatch(t, php, app, 3, "0")
	rt, remove, err := phpruntime.Install(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	logs := &logBuffer{}
	l := phpcgi.NewLauncher(phpcgi.Config{Runtime: rt, AppBase: app, Env: os.Environ(), Logger: logs.logger()})
	q, err := l.StartCLI(php, filepath.Join(examples, "laravel-queue.php"), "queue")
	if err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(q.PID())
	if got := notes(t, app, "notes", 3); strings.Join(got, " ") != "1_"+pid+"_cli_console=true 2_"+pid+"_cli_console=true 3_"+pid+"_cli_console=true" {
		t.Errorf("jobs noted %q; want 1, 2, 3 by pid %s", got, pid)
	}
	if !strings.Contains(logs.String(), "Processed:  App\\\\Jobs\\\\Note\" role=queue pid="+pid) {
		t.Errorf("log %s; want queue:work's lines tagged with role=queue and pid %s", logs.String(), pid)
	}
	stopRole(t, q)
	if failed, text, _ := q.Exit(); failed {
		t.Errorf("queue worker after SIGTERM: %s; want exit status 0", text)
	}
	s, err := l.StartCLI(php, filepath.Join(examples, "laravel-scheduler.php"), "scheduler")
	if err != nil {
		t.Fatal(err)
	}
	<-s.Done()
	if failed, text, _ := s.Exit(); failed {
		t.Errorf("scheduler run: %s; want exit status 0; log %s", text, logs.String())
	}
	if got := notes(t, app, "schedule", 1); got[0] != strconv.Itoa(s.PID())+"_cli" {
		t.Errorf("schedule noted %q; want a run by pid %d", got, s.PID())
	}
}
