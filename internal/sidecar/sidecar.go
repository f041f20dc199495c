// Package sidecar supervises the processes askrd runs beside its HTTP workers: [[sidecar]]
// commands (sh -c), [queue] workers and [scheduler] runs. A Program says what to run and how many;
// its Launch starts one process (a command through the keeper, a php-cli process, or a fork of the
// CoW template told to run a script), and the Supervisor keeps each running: restarted when it
// exits (backing off while it keeps failing), restarted on a reload, stopped (SIGTERM, SIGKILL
// after its grace) on drain. A scheduler Program is not kept running: it is started at every
// interval boundary, unless its previous run still goes. It knows nothing of HTTP or the pool.
package sidecar

import (
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// Kind is what a Program runs.
type Kind string

const (
	KindCommand   Kind = "sidecar"   // a [[sidecar]] command
	KindQueue     Kind = "queue"     // a [queue] worker
	KindScheduler Kind = "scheduler" // a [scheduler] run
)

// Proc is one started process of a Program.
type Proc interface {
	PID() int
	// Done is closed once the process has exited.
	Done() <-chan struct{}
	// Exit says, after Done, how the process ended: failed is true for a non-zero exit status or a
	// signal, text is "exit status 1", "signal: killed", …; known is false when askrd cannot see it
	// (a CoW fork is the template's child, not askrd's).
	Exit() (failed bool, text string, known bool)
	// Signal sends sig to the process (for a command: to its process group, through the keeper).
	Signal(sig syscall.Signal) error
	// Close releases what askrd holds of the process, after Done.
	Close() error
}

// Program is one [[sidecar]], the [queue] or the [scheduler].
type Program struct {
	Name  string // "node", "queue", "scheduler": tags the log and the status
	Kind  Kind
	Count int // processes kept running (a scheduler: 1)
	// OnFailure restarts a process only after it failed (restart = "on-failure"); else always.
	OnFailure bool
	Grace     time.Duration // after SIGTERM, before SIGKILL
	// Interval is a scheduler's: a run starts at every multiple of it since the Unix epoch, unless
	// the previous run is still going (then that boundary is skipped and logged).
	Interval time.Duration
	// Launch starts the i-th process (0 ≤ i < Count) on the code as it is now.
	Launch func(i int) (Proc, error)
}

// Status is one process slot of a Program, for /status, askrd status and the metrics.
type Status struct {
	Name     string    `json:"name"`
	Kind     Kind      `json:"kind"`
	Index    int       `json:"index"`
	PID      int       `json:"pid"`   // 0: none running
	State    string    `json:"state"` // starting, running, backoff, stopping, stopped, waiting (a scheduler between runs)
	Started  time.Time `json:"started,omitzero"`
	Restarts int       `json:"restarts"` // starts after the first (a scheduler: runs)
	LastExit string    `json:"last_exit,omitempty"`
	ExitedAt time.Time `json:"exited_at,omitzero"`
	Skipped  int       `json:"skipped,omitempty"` // a scheduler's boundaries skipped because a run was still going
}

// Supervisor keeps the processes of its Programs: one goroutine per slot (keep.go, schedule.go),
// each the only one to start, watch and stop its slot's process. Status is read under mu.
type Supervisor struct {
	progs []Program
	log   *slog.Logger

	// stableAfter is how long a process must run for its back-off to start again from the
	// shortest (a field so that tests can shorten it).
	stableAfter time.Duration
	slots       []*slot
	stop        chan struct{} // closed by Stop: every slot ends its process and its goroutine
	wg          sync.WaitGroup

	mu      sync.Mutex // guards started, stopped and every slot's st
	started bool
	stopped bool
}

// New returns a Supervisor for progs; nothing runs before Start.
func New(progs []Program, log *slog.Logger) *Supervisor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{progs: progs, log: log, stableAfter: stableAfter, stop: make(chan struct{})}
	for pi := range s.progs {
		p := &s.progs[pi]
		n := p.Count
		if p.Interval > 0 {
			n = 1 // a scheduler runs one at a time
		}
		for i := range n {
			l := log.With("name", p.Name, "kind", string(p.Kind))
			if n > 1 {
				l = l.With("index", i)
			}
			s.slots = append(s.slots, &slot{prog: p, index: i, log: l, restart: make(chan chan struct{}),
				st: Status{Name: p.Name, Kind: p.Kind, Index: i, State: StateStopped}})
		}
	}
	return s
}

// The states of a slot (Status.State).
const (
	StateStarting = "starting" // Launch is under way
	StateRunning  = "running"
	StateBackoff  = "backoff"  // waiting to start again after an exit or a failed start
	StateStopping = "stopping" // SIGTERM sent, waiting for the exit (SIGKILL after the grace)
	StateStopped  = "stopped"  // not started yet, stopped, or exited and not to be restarted
	StateWaiting  = "waiting"  // a scheduler between runs
)

// Start starts every Program (askrd calls it once its HTTP workers serve). It returns at once;
// a second call, or one after Stop, does nothing.
func (s *Supervisor) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return
	}
	s.started = true
	for _, sl := range s.slots {
		s.wg.Add(1)
		if sl.prog.Interval > 0 {
			go s.schedule(sl)
		} else {
			go s.keep(sl)
		}
	}
}

// Restart stops each process (SIGTERM, SIGKILL after its grace) and starts it again on the code as
// it is now (a reload), all slots at once and without back-off; a slot waiting in back-off starts
// at once. A scheduler is left alone: a run under way finishes (runs are short), and the next
// starts on the new code anyway. A slot that exited and is not to be restarted (restart =
// "on-failure" after a success) stays stopped. It returns once every process has been started
// again (or its start has failed), or once Stop has been called.
func (s *Supervisor) Restart() {
	s.mu.Lock()
	run := s.started && !s.stopped
	s.mu.Unlock()
	if !run {
		return
	}
	var started []chan struct{}
	for _, sl := range s.slots {
		if sl.prog.Interval > 0 {
			sl.log.Info("scheduler: restart: the next run starts on the new code")
			continue
		}
		r := make(chan struct{})
		select {
		case sl.restart <- r:
			started = append(started, r)
		case <-s.stop:
			return
		}
	}
	for _, r := range started {
		select {
		case <-r:
		case <-s.stop:
			return
		}
	}
}

// Stop stops every process at once (SIGTERM, SIGKILL after its Program's grace) and returns once
// all have exited; nothing is started after it. It may be called more than once, and before Start.
func (s *Supervisor) Stop() {
	s.mu.Lock()
	if !s.stopped {
		s.stopped = true
		close(s.stop)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Status returns every slot of every Program, in the order of the Programs.
func (s *Supervisor) Status() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, len(s.slots))
	for i, sl := range s.slots {
		out[i] = sl.st
	}
	return out
}

// slot is one process of a Program, kept by one goroutine.
type slot struct {
	prog    *Program
	index   int
	log     *slog.Logger
	restart chan chan struct{} // Restart's requests; the slot closes the channel once it has started again
	st      Status             // guarded by Supervisor.mu
}

// set changes sl's status under the lock.
func (s *Supervisor) set(sl *slot, f func(st *Status)) {
	s.mu.Lock()
	f(&sl.st)
	s.mu.Unlock()
}
