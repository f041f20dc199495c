package template

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/askr-php/askr/internal/proc"
)

// roleScript is a queue worker's stand-in: it says who it is, then runs 0.3 s jobs until SIGTERM
// (its own pcntl handler, as Laravel's queue:work has), finishes the job it is in and exits.
const roleScript = `<?php
pcntl_async_signals(true);
$stop = false;
pcntl_signal(SIGTERM, static function () use (&$stop): void {
    $stop = true;
});
echo 'role=', askr_worker_role(), ' ppid=', posix_getppid(), ' release=', $GLOBALS['release'], ' argv=', implode(',', $argv), "\n";
while (!$stop) {
    echo "job start\n";
    $end = microtime(true) + 0.3;
    while (microtime(true) < $end) {
        usleep(10000);
    }
    echo "job done\n";
}
`

// roleLine waits for the line roleScript prints first, from any pid, and returns that pid and
// the line's fields.
func roleLine(t *testing.T, logs *logBuffer, pid int) string {
	t.Helper()
	re := regexp.MustCompile(`msg="(role=[^"]*)" role=\w+ pid=` + strconv.Itoa(pid) + `\n`)
	var line string
	poll(t, "the role process's first line", func() bool {
		m := re.FindStringSubmatch(logs.String())
		if m != nil {
			line = m[1]
		}
		return m != nil
	})
	return line
}

// A role process forked from a real template: its parent is the template, it runs the script
// with the worker script's globals and its argv, its output is logged with its role and pid, SIGTERM
// reaches its handler (it finishes its job and exits), and the template goes on forking workers
// that serve. A template retired by a reload waits for it before it stops.
func TestStartRoleForksFromTemplate(t *testing.T) {
	appBase := t.TempDir()
	script, role := filepath.Join(appBase, "worker.php"), filepath.Join(appBase, "queue.php")
	os.WriteFile(script, []byte(fmt.Sprintf(stageScript, "r1")), 0o644)
	os.WriteFile(role, []byte(roleScript), 0o644)
	tm, logs := realTemplate(t, appBase, script)
	p, err := tm.StartRole("queue", role, []string{role, "--once", "x"})
	if err != nil {
		t.Fatalf("StartRole() = %v", err)
	}
	t.Cleanup(func() { p.Signal(syscall.SIGKILL); <-p.Done(); p.Close() })
	old := tm.PID()
	want := "role=queue ppid=" + strconv.Itoa(old) + " release=r1 argv=" + role + ",--once,x"
	if got := roleLine(t, logs, p.PID()); got != want {
		t.Errorf("role process said %q; want %q", got, want)
	}

	// A reload: the old template is retired, and stays while its role process runs.
	os.WriteFile(script, []byte(fmt.Sprintf(stageScript, "r2")), 0o644)
	if err := tm.Stage(nil); err != nil {
		t.Fatalf("Stage(nil) = %v", err)
	}
	tm.Commit()
	poll(t, "the role process's first job", func() bool {
		return strings.Contains(logs.String(), `msg="job start" role=queue pid=`+strconv.Itoa(p.PID()))
	})
	if !proc.Alive(old) {
		t.Fatalf("the retired template pid %d has exited while its role process runs", old)
	}

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("Signal(SIGTERM) = %v", err)
	}
	awaitExit(t, p, "after SIGTERM")
	if failed, text, known := p.Exit(); failed || text != "exited" || known {
		t.Errorf("Exit() = %v, %q, %v; want false, \"exited\", false (the template's child)", failed, text, known)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	tag := " role=queue pid=" + strconv.Itoa(p.PID()) + "\n"
	starts, dones := strings.Count(logs.String(), `msg="job start"`+tag), strings.Count(logs.String(), `msg="job done"`+tag)
	if starts == 0 || starts != dones {
		t.Errorf("%d jobs started, %d done; want every job started done before the exit", starts, dones)
	}
	poll(t, "the retired template's exit once its role process has exited", func() bool { return !proc.Alive(old) })

	// The new template serves on, and forks role processes too (a scheduler run exits by itself).
	if a := get(t, startReal(t, startCur(tm))); a.release != "r2" || a.ppid != tm.PID() {
		t.Errorf("worker after the role process answered %+v; want release r2, forked by template %d", a, tm.PID())
	}
	once := filepath.Join(appBase, "once.php")
	os.WriteFile(once, []byte("<?php\necho 'role=', askr_worker_role(), ' argv=', implode(',', $argv), \"\\n\";\n"), 0o644)
	s, err := tm.StartRole("scheduler", once, nil)
	if err != nil {
		t.Fatalf("StartRole(scheduler) = %v", err)
	}
	awaitExit(t, s, "(a scheduler run)")
	s.Close()
	if got := roleLine(t, logs, s.PID()); got != "role=scheduler argv="+once {
		t.Errorf("scheduler run said %q; want role=scheduler argv=%s (no argv: the script alone)", got, once)
	}
}

// Signal reaches what a role process started too (a command that schedule:run runs), not only
// the process: Role::run made it a process group leader.
func TestRoleSignalReachesItsChildren(t *testing.T) {
	appBase := t.TempDir()
	script, role := filepath.Join(appBase, "worker.php"), filepath.Join(appBase, "scheduler.php")
	os.WriteFile(script, []byte(fmt.Sprintf(stageScript, "r1")), 0o644)
	os.WriteFile(role, []byte("<?php\necho 'child=', exec('sleep 60 >/dev/null 2>&1 & echo $!'), \"\\n\";\nsleep(60);\n"), 0o644)
	tm, logs := realTemplate(t, appBase, script)
	p, err := tm.StartRole("scheduler", role, nil)
	if err != nil {
		t.Fatalf("StartRole() = %v", err)
	}
	t.Cleanup(func() { p.Signal(syscall.SIGKILL); <-p.Done(); p.Close() })
	re := regexp.MustCompile(`msg="child=(\d+)" role=scheduler pid=` + strconv.Itoa(p.PID()) + `\n`)
	child := 0
	poll(t, "the role process's child=PID line", func() bool {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			child, _ = strconv.Atoi(m[1])
		}
		return child != 0
	})
	st, err := proc.ReadStat(child)
	if err != nil || st.Comm != "sleep" {
		t.Fatalf("child %d: %+v, %v; want a sleep", child, st, err)
	}
	running := func() bool {
		s, err := proc.ReadStat(child)
		return err == nil && s.StartTime == st.StartTime && s.State != 'Z'
	}
	t.Cleanup(func() {
		if running() {
			syscall.Kill(child, syscall.SIGKILL)
		}
	})
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("Signal(SIGTERM) = %v", err)
	}
	awaitExit(t, p, "after SIGTERM")
	poll(t, fmt.Sprintf("the role process's child %d gone after Signal(SIGTERM)", child), func() bool { return !running() })
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("Signal() after exit = %v; want nil", err)
	}
}
