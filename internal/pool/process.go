package pool

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/askr-php/askr/internal/channel"
)

// Process is a started PHP process the pool supervises: a worker-mode worker (phpcgi.Process, or a
// CoW worker of package template) or per-request mode's php-cgi (phpcgi.FastCGIProcess). The pool
// greets, pings, stops, kills and watches it; what a request says to it is the business of the
// function given to Call, which knows the process's protocol (askr's channel, or FastCGI).
type Process interface {
	PID() int
	// Greet waits up to timeout (0: no limit) until the new process can serve and returns its
	// hello (a process without a channel returns one with just its pid). An error that wraps
	// os.ErrDeadlineExceeded says the time ran out; its text says what did not happen.
	Greet(timeout time.Duration) (channel.Hello, error)
	// Ping checks that the idle process answers within timeout. An error wrapping channel.ErrBye:
	// the process is leaving on its own (it is retired quietly, not killed).
	Ping(timeout time.Duration) error
	// Stop asks the idle process to exit.
	Stop() error
	// Kill ends the process at once.
	Kill() error
	// Done is closed once the process has exited.
	Done() <-chan struct{}
	// Err is the exit error, valid after Done.
	Err() error
	// Left reports, after the process exited while idle, whether it said it was leaving (Bye)
	// before it did: it ended on its own between requests.
	Left() bool
	// Tail returns the last lines the process wrote, for boot failure messages.
	Tail() string
	// Close releases what askrd holds of the process; called after Done, once no request has it.
	Close() error
}

// Outcome is what became of one request given to a process by Call's function: what the pool
// needs to keep its books.
type Outcome struct {
	// Err is nil for a request answered in full. Otherwise it says why not: it wraps
	// ErrBadResponse for an answer the application got wrong, or is the client's error if the
	// client went away.
	Err error
	// Broken reports that the process cannot serve again: it is killed and replaced. Call returns
	// Err wrapped in ErrWorkerDied, unless ClientGone.
	Broken bool
	// Unsent reports that the request never reached the process (it was gone already): the
	// process is killed (Unsent implies Broken, unless Left) and the request is tried on another,
	// at most three tries in all.
	Unsent bool
	// ClientGone reports, with Broken, that the process is killed only because its client went
	// away: Err, the client's, is returned as it is.
	ClientGone bool
	// Exits reports that the process ends by itself after this answer (exit() in a worker): it
	// is retired, neither stopped nor killed.
	Exits bool
	// Left reports that the process said it was leaving (Bye) instead of taking the request: it
	// never read it and ends by itself between requests. The request goes to another process (see
	// Call), unless the process has answered no request yet: then it counts as a death.
	Left bool
	// Memory is PHP's memory_get_usage() after the request, if the process reports it; Peak is
	// its memory_get_peak_usage().
	Memory, Peak uint64
	// Status is the HTTP status the process answered with (0: none known), for a reload's canary
	// verdict (5xx counts against it).
	Status int
}

// Starter starts worker processes.
type Starter interface {
	Start() (Process, error)
}

// Stager is a Starter whose workers come from a template that can be replaced while the old one
// still serves (CoW mode): a reload or a refork stages a new template, the pool forks the canary
// from it and, once the canary is judged, commits it (the old generation is then replaced one
// worker at a time) or abandons it (the old generation goes on serving). At most one template is
// staged at a time; the pool never calls Stage again before Commit or Abandon.
type Stager interface {
	Starter
	// Stage boots a new template from the files as they are now (from == nil: a reload), or makes
	// the process from, a worker of the current generation that the pool has taken out of its
	// books, the new template (a refork; the Stager owns from from now on, also if Stage fails). It
	// returns once the template is ready to fork, or why it is not (PHP's error).
	Stage(from Process) error
	// StartStaged forks a worker from the staged template: the canary. Its Generation is the
	// staged one (current + 1).
	StartStaged() (Process, error)
	// Commit makes the staged template the current one: Start forks from it and Generation
	// counts it. An older template exits once the last worker forked from it has exited.
	Commit()
	// Abandon ends the staged template; the workers forked from it are the pool's to stop.
	Abandon()
}

// generational is implemented by a Starter whose workers come from a template that can be replaced
// (CoW mode), and by the workers it starts: workers of an older generation are retired as the
// new generation's come up.
type generational interface {
	Generation() int64
}

// worker is the pool's record of one process.
type worker struct {
	proc   Process
	pid    int
	gen    int64
	served int           // requests answered; only the goroutine that has the worker touches it
	memory atomic.Uint64 // PHP's memory_get_usage() after the last request
	peak   atomic.Uint64 // PHP's memory_get_peak_usage() after the last request
	last   atomic.Int64  // how long the last answered request took in the process (nanoseconds)
	// started is when the pool started the process; cur the loan it is lent for now (nil if none).
	started time.Time
	cur     atomic.Pointer[loan]
	// marked is a retirement asked for while a request may have the worker (Recycle, a memory
	// read off the request's path), as ExitReason+1; 0: none (see owner.mark).
	marked atomic.Int32
	reason atomic.Int32 // why it ends, ExitReason+1 (see setReason); 0 while undecided
	// mem reads its memory for max_rss and max_private_memory (nil without them); only the
	// goroutine that has the worker touches memCheck; reading says a full read is under way.
	mem      memProbe
	memCheck memCheck
	reading  atomic.Bool
	busy     atomic.Bool
	loans    atomic.Int64 // requests it was lent for (see lend)
	// servedTotal mirrors served for readers other than the request goroutine.
	servedTotal atomic.Int64
	dead        atomic.Bool // the process exited
	ending      atomic.Bool // askrd stopped or killed it on purpose: its exit is no news
	left        atomic.Bool // it said Bye: it ends on its own between requests
	// byeAndExit counts two events, in either order: a request or a ping noted its Bye (leaving),
	// and run saw its exit. The second logs the exit (logLeft), whose status is then known.
	byeAndExit atomic.Int32
	// claim says who may talk to the process: while idle (claimIdle) nobody; a request or a ping
	// that takes it from the idle channel claims it (claimLent) until it goes back; run claims an
	// idle worker that exited (claimReaped) to read its last words (Left). Both claim by CAS, so a
	// worker that exits as a request takes it is read by exactly one of them.
	claim atomic.Int32
	quit  bool // retired: must not serve again
	// A worker that exits while a request holds it (exit(), a crash) may have written its whole
	// answer first: the process is closed once both the exit is seen and the loan is over, never
	// under the request still reading it.
	closeMu sync.Mutex
	held    int // loans not yet over (a loan ends after the worker went back to the idle channel)
	exited  bool
	closed  sync.Once
}

const (
	claimIdle int32 = iota
	claimLent
	claimReaped
)

// take claims a worker received from the idle channel; false if run has claimed it (it exited).
func (w *worker) take() bool { return w.claim.CompareAndSwap(claimIdle, claimLent) }

// hold counts a loan of the worker (on) or its end (off), and closes the process if it has exited
// meanwhile and no loan is left.
func (w *worker) hold(on bool) {
	w.closeMu.Lock()
	if on {
		w.held++
	} else {
		w.held--
	}
	closeNow := w.held == 0 && w.exited
	w.closeMu.Unlock()
	if closeNow {
		w.close()
	}
}

// close releases what askrd holds of the exited process, once.
func (w *worker) close() {
	w.closed.Do(func() {
		w.proc.Close()
		if w.mem != nil {
			w.mem.Close()
		}
	})
}

// exit notes that the process has exited and closes it unless a request holds it. A request that
// does reads what the process wrote before it exited, then end of file (its Process sees to that).
func (w *worker) exit() {
	w.closeMu.Lock()
	w.exited = true
	closeNow := w.held == 0
	w.closeMu.Unlock()
	if closeNow {
		w.close()
	}
}

// answered notes a request the worker answered, which the process had for took.
func (w *worker) answered(o *Outcome, took time.Duration) {
	w.served++
	w.servedTotal.Store(int64(w.served))
	w.memory.Store(o.Memory)
	w.peak.Store(o.Peak)
	w.last.Store(int64(took))
}
