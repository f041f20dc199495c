// Package reaper makes askrd a child subreaper and reaps the orphans that PHP leaves behind (a
// process a worker started and did not wait for is re-parented to askrd when the worker exits).
// It reaps only processes it is told are not askrd's own: the workers are waited for by whoever
// started them, and reaping them here would steal their exit status.
package reaper

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
	self := strconv.Itoa(os.Getpid())
	tasks, _ := os.ReadDir("/proc/" + self + "/task")
	var out []int
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/" + self + "/task/" + task.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err == nil && state(pid) == 'Z' {
				out = append(out, pid)
			}
		}
	}
	return out
}

func state(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}
