package pool

import (
	"errors"
	"time"

	"github.com/askr-php/askr/internal/proc"
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
	ExitRecycle                       // recycled through the admin API (Recycle)
	ExitStop                          // stopped because the pool stopped (askrd shuts down)
	ExitAbort                         // killed because its client left while it streamed
	ExitScaleDown                     // retired because the pool scaled down (idle, above MinWorkers)
	numExitReasons
)

var exitReasonNames = [numExitReasons]string{"max_requests", "memory", "timeout", "crash", "exit", "reload", "recycle", "stop", "abort", "scale_down"}

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

// ErrStatusUnknown is what Process.Err wraps when the exit status cannot be known (a CoW worker
// is not askrd's child): the pool then takes an exit without a Bye for a crash.
var ErrStatusUnknown = errors.New("exit status unknown")

// ErrNoSuchWorker is Recycle's error for a pid that is not one of the pool's processes.
var ErrNoSuchWorker = errors.New("no worker has this pid")

// Recycle retires the process pid after its current request (at once if it is idle); a new one
// replaces it. Its exit counts as ExitRecycle. A process already being retired is left to it.
func (p *Pool) Recycle(pid int) error {
	reply := make(chan error, 1)
	select {
	case p.events <- event{kind: evRecycle, pid: pid, reply: reply}:
	case <-p.done:
		return ErrClosed
	}
	select {
	case err := <-reply:
		return err
	case <-p.done:
		return ErrClosed
	}
}

// recycle is Recycle on the owner's goroutine.
func (o *owner) recycle(pid int) error {
	for w := range o.all {
		if w.pid == pid {
			o.mark(w, ExitRecycle)
			return nil
		}
	}
	return ErrNoSuchWorker
}

// mark retires a worker for reason after its current request, or at once if it is idle; one
// retired already, or gone, is left alone. The mark goes first: a request that gives the worker
// back after it sees it (release); one that gave it back before, to the idle channel, has it found
// there. Should a give-back fall between the two, the next take retires it (takeIdle).
func (o *owner) mark(w *worker, reason ExitReason) {
	if !o.all[w] || w.quit {
		return
	}
	w.marked.CompareAndSwap(0, int32(reason)+1)
	if o.p.sweepIdle(func(x *worker) bool { return x == w }) != nil {
		w.setReason(ExitReason(w.marked.Load() - 1))
		o.replace(w)
	}
}

// retireLater has the owner retire w for reason after its current request (see mark).
func (p *Pool) retireLater(w *worker, reason ExitReason) {
	select {
	case p.events <- event{kind: evMark, w: w, reason: reason}:
	case <-p.done:
	}
}

// setReason records why the worker ends, unless a reason was recorded first: what decided its end
// (a timeout's kill, a retirement) wins over what followed from it.
func (w *worker) setReason(r ExitReason) { w.reason.CompareAndSwap(0, int32(r)+1) }

// exitReason is why the worker ended: the recorded reason, else the pool's stop, else its exit
// status (a signal is a crash; an exit status, or none known, as for a CoW worker, is an exit).
func (w *worker) exitReason(stopping bool) ExitReason {
	switch r := w.reason.Load(); {
	case r > 0:
		return ExitReason(r - 1)
	case stopping:
		return ExitStop
	case proc.Signaled(w.proc.Err()):
		return ExitCrash
	case errors.Is(w.proc.Err(), ErrStatusUnknown) && !w.left.Load():
		return ExitCrash // a CoW worker that ended without its Bye: killed (the OOM killer) or crashed
	}
	return ExitExit
}

// exitedOne counts the exit of a worker that had booted and tells Options.Exited.
func (p *Pool) exitedOne(w *worker, r ExitReason) {
	p.exits[r].Add(1)
	if p.opt.Exited != nil {
		p.opt.Exited(w.pid, r)
	}
}
