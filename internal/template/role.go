package template

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/sidecar"
)

// StartRole starts a role process ([queue] worker, [scheduler] run) warm: a worker forked from the
// current template as Start forks one for the pool (it has said hello), told by a Run frame to run
// script in role with argv as its $argv (argv[0] names the script, as php-cli's; none: [script]).
// It runs the script as php-cli would and exits; its exit status is the template's to see. It
// counts among its template's workers, so a template retired by a reload is stopped only once its
// role processes have exited too.
func (t *Template) StartRole(role, script string, argv []string) (sidecar.Proc, error) {
	p, err := t.Start()
	if err != nil {
		return nil, err
	}
	w := p.(*worker)
	if w.tag != nil {
		w.tag.set(t.opt.RoleLog.With("role", role, "pid", w.pid).Handler())
	}
	w.conn.SetWriteDeadline(time.Now().Add(t.opt.ForkTimeout)) // an idle worker reads it at once
	_, err = w.conn.Write(channel.AppendRun(nil, role, script, argv))
	w.conn.SetWriteDeadline(time.Time{})
	if err != nil {
		w.discard()
		return nil, fmt.Errorf("start %s: send Run to worker pid %d: %w", role, w.pid, err)
	}
	return &roleProc{w}, nil
}

// roleProc is a role process forked from a template: a sidecar.Proc.
type roleProc struct{ w *worker }

func (r *roleProc) PID() int              { return r.w.pid }
func (r *roleProc) Done() <-chan struct{} { return r.w.done }

// Exit is unknown to askrd: the process is the template's child.
func (r *roleProc) Exit() (failed bool, text string, known bool) { return false, "exited", false }

// Signal sends sig to the role process's group (Role::run makes it a group leader): the process
// and what it started, such as the commands Laravel's schedule:run runs. Never once it has exited:
// its pid, the group's id, may then name another group. A process that is no group leader (no
// posix extension) gets sig alone, through the worker's pidfd, as SIGKILL always does too.
func (r *roleProc) Signal(sig syscall.Signal) error {
	select {
	case <-r.w.done:
		return nil
	default:
	}
	err := unix.Kill(-r.w.pid, sig)
	if err == nil && sig != syscall.SIGKILL {
		return nil
	}
	if e := r.w.h.Signal(sig); e != nil || errors.Is(err, unix.ESRCH) {
		return e
	}
	return err
}

// Close releases the worker's channel, pidfd and log FIFO, once the lines it wrote last have been
// read from the FIFO (within a second): they would be lost with it.
func (r *roleProc) Close() error {
	if r.w.logs != nil {
		for deadline := time.Now().Add(time.Second); unread(r.w.logs) && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}
	return r.w.Close()
}

// unread reports whether the FIFO f holds bytes not read yet (not through f.Fd(), which would make
// the reads the log pump blocks in uninterruptible).
func unread(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) })
	return n > 0
}
