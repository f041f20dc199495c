// Package pool supervises the PHP processes of worker mode and per-request mode: it keeps the
// configured number of processes alive, lends each request an idle one (Call), recycles processes
// after max_requests, kills one whose request runs past its timeout, retires a generation that was
// replaced, and replaces processes that exit, backing off when boots fail. One goroutine (Run, the
// owner) owns the set of processes; request goroutines borrow an idle process through a channel
// and give it back. The pool does not talk to a lent process itself: the function given to Call
// does (askr's channel in worker mode, FastCGI in per-request mode) and reports an Outcome. It
// does not speak HTTP and does not start processes itself: it is given a Starter.
package pool

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/askr-php/askr/internal/channel"
)

// Options configures a Pool.
type Options struct {
	Workers        int
	MaxRequests    int           // 0: never recycle
	RequestTimeout time.Duration // 0: no limit
	QueueSize      int
	QueueTimeout   time.Duration
	BootTimeout    time.Duration
	StopTimeout    time.Duration // how long a stopping worker may take to exit before it is killed
	Logger         *slog.Logger

	// MaxRSS and MaxPrivate (bytes; 0: no limit) recycle a process whose RSS, or private dirty
	// memory, is over them after a request: it is replaced, never killed in one (see memory.go
	// for what reading them costs).
	MaxRSS, MaxPrivate uint64
	// SlowAfter (0: never) marks a request that a process has had for this long as slow and calls
	// OnSlow once for it, while it still runs, on a goroutine of its own, with a copy of its Visit
	// (PID set; Slow true) and how long the process has had it. A request that ends first is not.
	SlowAfter time.Duration
	OnSlow    func(pid int, v *Visit, ran time.Duration)
	// Booted, if set, is told how long each process took from its start to its hello (on the
	// goroutine that booted it).
	Booted func(time.Duration)
	// Exited, if set, is told of every process of the pool that ended after it had booted, and why,
	// once, on the pool's owner goroutine: it must return quickly.
	Exited func(pid int, reason ExitReason)

	// Canary judges a reload's canary on real traffic (see Reload); zero: the canary must only
	// boot and answer a ping.
	Canary Canary
	// ReforkAfter (CoW mode: the Starter is a Stager): when a worker of the current generation has
	// served ReforkAfter[k] requests, k the reforks done so far, it becomes the next template (a
	// rollout as a reload's, with the same canary rules). Empty: never.
	ReforkAfter []int
	// MinWorkers and MaxWorkers bound the pool's scaling (Workers is where it starts): with
	// MaxWorkers > MinWorkers a worker is added while requests wait for one, and one idle for
	// ScaleDownAfter is retired (see scale.go). Zero: Workers (no scaling); ScaleDownAfter zero:
	// 30 s.
	MinWorkers, MaxWorkers int
	ScaleDownAfter         time.Duration
}

// Canary is how a reload judges its canary, the first worker of the new generation, on the
// requests it serves next to the old generation's workers for Window.
type Canary struct {
	Enabled          bool
	Window           time.Duration
	MinRequests      int     // fewer in Window: inconclusive (rolls on, with a warning)
	MaxErrorRate     float64 // percentage points of 5xx the canary may have above the old workers
	MaxLatencyFactor float64 // times the old workers' mean latency the canary's may be
}

// Rollout states (Rollout.State).
const (
	RolloutIdle         = "idle"         // no reload or refork yet
	RolloutRolling      = "rolling"      // a canary is judged, or old workers are being replaced
	RolloutOK           = "ok"           // the last rollout replaced every old worker
	RolloutInconclusive = "inconclusive" // the last one rolled on with too few canary requests to judge
	RolloutAborted      = "aborted"      // the last one was rolled back, or its template or canary failed
)

// Rollout describes the last reload or refork.
type Rollout struct {
	State    string // one of the Rollout* states
	Cause    string // "reload" or "refork"
	From, To int64  // the generations
	Canary   int    // the canary's pid (0: none yet)
	Detail   string // the verdict, or why it was aborted
	Started  time.Time
	Ended    time.Time // zero while rolling
}

// Errors returned by Call before its function ran, or instead of what it reported.
var (
	ErrQueueFull    = errors.New("all workers busy and the wait queue is full")
	ErrQueueTimeout = errors.New("no worker became free in time")
	ErrUnavailable  = errors.New("no worker is running (boot failing)")
	ErrClosed       = errors.New("pool is shutting down")
	ErrTimeout      = errors.New("request timed out; worker killed")
	ErrWorkerDied   = errors.New("worker died during the request")
	ErrBadResponse  = errors.New("the application's response is invalid") // the worker is fine
)

// Pool is the set of workers.
type Pool struct {
	opt    Options
	start  Starter
	log    *slog.Logger
	idle   chan *worker
	events chan event

	waiting  atomic.Int64
	ready    atomic.Int64 // workers that said hello and have not exited
	busy     atomic.Int64
	served   atomic.Uint64
	failing  atomic.Bool  // the last boot failed and no worker is ready
	progress atomic.Int64 // unix nanoseconds of the last answered request, pong or boot
	gen      atomic.Int64 // generation of new workers outside CoW mode (Reload raises it)
	limits   atomic.Pointer[channel.Limits]

	accepted   atomic.Uint64 // requests given to Call
	waitingMax atomic.Int64  // the most requests that waited at once
	maxReached atomic.Uint64 // requests that found no idle process and waited
	slow       atomic.Uint64 // requests that ran past SlowAfter
	exits      [numExitReasons]atomic.Uint64
	openMem    func(pid int) (memProbe, error) // openMemory; tests fake it
	scale      scaling                         // see scale.go

	firstReady chan struct{}
	readyOnce  sync.Once
	closing    chan struct{}
	closeOnce  sync.Once
	refusing   chan struct{} // closed by Refuse: no request waits for a worker any more
	refuseOnce sync.Once
	refused    atomic.Int64 // requests whose wait Refuse ended
	snaps      chan chan []WorkerInfo
	done       chan struct{}

	// Rollouts (rollout.go): judging is held by the reload or refork that is judging its canary;
	// judge counts requests while it is set; rollMu guards rollout and rollFinal, and the stores
	// to rollActive and rollPending.
	judging     atomic.Int32 // judgeFree, or who holds it (judgeReload, judgeRefork)
	judge       atomic.Pointer[judge]
	rollActive  atomic.Bool  // a rollout is judging, or old workers remain after its verdict
	rollPending atomic.Bool  // its verdict is given: it ends when no old worker remains
	reforks     atomic.Int32 // reforks started (ReforkAfter's index)
	rollMu      sync.Mutex
	rollout     Rollout
	rollFinal   string // the state it ends in (ok, inconclusive) once no old worker remains
}

// idleSlots is the idle channel's size: more than the workers (config caps them, and workers_max,
// at 1024), a reload's canary and the workers that exited while idle and are not purged yet.
const idleSlots = 1024

// New returns a pool; call Run to start it.
func New(opt Options, s Starter) *Pool {
	if opt.Workers < 1 {
		opt.Workers = 1
	}
	if opt.StopTimeout <= 0 {
		opt.StopTimeout = 10 * time.Second
	}
	scaleOptions(&opt)
	p := &Pool{
		opt:        opt,
		start:      s,
		log:        opt.Logger,
		idle:       make(chan *worker, max(2*opt.MaxWorkers+1, idleSlots)),
		events:     make(chan event, 4*opt.MaxWorkers+4),
		firstReady: make(chan struct{}),
		closing:    make(chan struct{}),
		refusing:   make(chan struct{}),
		done:       make(chan struct{}),
		snaps:      make(chan chan []WorkerInfo),
		openMem:    openMemory,
	}
	p.scale.init(&p.opt)
	return p
}

// Ready is closed once the configured number of workers (Options.Workers) has booted for the
// first time.
func (p *Pool) Ready() <-chan struct{} { return p.firstReady }

// WorkerInfo describes one worker process.
type WorkerInfo struct {
	PID        int
	Generation int64
	Busy       bool
	Served     int64
	Memory     uint64    // PHP's memory_get_usage() after its last request
	Peak       uint64    // PHP's memory_get_peak_usage() after its last request
	Started    time.Time // when the pool started it
	// Current is a copy of the request it has now (Busy), with PID and QueueWait set and Slow
	// once SlowAfter has passed; nil while idle. A Call without a Visit shows its Start only.
	Current *Visit
	// Last is how long its last answered request took in the process; 0 before the first.
	Last time.Duration
	// Recycling reports that it is retired after its current request (memory, max_requests, a
	// recycle asked for, a reload).
	Recycling bool
}

// Workers lists the worker processes alive now (nil once the pool has stopped).
func (p *Pool) Workers() []WorkerInfo {
	reply := make(chan []WorkerInfo, 1)
	select {
	case p.snaps <- reply:
		return <-reply
	case <-p.done:
		return nil
	}
}

// Limits returns the request limits of the workers' PHP configuration, as the newest worker
// reported them; zero Limits before any worker has.
func (p *Pool) Limits() channel.Limits {
	if l := p.limits.Load(); l != nil {
		return *l
	}
	return channel.Limits{}
}

// Stats is a snapshot of the pool's counters.
type Stats struct {
	Ready, Busy, Waiting int
	Served               uint64
	Refused              int                    // requests that were waiting for a worker when Refuse was called
	Accepted             uint64                 // requests given to Call
	WaitingMax           int                    // the most requests that waited at once (the queue's high-water mark)
	QueueSize            int                    // the bound of the queue (queue_size)
	MaxWorkersReached    uint64                 // requests that found no idle process and had to wait
	Slow                 uint64                 // requests that ran past SlowAfter
	Generation           int64                  // the newest generation of processes
	Exits                [numExitReasons]uint64 // processes ended, by ExitReason
	Target               int                    // the workers the pool keeps now (between MinWorkers and MaxWorkers when it scales)
	ScaledUp, ScaledDown uint64                 // times the target went up, and down
	Rollout              Rollout                // the last reload or refork
}

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	st := Stats{Ready: int(p.ready.Load()), Busy: int(p.busy.Load()), Waiting: int(p.waiting.Load()),
		Served: p.served.Load(), Refused: int(p.refused.Load()), Accepted: p.accepted.Load(),
		WaitingMax: int(p.waitingMax.Load()), QueueSize: p.opt.QueueSize, MaxWorkersReached: p.maxReached.Load(),
		Slow: p.slow.Load(), Generation: p.current(), Target: int(p.scale.target.Load()),
		ScaledUp: p.scale.ups.Load(), ScaledDown: p.scale.downs.Load(), Rollout: p.lastRollout()}
	for i := range st.Exits {
		st.Exits[i] = p.exits[i].Load()
	}
	return st
}

// Refuse ends the wait of every request queued for a worker with ErrClosed (a later request that
// finds no idle worker gets it at once): a drain that shutdown_timeout cut short answers them
// (503) rather than cutting them, since they never reached PHP. Requests that have a worker go on;
// the workers are not touched.
func (p *Pool) Refuse() { p.refuseOnce.Do(func() { close(p.refusing) }) }

// stopping reports whether the pool is stopping (or failed for good).
func (p *Pool) stopping() bool {
	select {
	case <-p.closing:
		return true
	default:
		return false
	}
}
