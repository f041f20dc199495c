package sidecar

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/askr-php/askr/internal/phpcgi"
	"github.com/askr-php/askr/internal/proc"
)

// CommandSpec is one [[sidecar]] command, as Command starts it.
type CommandSpec struct {
	Name    string   // tags the log lines
	Command string   // run with sh -c
	Dir     string   // the working directory (app_base)
	Env     []string // the environment, already filtered (phpcgi.SidecarEnv)
	// Grace is the keeper's own grace when askrd dies: SIGTERM to the command, SIGKILL after it
	// (0: 10s). When askrd stops it, the Supervisor applies the Program's Grace.
	Grace time.Duration
	// Keeper is the executable to run as the keeper ("": this one, /proc/self/exe); it must
	// dispatch its KeeperCommand argument to Keeper.
	Keeper string
	// Launcher starts the keeper from its thread (the keeper's parent-death signal) and counts it
	// in its Owns until it has been waited for, which askrd's reaper asks (nil: one of this
	// package's own).
	Launcher *phpcgi.Launcher
	Logger   *slog.Logger
}

// Command returns the Launch of a [[sidecar]]: each process is `sh -c COMMAND` in Dir, run under
// a keeper (Keeper): this executable again, as KeeperCommand, a child of askrd in a process group
// of its own, with the command in another group below it. The command's stdout and stderr go to
// the log a line at a time, tagged with the name and the keeper's pid, which is the Proc's PID;
// its Signal goes to the keeper, which passes it on to the command's process group, and SIGKILL
// makes the keeper kill the group and everything it started (killing the keeper itself would
// leave them running). Exit is the command's: its exit status, or the signal that ended sh.
func Command(spec CommandSpec) func(i int) (Proc, error) {
	return func(int) (Proc, error) { return startKeeper(spec) }
}

// ownLauncher starts the keepers of a CommandSpec without a Launcher.
var ownLauncher = sync.OnceValue(func() *phpcgi.Launcher { return phpcgi.NewLauncher(phpcgi.Config{}) })

// keeperKill is the signal that tells a keeper to SIGKILL its command's process group and every
// descendant at once (Signal(SIGKILL)).
const keeperKill = syscall.SIGUSR2

// keeperKillWait is how long a keeper has to exit after keeperKill before it is killed itself.
const keeperKillWait = 5 * time.Second

func startKeeper(spec CommandSpec) (Proc, error) {
	exe := spec.Keeper
	if exe == "" {
		// The very binary running, even once a package upgrade has replaced the file (os.Executable
		// would name the new one: a keeper of another version).
		exe = "/proc/self/exe"
	}
	grace := spec.Grace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	cmd := exec.Command(exe, KeeperCommand, "--grace", grace.String(), "--parent", strconv.Itoa(os.Getpid()),
		"--", "/bin/sh", "-c", spec.Command)
	cmd.Dir, cmd.Env = spec.Dir, spec.Env
	// Its own process group: a Ctrl-C on askrd's terminal is for askrd, which stops the sidecars
	// after the HTTP drain. The keeper sets the parent-death signal again itself, and checks it
	// did not come too late.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	l, log := spec.Launcher, spec.Logger
	if l == nil {
		l = ownLauncher()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := l.Spawn(cmd, log.With("name", spec.Name, "kind", string(KindCommand)))
	if err != nil {
		return nil, fmt.Errorf("sidecar %s: the keeper: %w", spec.Name, err)
	}
	return &command{p}, nil
}

// command is a [[sidecar]] process: its keeper, running sh -c.
type command struct{ p *phpcgi.Process }

func (c *command) PID() int              { return c.p.PID() }
func (c *command) Done() <-chan struct{} { return c.p.Done() }
func (c *command) Close() error          { return nil }

func (c *command) Exit() (failed bool, text string, known bool) {
	return c.p.Err() != nil, proc.ExitStatus(c.p.Err()), true
}

func (c *command) Signal(sig syscall.Signal) error {
	if sig != syscall.SIGKILL {
		return c.p.Signal(sig)
	}
	err := c.p.Signal(keeperKill)
	go func() {
		select {
		case <-c.p.Done():
		case <-time.After(keeperKillWait):
			c.p.Kill() // a keeper that does not answer: what it kept is askrd's reaper's
		}
	}()
	return err
}
