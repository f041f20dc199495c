package pool

import (
	"errors"
	"time"
)

// Visit is one request as the pool sees it, for the access log, the metrics, the slow log and the
// status: the caller sets Method and URI (the status shows them as the process's current request)
// and may set Start; Call fills in the rest. A Visit is read only after Call has returned, except
// by the pool itself.
type Visit struct {
	Method, URI string
	Start       time.Time     // when the request arrived; Call sets it if zero
	QueueWait   time.Duration // waiting for an idle process, all tries together
	Upstream    time.Duration // the process had the request (the last try)
	PID         int           // the process that had it (the last try); 0 if none did
	Slow        bool          // it ran past Options.SlowAfter
}

// ExitReason says why a process of the pool ended.
type ExitReason int

// The reasons a process ends, as the metrics label them (ExitReason.String).
const (
	ExitMaxRequests ExitReason = iota // served max_requests requests
	ExitMemory                        // over max_rss or max_private_memory
	ExitTimeout                       // killed by request_timeout
	ExitCrash                         // died by a signal, or broke its protocol
	ExitExit                          // ended on its own: exit() in a request, a Bye, an exit status
	ExitReload                        // retired by a reload (an older generation)
	ExitRecycle                       // recycled through the admin API
	numExitReasons
)

var exitReasonNames = [numExitReasons]string{"max_requests", "memory", "timeout", "crash", "exit", "reload", "recycle"}

func (r ExitReason) String() string {
	if r < 0 || r >= numExitReasons {
		return "unknown"
	}
	return exitReasonNames[r]
}

// ExitReasons lists every ExitReason, in order.
func ExitReasons() []ExitReason {
	rs := make([]ExitReason, numExitReasons)
	for i := range rs {
		rs[i] = ExitReason(i)
	}
	return rs
}

// ErrNoSuchWorker is Recycle's error for a pid that is not one of the pool's processes.
var ErrNoSuchWorker = errors.New("no worker has this pid")

// Recycle retires the process pid after its current request (at once if it is idle); a new one
// replaces it.
func (p *Pool) Recycle(pid int) error {
	return ErrNoSuchWorker // TODO(issue 15, pool): implement
}
