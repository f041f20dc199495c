package sidecar

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/askr-php/askr/internal/proc"
	"github.com/askr-php/askr/internal/reaper"
)

// KeeperCommand is the hidden askrd subcommand that runs Keeper:
// `askrd sidecar-keeper --grace 10s --parent PID -- /bin/sh -c COMMAND`.
const KeeperCommand = "sidecar-keeper"

// Keeper runs a [[sidecar]] command for askrd and makes sure nothing of it outlives askrd, not
// even after kill -9: sh -c does not exec its last command (Debian's dash), and a command may
// start processes of its own, so a parent-death signal on sh alone would leave them running.
// args are what follows KeeperCommand. The keeper
//   - is a child subreaper, so what the command starts and leaves behind is re-parented to it,
//     and gets SIGTERM when askrd dies (its parent-death signal, checked against --parent);
//   - runs the command in a process group of its own, with the keeper's stdin, stdout and stderr;
//   - passes SIGTERM, SIGINT and SIGHUP on to that group; on SIGUSR2 (askrd's SIGKILL) it
//     SIGKILLs the group;
//   - when askrd has died: SIGTERM to the group, SIGKILL after --grace;
//   - once sh has exited, SIGKILLs what is left of the group and every process re-parented to
//     it, reaps them, and ends as sh did: with its exit status, or killed by the same signal; but
//     if sh exited after a stop (SIGTERM, SIGINT) had been passed on, only once all of them have
//     ended or the stop's grace is over (askrd's SIGUSR2, or --grace when askrd has died): sh
//     has no handler and dies at once, the program it runs must have its grace;
//   - starts sh with SIGKILL as its parent-death signal: if the keeper itself is killed, sh
//     dies too (what sh started lives on, re-parented to askrd, whose reaper sweeps it at exit).
func Keeper(args []string) int {
	// The parent-death signal belongs to the thread that sets it: keep it on this one.
	runtime.LockOSThread()
	fs := flag.NewFlagSet(KeeperCommand, flag.ContinueOnError)
	grace := fs.Duration("grace", 10*time.Second, "after SIGTERM to the command, when askrd has died: SIGKILL")
	parent := fs.Int("parent", 0, "askrd's pid: the keeper's parent (0: not checked)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	argv := fs.Args()
	if len(argv) == 0 {
		fmt.Fprintf(os.Stderr, "usage: askrd %s [--grace D] [--parent PID] -- COMMAND [ARG…]\n", KeeperCommand)
		return 2
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGTERM), 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "%s: PR_SET_PDEATHSIG: %v\n", KeeperCommand, err)
	}
	if err := reaper.Become(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: PR_SET_CHILD_SUBREAPER: %v\n", KeeperCommand, err)
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, keeperKill)
	orphaned := func() bool { return *parent != 0 && os.Getppid() != *parent }

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Pdeathsig is the starting thread's: this one, locked above, lives as long as the keeper.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", KeeperCommand, err)
		return 127
	}
	return supervise(cmd, sigs, *grace, orphaned)
}

// supervise is the keeper's life once sh runs (cmd): it passes signals on to sh's process group,
// kills it after grace once askrd has died (orphaned), and when sh has exited kills what is left
// and returns sh's exit status (or raises the signal that ended it). Once a stop (SIGTERM, SIGINT)
// has been passed on, sh's exit ends nothing: sh dies of it at once, but the program it runs gets
// its grace; the keeper waits until nothing of the command runs, or askrd's SIGKILL (keeperKill),
// or the end of its own grace when askrd has died.
func supervise(cmd *exec.Cmd, sigs <-chan os.Signal, grace time.Duration, orphaned func() bool) int {
	pg := cmd.Process.Pid
	// Learn that sh has exited without reaping it: while it is a zombie, its pid (the group's id)
	// cannot be taken by another process, so signalling the group stays safe until it is reaped.
	exited := make(chan struct{})
	go func() {
		var info unix.Siginfo
		for unix.Waitid(unix.P_PID, pg, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
		}
		close(exited)
	}()
	// Reap what the command leaves behind while it runs; sh itself is cmd.Wait's.
	ctx, cancel := context.WithCancel(context.Background())
	reaped := make(chan struct{})
	go func() {
		defer close(reaped)
		reaper.Run(ctx, func(pid int) bool { return pid == pg }, time.Second, slog.New(slog.DiscardHandler))
	}()
	finish := func() int {
		unix.Kill(-pg, unix.SIGKILL)
		err := cmd.Wait()
		cancel()
		<-reaped
		killAll()
		return exitLike(err)
	}

	var kill <-chan time.Time // askrd has died: SIGKILL once the grace is over
	stopping, killing := false, false
	if orphaned() {
		unix.Kill(-pg, unix.SIGTERM)
		kill, stopping = time.After(grace), true
	}
	var poll <-chan time.Time // sh has exited during a stop: look whether the rest has ended
	termed := map[int]bool{}
	for {
		select {
		case <-exited:
			if !stopping || killing {
				return finish()
			}
			exited = nil
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			poll = t.C
		case <-poll:
			if !runsOn(pg, termed) {
				return finish()
			}
		case sig := <-sigs:
			if sig == keeperKill {
				if exited == nil {
					return finish()
				}
				unix.Kill(-pg, unix.SIGKILL) // sh dies with it; then finish gets the rest
				killing = true
				continue
			}
			unix.Kill(-pg, sig.(syscall.Signal))
			stopping = stopping || sig == unix.SIGTERM || sig == unix.SIGINT
			if kill == nil && sig == unix.SIGTERM && orphaned() {
				kill = time.After(grace)
			}
		case <-kill:
			if exited == nil {
				return finish()
			}
			unix.Kill(-pg, unix.SIGKILL)
			killing = true
		}
	}
}

// runsOn reports whether anything the command started still runs, once sh (pg, a zombie kept
// unreaped) has exited during a stop: all of it is below the keeper, its subreaper. What runs
// outside sh's process group (a setsid, a group of its own) did not get the stop: each such child
// of the keeper gets SIGTERM once (termed).
func runsOn(pg int, termed map[int]bool) bool {
	self := os.Getpid()
	for _, pid := range proc.Children(self) {
		if pid == pg || termed[pid] || !proc.Alive(pid) {
			continue
		}
		termed[pid] = true
		if g, err := unix.Getpgid(pid); err == nil && g != pg {
			unix.Kill(pid, unix.SIGTERM)
		}
	}
	return len(proc.Descendants(self)) > 0
}

// killAll SIGKILLs every child of the keeper (what the command left, re-parented to it, and what
// those leave in turn) and reaps them, until the keeper has none left.
func killAll() {
	for {
		for _, pid := range proc.Children(os.Getpid()) {
			unix.Kill(pid, unix.SIGKILL)
		}
		var ws unix.WaitStatus
		_, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.ECHILD) {
			return
		}
	}
}

// exitLike returns the exit status sh ended with (cmd.Wait's err); if a signal ended it, the
// keeper first kills itself with the same signal, so that askrd sees "signal: …".
func exitLike(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", KeeperCommand, err)
		return 1
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return ee.ExitCode()
	}
	sig := ws.Signal()
	raise(sig)
	return 128 + int(sig) // the signal did not end the keeper: as sh reports a command's death
}

// raise ends the keeper with sig as if it had been sent to the keeper with its default action:
// Go's runtime would ignore some signals (SIGPIPE) and crash with a stack dump on others
// (SIGABRT, SIGQUIT), so the handler is reset to SIG_DFL under it. No core file is written.
func raise(sig syscall.Signal) {
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	// struct sigaction all zero: SIG_DFL, no flags, nothing masked (the same on every architecture).
	var act [4]uint64
	syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	unix.Tgkill(unix.Getpid(), unix.Gettid(), sig) // this thread: it does not block sig
	// A signal whose default is to stop or to do nothing leaves the keeper here.
}
