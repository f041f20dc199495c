package phpcgi

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/askr-php/askr/internal/proc"
)

// CLIProcess is a role process ([queue] worker, [scheduler] run) outside CoW mode: php-cli running
// the role's script with the askr runtime prepended. It is a sidecar.Proc.
type CLIProcess struct {
	p *Process
}

// StartCLI starts php (php-cli, [worker] php_cli) on script in role ("queue" or "scheduler"): the
// runtime prepended (it only defines the askr_* functions there; askr_worker_role() reads
// ASKR_ROLE), the extension and ini settings of the workers (but no time limit, as in php-cli),
// their environment (filtered) with ASKR_ROLE and ASKR_APP_BASE, in the app base, stdin
// /dev/null, stdout and stderr to the log tagged with its pid, in a process group of its own (so
// that Signal reaches what it starts: the commands Laravel's schedule:run runs). Like the workers
// it is started from the Launcher's thread with SIGKILL as its parent-death signal, and Owns
// counts it until it has been waited for.
func (l *Launcher) StartCLI(php, script, role string) (*CLIProcess, error) {
	c := l.cfg
	// The user's ini lines apply, but for the time limit: a role has none, as in php-cli (a
	// [worker] ini max_execution_time is for requests; queue:work has --timeout per job).
	args := append(c.runtimeArgs(append(append([]string{"log_errors=1", "html_errors=0"}, c.INI...), "max_execution_time=0")), script)
	cmd := exec.Command(php, args...)
	cmd.Dir = c.AppBase
	cmd.Env = append(filterEnv(c.Env), "ASKR_ROLE="+role, "ASKR_APP_BASE="+c.AppBase)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	log := c.RoleLogger
	if log == nil {
		log = c.Logger
	}
	p, err := l.spawn(cmd, nil, log.With("role", role))
	if err != nil {
		return nil, fmt.Errorf("start %s %s: %w", role, script, err)
	}
	return &CLIProcess{p: p}, nil
}

// PID returns the process id.
func (c *CLIProcess) PID() int { return c.p.pid }

// Done is closed once the process has exited and its output has been logged.
func (c *CLIProcess) Done() <-chan struct{} { return c.p.done }

// Exit says, after Done, how the process ended ("exit status 1", "signal: terminated", …).
func (c *CLIProcess) Exit() (failed bool, text string, known bool) {
	return c.p.err != nil, proc.ExitStatus(c.p.err), true
}

// Signal sends sig to the process's group: the process and what it started (and did not move to
// a group of its own). Never once the process has been waited for: its pid, the group's id, may
// then name another group.
func (c *CLIProcess) Signal(sig syscall.Signal) error {
	// Through the process's pidfd: ErrProcessDone once Wait has reaped it.
	err := c.p.cmd.Process.Signal(syscall.Signal(0))
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := unix.Kill(-c.p.pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	return nil
}

// Close releases nothing: the process has no channel.
func (c *CLIProcess) Close() error { return nil }
