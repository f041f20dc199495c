package proc

import (
	"errors"
	"syscall"
)

// ExitStatus words how a process ended, from the error its Wait returned (nil: it exited 0):
// "exit status 0", "exit status 255", "signal: killed".
func ExitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Signaled reports whether the error a process's Wait returned says a signal ended it.
func Signaled(err error) bool {
	var ps interface{ Sys() any } // *exec.ExitError's *os.ProcessState
	if !errors.As(err, &ps) {
		return false
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}
