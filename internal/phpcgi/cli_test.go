package phpcgi

import (
	"bufio"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/phpruntime"
	"github.com/askr-php/askr/internal/proc"
)

func phpCLIBinary(t *testing.T) string {
	t.Helper()
	phpCGIBinary(t)
	bin, err := exec.LookPath("php")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("php (php-cli) not found: %v", err)
		}
		t.Skip("php-cli not installed")
	}
	return bin
}

// cliLauncher is a Launcher with the real runtime and a role script src in a temporary app base.
func cliLauncher(t *testing.T, src string, logs io.Writer) (*Launcher, string) {
	t.Helper()
	dir := t.TempDir()
	rt, remove, err := phpruntime.Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
	script := filepath.Join(dir, "role.php")
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "NOTIFY_SOCKET=/run/askrd-only", "ASKR_WORKER=1")
	return NewLauncher(Config{Binary: "/nonexistent/php-cgi", Runtime: rt, Script: "/nonexistent/worker.php", AppBase: dir,
		INI: []string{"memory_limit=77M", "max_execution_time=5"}, Env: env, Logger: slog.New(slog.NewTextHandler(logs, nil))}), script
}

func waitDone(t *testing.T, p *CLIProcess) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		p.Signal(syscall.SIGKILL)
		t.Fatalf("role process pid %d did not exit", p.PID())
	}
}

// StartCLI runs a role script in php-cli with the runtime, ini settings, environment (filtered,
// with ASKR_ROLE and ASKR_APP_BASE) and working directory of the workers; its output is logged
// tagged with its pid, its exit status is known, and the reaper leaves it alone until it has
// been waited for.
func TestStartCLI(t *testing.T) {
	php := phpCLIBinary(t)
	var logs lockedBuffer
	l, script := cliLauncher(t, `<?php
echo 'role=', askr_worker_role(), ' base=', getenv('ASKR_APP_BASE') === getcwd() ? 'cwd' : getcwd(),
    ' memory=', ini_get('memory_limit'), ' time-limit=', ini_get('max_execution_time'), ' notify=', var_export(getenv('NOTIFY_SOCKET'), true),
    ' worker=', var_export(getenv('ASKR_WORKER'), true), ' stdin=', var_export(fread(STDIN, 1), true), "\n";
fwrite(STDERR, "to stderr\n");
exit(4);
`, &logs)
	p, err := l.StartCLI(php, script, "queue")
	if err != nil {
		t.Fatal(err)
	}
	if !l.Owns(p.PID()) {
		t.Errorf("Owns(%d) = false while it runs; want true (the reaper must not wait for it)", p.PID())
	}
	waitDone(t, p)
	if failed, text, known := p.Exit(); !failed || text != "exit status 4" || !known {
		t.Errorf("Exit() = %v, %q, %v; want true, \"exit status 4\", true", failed, text, known)
	}
	if l.Owns(p.PID()) {
		t.Errorf("Owns(%d) = true after it was waited for", p.PID())
	}
	pid := "pid=" + strconv.Itoa(p.PID())
	for _, want := range []string{
		`msg="role=queue base=cwd memory=77M time-limit=0 notify=false worker=false stdin=''" role=queue ` + pid,
		`msg="to stderr" role=queue ` + pid,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %q; want a line with %q", logs.String(), want)
		}
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
}

// Signal reaches the php-cli process, and Exit says what ended it.
func TestStartCLISignal(t *testing.T) {
	php := phpCLIBinary(t)
	var logs lockedBuffer
	l, script := cliLauncher(t, "<?php\necho \"sleeping\\n\";\nsleep(60);\n", &logs)
	p, err := l.StartCLI(php, script, "scheduler")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), "sleeping"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("log %q; want sleeping", logs.String())
		}
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	if failed, text, known := p.Exit(); !failed || text != "signal: terminated" || !known {
		t.Errorf("Exit() = %v, %q, %v; want true, \"signal: terminated\", true", failed, text, known)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("Signal() after exit = %v; want nil", err)
	}
}

// A php-cli role process dies with askrd (its parent-death signal is SIGKILL): the test binary,
// run again as a stand-in askrd, starts one and is killed.
func TestStartCLIDiesWithAskrd(t *testing.T) {
	if os.Getenv("ASKR_TEST_CLI_PARENT") == "1" {
		php := phpCLIBinary(t)
		l, script := cliLauncher(t, "<?php\nsleep(600);\n", io.Discard)
		p, err := l.StartCLI(php, script, "queue")
		if err != nil {
			t.Fatal(err)
		}
		os.Stdout.WriteString("pid " + strconv.Itoa(p.PID()) + "\n")
		select {}
	}
	phpCLIBinary(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestStartCLIDiesWithAskrd$")
	cmd.Env = append(os.Environ(), "ASKR_TEST_CLI_PARENT=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	pid, convErr := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "pid ")))
	if err != nil || convErr != nil {
		t.Fatalf("stand-in askrd printed %q, %v; want its role process's pid", line, err)
	}
	if !proc.Alive(pid) {
		t.Fatalf("role process pid %d not running before its parent was killed", pid)
	}
	cmd.Process.Kill()
	cmd.Wait()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if !proc.Alive(pid) {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("role process pid %d still runs 30 s after its askrd was killed", pid)
		}
	}
}

// Signal reaches what the role process started too (a command that schedule:run runs): they
// are in the process's own group.
func TestStartCLISignalReachesItsChildren(t *testing.T) {
	php := phpCLIBinary(t)
	var logs lockedBuffer
	l, script := cliLauncher(t, "<?php\necho 'child=', exec('sleep 60 >/dev/null 2>&1 & echo $!'), \"\\n\";\nsleep(60);\n", &logs)
	p, err := l.StartCLI(php, script, "scheduler")
	if err != nil {
		t.Fatal(err)
	}
	child := 0
	for deadline := time.Now().Add(30 * time.Second); child == 0; time.Sleep(10 * time.Millisecond) {
		if i := strings.Index(logs.String(), "child="); i >= 0 {
			f := strings.Fields(logs.String()[i+len("child="):])
			if len(f) > 0 {
				child, _ = strconv.Atoi(strings.Trim(f[0], `"`))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %q; want child=PID", logs.String())
		}
	}
	st, err := proc.ReadStat(child)
	if err != nil || st.Comm != "sleep" {
		t.Fatalf("child %d: %+v, %v; want a sleep", child, st, err)
	}
	defer func() {
		if s, err := proc.ReadStat(child); err == nil && s.StartTime == st.StartTime {
			syscall.Kill(child, syscall.SIGKILL)
		}
	}()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s, err := proc.ReadStat(child)
		if err != nil || s.StartTime != st.StartTime || s.State == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the role process's child %d still runs 10 s after Signal(SIGTERM)", child)
		}
	}
}
