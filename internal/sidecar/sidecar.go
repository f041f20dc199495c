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

// Supervisor keeps the processes of its Programs.
type Supervisor struct {
	progs []Program
	log   *slog.Logger
}

// New returns a Supervisor for progs; nothing runs before Start.
func New(progs []Program, log *slog.Logger) *Supervisor {
	return &Supervisor{progs: progs, log: log}
}

// Start starts every Program (askrd calls it once its HTTP workers serve).
func (s *Supervisor) Start() { panic("sidecar: Start not implemented") }

// Restart stops each process (SIGTERM, SIGKILL after its grace) and starts it again on the code as
// it is now (a reload); a scheduler's next run is on the new code. It returns once every process
// has been started again.
func (s *Supervisor) Restart() { panic("sidecar: Restart not implemented") }

// Stop stops every process (SIGTERM, SIGKILL after its grace) and returns once all have exited.
func (s *Supervisor) Stop() { panic("sidecar: Stop not implemented") }

// Status returns every slot of every Program.
func (s *Supervisor) Status() []Status { return nil }
