// Package reaper makes askrd a child subreaper and reaps the orphans that PHP leaves behind (a
// process a worker started and did not wait for is re-parented to askrd when the worker exits),
// and at exit ends what is left of them (Sweep). It reaps only processes it is told are not
// askrd's own: the workers are waited for by whoever started them, and reaping them here would
// steal their exit status.
package reaper

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/askr-php/askr/internal/proc"
)

// Become marks this process as a child subreaper (PR_SET_CHILD_SUBREAPER).
func Become() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// Run reaps zombie children whose pid owned(pid) does not claim, on every SIGCHLD and at least
// every interval, until ctx is done.
func Run(ctx context.Context, owned func(pid int) bool, interval time.Duration, log *slog.Logger) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGCHLD)
	defer signal.Stop(sig)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
		case <-t.C:
		}
		for _, pid := range Zombies() {
			if owned(pid) {
				continue
			}
			var ws unix.WaitStatus
			if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && got == pid {
				log.Debug("reaped orphan", "pid", pid, "status", ws.ExitStatus())
			}
		}
	}
}

// Zombies lists this process's children that have exited and not been waited for.
func Zombies() []int {
	var out []int
	for _, pid := range proc.Children(os.Getpid()) {
		if proc.State(pid) == 'Z' {
			out = append(out, pid)
		}
	}
	return out
}

// Sweep ends what is left of this process's descendants when askrd exits, after its workers have
// stopped: processes PHP started and left running (re-parented to askrd, its subreaper, whatever
// they did to detach) and anything they started. Each gets SIGTERM, what still runs after grace
// gets SIGKILL, and the children owned(pid) does not claim are reaped. It returns the pids it
// signalled; it gives up after a second grace.
func Sweep(owned func(pid int) bool, grace time.Duration) []int {
	var swept []int
	seen, signalled := map[int]bool{}, map[int]bool{}
	sig := unix.SIGTERM
	deadline := time.Now().Add(grace)
	for {
		reap(owned)
		live := proc.Descendants(os.Getpid())
		if len(live) == 0 {
			return swept
		}
		if time.Now().After(deadline) {
			if sig == unix.SIGKILL {
				return swept
			}
			sig, deadline = unix.SIGKILL, time.Now().Add(grace)
			clear(signalled)
		}
		for _, pid := range live {
			if signalled[pid] {
				continue
			}
			if unix.Kill(pid, sig) == nil {
				signalled[pid] = true
				if !seen[pid] {
					seen[pid] = true
					swept = append(swept, pid)
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reap waits for this process's exited children that owned does not claim.
func reap(owned func(pid int) bool) {
	for _, pid := range Zombies() {
		if owned(pid) {
			continue
		}
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	}
}
