package sidecar

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
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
	Logger *slog.Logger
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

// Owns reports whether pid is a keeper started by Command that has not been waited for yet:
// askrd's reaper must leave it alone, or it would steal its exit status.
func Owns(pid int) bool {
	_, ok := keepers.Load(pid)
	return ok
}

// keepers holds the pids of the keepers started and not yet waited for.
var keepers sync.Map

// starter runs the keepers' starts on one OS thread that never exits: the keeper's parent-death
// signal fires when the thread that started it exits, and must fire only when askrd does.
var starter struct {
	once sync.Once
	reqs chan func()
}

func onStarterThread(f func()) {
	starter.once.Do(func() {
		starter.reqs = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must outlive every keeper
			for f := range starter.reqs {
				f()
			}
		}()
	})
	done := make(chan struct{})
	starter.reqs <- func() { f(); close(done) }
	<-done
}

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
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("sidecar %s: %w", spec.Name, err)
	}
	cmd.Stdout, cmd.Stderr = outW, outW
	// Its own process group: a Ctrl-C on askrd's terminal is for askrd, which stops the sidecars
	// after the HTTP drain. The keeper sets the parent-death signal again itself, and checks it
	// did not come too late.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	onStarterThread(func() {
		if err = cmd.Start(); err == nil {
			keepers.Store(cmd.Process.Pid, struct{}{}) // before the reaper can see it exit
		}
	})
	outW.Close()
	if err != nil {
		outR.Close()
		return nil, fmt.Errorf("sidecar %s: start the keeper: %w", spec.Name, err)
	}
	log := spec.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &command{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	c.logs.Add(1)
	go c.pump(outR, log.With("name", spec.Name, "kind", string(KindCommand), "pid", c.pid))
	go c.wait()
	return c, nil
}

// command is a [[sidecar]] process: its keeper, running sh -c.
type command struct {
	cmd  *exec.Cmd
	pid  int
	logs sync.WaitGroup
	done chan struct{}
	err  error // cmd.Wait's, set before done is closed
}

func (c *command) pump(r io.ReadCloser, log *slog.Logger) {
	defer c.logs.Done()
	defer r.Close()
	phpcgi.Pump(r, log, nil)
}

func (c *command) wait() {
	c.err = c.cmd.Wait()
	keepers.Delete(c.pid)
	// Let the last lines be logged before the exit is reported; but if the keeper was killed,
	// what it left running holds the pipe open, so wait only briefly.
	logged := make(chan struct{})
	go func() { c.logs.Wait(); close(logged) }()
	select {
	case <-logged:
	case <-time.After(100 * time.Millisecond):
	}
	close(c.done)
}

func (c *command) PID() int              { return c.pid }
func (c *command) Done() <-chan struct{} { return c.done }
func (c *command) Close() error          { return nil }

func (c *command) Exit() (failed bool, text string, known bool) {
	return c.err != nil, proc.ExitStatus(c.err), true
}

func (c *command) Signal(sig syscall.Signal) error {
	if sig != syscall.SIGKILL {
		return c.cmd.Process.Signal(sig)
	}
	err := c.cmd.Process.Signal(keeperKill)
	go func() {
		select {
		case <-c.done:
		case <-time.After(keeperKillWait):
			c.cmd.Process.Kill() // a keeper that does not answer: what it kept is askrd's reaper's
		}
	}()
	return err
}
