// Package pool owns the PHP processes of worker mode and per-request mode: it keeps the configured
// number of workers alive, hands each request to an idle one, recycles workers after max_requests,
// kills a worker whose request runs past its timeout, and replaces workers that exit, backing off
// when boots fail. One goroutine (run) owns the set of workers; request goroutines borrow an idle
// worker through a channel and give it back. The pool speaks askr's channel to worker-mode workers
// (Serve); a process with a protocol of its own (per-request mode's php-cgi, which speaks FastCGI)
// implements Conversation and is lent to the caller's request function (Call). The pool does not
// speak HTTP and does not start processes itself: it is given a Starter.
package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/askr-php/askr/internal/channel"
)

// Process is a started worker process (see phpcgi.Process).
type Process interface {
	PID() int
	Conn() net.Conn
	AwaitHello(timeout time.Duration) (channel.Hello, error)
	Kill() error
	Done() <-chan struct{}
	Err() error
	Tail() string
	Close() error
}

// Conversation is implemented by a Process that does not speak askr's channel but a protocol of its
// own, one request at a time: php-cgi in FastCGI mode (per-request mode). The pool greets, pings and
// stops such a process through these methods and never uses its Conn or AwaitHello; its requests
// go through Call.
type Conversation interface {
	// Greet returns once the process answers, i.e. can serve; it is its hello.
	Greet(timeout time.Duration) error
	// Ping checks that an idle process answers within timeout.
	Ping(timeout time.Duration) error
	// Stop asks an idle process to exit.
	Stop() error
}

// Outcome is what became of one request given to a Conversation process by Call.
type Outcome struct {
	// Err is nil for a request answered in full. Otherwise it says why not: it wraps ErrBadResponse
	// for an answer the application got wrong, or is the client's error if the client went away.
	Err error
	// Broken reports that the process cannot serve again: it is killed and replaced.
	Broken bool
	// Unsent reports that the request never reached the process (it was gone already): it is tried
	// on another process. Only a Broken outcome can be Unsent.
	Unsent bool
}

// Starter starts worker processes.
type Starter interface {
	Start() (Process, error)
}

// generational is implemented by a Starter whose workers come from a template that can be replaced
// (CoW mode), and by the workers it starts: workers of an older generation are retired as the
// new generation's come up.
type generational interface {
	Generation() int64
}

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
}

// Errors returned by Serve before any response was written.
var (
	ErrQueueFull   = errors.New("all workers busy and the wait queue is full")
	ErrQueueTimout = errors.New("no worker became free in time")
	ErrUnavailable = errors.New("no worker is running (boot failing)")
	ErrClosed      = errors.New("pool is shutting down")
	ErrTimeout     = errors.New("request timed out; worker killed")
	ErrWorkerDied  = errors.New("worker died during the request")
	ErrBadResponse = errors.New("the application's response is invalid") // the worker is fine
)

// Response receives a worker's answer.
type Response interface {
	// Head is called once with the status and the header lines.
	Head(status int, headers []channel.Header) error
	// Body is called for each chunk of the body; b is only valid during the call.
	Body(b []byte) error
	// Flush is called when PHP flushed: what it sent so far should reach the client now.
	Flush() error
}

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
	shrink   atomic.Int64 // busy workers still to retire after SetWorkers lowered the count
	progress atomic.Int64 // unix nanoseconds of the last answered request, pong or boot
	gen      atomic.Int64 // generation of new workers outside CoW mode (Reload raises it)
	limits   atomic.Pointer[channel.Limits]

	firstReady chan struct{}
	readyOnce  sync.Once
	closing    chan struct{}
	closeOnce  sync.Once
	refusing   chan struct{} // closed by Refuse: no request waits for a worker any more
	refuseOnce sync.Once
	refused    atomic.Int64 // requests whose wait Refuse ended
	snaps      chan chan []WorkerInfo
	done       chan struct{}
}

type worker struct {
	proc   Process
	pid    int
	gen    int64
	rd     *channel.Reader
	served int
	memory atomic.Uint64 // PHP's memory_get_usage() after the last request
	busy   atomic.Bool
	loans  atomic.Int64 // requests it was lent for (see lend)
	// servedTotal mirrors served for readers other than the request goroutine.
	servedTotal atomic.Int64
	dead        atomic.Bool // the process exited
	ending      atomic.Bool // askrd stopped or killed it on purpose: its exit is no news
	left        atomic.Bool // it said Bye: it ends on its own between requests
	// byeAndExit counts two events, in either order: a request or a ping noted its Bye (leaving),
	// and run saw its exit. The second logs the exit (logLeft), whose status is then known.
	byeAndExit atomic.Int32
	// claim says who may use the worker's channel: while idle (claimIdle) nobody; a request or a
	// ping that takes it from the idle channel claims it (claimLent) until it goes back; run claims
	// an idle worker that exited (claimReaped) to read its last words. Both claim by CAS, so a worker
	// that exits as a request takes it is read by exactly one of them.
	claim atomic.Int32
	quit  bool   // retired: must not serve again
	out   []byte // frame buffer reused for requests
	// A worker that exits while a request holds it (exit(), a crash) may have written its whole
	// answer first: its channel is closed once both the exit is seen and the loan is over, never
	// under the request still reading it.
	closeMu sync.Mutex
	held    int // loans not yet over (a loan ends after the worker went back to the idle channel)
	exited  bool
}

const (
	claimIdle int32 = iota
	claimLent
	claimReaped
)

// take claims a worker received from the idle channel; false if run has claimed it (it exited).
func (w *worker) take() bool { return w.claim.CompareAndSwap(claimIdle, claimLent) }

// testHookTaken, if set (by tests only), runs in takeIdle right after the claim.
var testHookTaken func(*worker)

// takeIdle takes a worker received from the idle channel for a request or a ping. On true the
// caller has its claim and a loan of its channel (hold), which it ends with hold(false). False: it
// cannot serve (it exited, or is ending), and the caller drops it; run replaces it.
//
// An exit nobody asked for is reported once, by whoever holds the claim: run, if the worker was
// idle when run saw the exit, else here. A worker seen dead before the claim is left to run (its
// claim stays idle for run's CAS); one that dies between that look and the claim may have been
// seen by run already, claimed: it is reported here, and its claim never goes back to idle.
func (p *Pool) takeIdle(w *worker) bool {
	if w.dead.Load() || w.ending.Load() {
		return false
	}
	w.hold(true) // before the claim: run's exit() must not close the channel under saidBye below
	if !w.take() {
		w.hold(false)
		return false // exited; run has it
	}
	if testHookTaken != nil {
		testHookTaken(w)
	}
	if w.dead.Load() {
		w.claim.Store(claimReaped)
		select {
		case <-p.closing: // stopping: exits are expected
		default:
			if !w.ending.Load() {
				p.reportIdleExit(w)
			}
		}
		w.hold(false)
		return false
	}
	return true
}

// hold counts a loan of the worker (on) or its end (off), and closes its channel if it has exited
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
		w.proc.Close()
	}
}

// exit notes that the process has exited and closes its channel unless a request holds it. If one
// does, it reads what the worker wrote before it exited and then end-of-file, even if a process
// the worker started holds the worker's end of the channel open.
func (w *worker) exit() {
	w.closeMu.Lock()
	w.exited = true
	closeNow := w.held == 0
	w.closeMu.Unlock()
	if closeNow {
		w.proc.Close()
		return
	}
	if _, conv := w.proc.(Conversation); conv {
		return // no channel: the lent request reads the process's own connection to its end
	}
	if c, ok := w.proc.Conn().(interface{ CloseRead() error }); ok {
		c.CloseRead() // shutdown(SHUT_RD): what is buffered can still be read
	}
}

type eventKind int

const (
	evBooted eventKind = iota
	evBootFailed
	evExited
	evRetire
	evRotate
	evResize
	evCanary
)

// MaxWorkers bounds SetWorkers.
const MaxWorkers = 1024

type event struct {
	kind eventKind
	w    *worker
	err  error
	n    int // evResize
}

// New returns a pool; call Run to start it.
func New(opt Options, s Starter) *Pool {
	if opt.Workers < 1 {
		opt.Workers = 1
	}
	if opt.StopTimeout <= 0 {
		opt.StopTimeout = 10 * time.Second
	}
	return &Pool{
		opt:        opt,
		start:      s,
		log:        opt.Logger,
		idle:       make(chan *worker, max(opt.Workers, MaxWorkers)),
		events:     make(chan event, 4*opt.Workers+4),
		firstReady: make(chan struct{}),
		closing:    make(chan struct{}),
		refusing:   make(chan struct{}),
		done:       make(chan struct{}),
		snaps:      make(chan chan []WorkerInfo),
	}
}

// Ready is closed once the configured number of workers has booted for the first time.
func (p *Pool) Ready() <-chan struct{} { return p.firstReady }

// WorkerInfo describes one worker process.
type WorkerInfo struct {
	PID        int
	Generation int64
	Busy       bool
	Served     int64
	Memory     uint64 // PHP's memory_get_usage() after its last request
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
	Refused              int // requests that were waiting for a worker when Refuse was called
}

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	return Stats{Ready: int(p.ready.Load()), Busy: int(p.busy.Load()), Waiting: int(p.waiting.Load()),
		Served: p.served.Load(), Refused: int(p.refused.Load())}
}

// Refuse ends the wait of every request queued for a worker with ErrClosed (a later request
// that finds no idle worker gets it at once): a drain that shutdown_timeout cut short answers them (503) rather than cutting them,
// since they never reached PHP. Requests that have a worker go on; the workers are not touched.
func (p *Pool) Refuse() { p.refuseOnce.Do(func() { close(p.refusing) }) }

// Run supervises the workers until ctx is done, then stops them all (idle ones at once, busy ones
// after their request) and returns nil when every worker process has exited.
//
// A first generation in which no worker boots is fatal: once every boot started before any worker
// ever booted has failed, Run returns the first failure (PHP's error) and the pool is closed. After
// a worker has booted once, failed boots are retried with back-off (100 ms doubling up to 10 s).
func (p *Pool) Run(ctx context.Context) error {
	defer close(p.done)
	all := map[*worker]bool{} // every process not yet exited
	target := p.opt.Workers   // how many workers the pool keeps (SetWorkers changes it)
	live := 0                 // booting or serving, not retired
	booted := 0               // first-boot progress, for Ready
	everBooted := false       // a worker has booted: boot failures are retried from now on
	var firstErr error        // the first boot failure while none has booted
	failures := 0
	var retry <-chan time.Time // non-nil while backing off after a failed boot
	spawn := func() {
		for live < target && retry == nil {
			live++
			go p.boot()
		}
	}
	// retire stops a worker no request holds; replace also starts its successor.
	retire := func(w *worker) {
		w.quit = true
		live--
		p.stopWorker(w)
	}
	replace := func(w *worker) {
		retire(w)
		spawn()
	}
	stopping := false
	// firstBoot notes a booted worker: from now on failed boots are retried. Boots of the first
	// generation that failed before are retried now, with back-off.
	firstBoot := func() {
		if !everBooted && failures > 0 && !stopping {
			delay := backoff(failures)
			p.log.Error("worker failed to boot", "err", firstErr, "failed", failures, "retry_in", delay)
			retry = time.After(delay)
		}
		everBooted = true
	}
	spawn()
	var killAll <-chan time.Time
	for {
		if stopping && len(all) == 0 && live == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if !stopping {
				stopping = true
				p.closeOnce.Do(func() { close(p.closing) })
				retry = nil
				killAll = time.After(p.opt.StopTimeout)
				for drained := false; !drained; {
					select {
					case w := <-p.idle:
						retire(w)
					default:
						drained = true
					}
				}
			}
			ctx = context.Background() // seen; keep looping until the workers are gone
		case <-killAll:
			for w := range all {
				p.log.Warn("worker did not stop in time; killing", "pid", w.pid)
				w.proc.Kill()
			}
			killAll = nil
		case <-retry:
			retry = nil
			spawn()
		case reply := <-p.snaps:
			infos := make([]WorkerInfo, 0, len(all))
			for w := range all {
				infos = append(infos, WorkerInfo{PID: w.pid, Generation: w.gen, Busy: w.busy.Load(), Served: w.servedTotal.Load(), Memory: w.memory.Load()})
			}
			reply <- infos
		case ev := <-p.events:
			w := ev.w
			switch ev.kind {
			case evBooted:
				p.progress.Store(time.Now().UnixNano())
				firstBoot()
				failures = 0
				p.failing.Store(false)
				all[w] = true
				go p.watch(w)
				p.ready.Add(1)
				if stopping {
					retire(w)
					continue
				}
				if booted++; booted == p.opt.Workers {
					p.readyOnce.Do(func() { close(p.firstReady) })
				}
				p.log.Debug("worker ready", "pid", w.pid, "generation", w.gen)
				p.retireOneOld(w.gen, replace)
				select {
				case p.idle <- w:
				default: // cannot happen: live ≤ MaxWorkers, the channel's size, and dead workers are purged
					p.log.Error("idle queue full; stopping the extra worker", "pid", w.pid)
					retire(w)
				}
			case evBootFailed:
				live--
				failures++
				if p.ready.Load() == 0 {
					p.failing.Store(true)
				}
				switch {
				case stopping:
				case !everBooted:
					// Not retried: either a worker of this first generation boots, or none does and
					// askrd cannot serve PHP at all.
					if firstErr == nil {
						firstErr = ev.err
					}
					if live == 0 {
						p.closeOnce.Do(func() { close(p.closing) })
						return fmt.Errorf("no worker booted (%d tried): %w", failures, firstErr)
					}
				default:
					delay := backoff(failures)
					p.log.Error("worker failed to boot", "err", ev.err, "retry_in", delay)
					retry = time.After(delay)
				}
			case evResize:
				target = ev.n
				p.log.Info("worker count changed", "workers", target)
				spawn()
				// Fewer: stop idle workers now, and as many busy ones as still needed after their request.
				excess := live - target
				for excess > 0 {
					select {
					case old := <-p.idle:
						if old.dead.Load() {
							continue
						}
						retire(old)
						excess--
						continue
					default:
					}
					break
				}
				p.shrink.Store(int64(max(excess, 0)))
			case evCanary:
				// A reload's canary has booted and answered: it replaces one old worker, and the
				// rest follow one at a time (each new worker that comes up retires the next).
				firstBoot()
				all[w] = true
				go p.watch(w)
				p.ready.Add(1)
				live++
				p.retireOneOld(w.gen, retire)
				select {
				case p.idle <- w:
				default:
					retire(w)
				}
				p.retireOneOld(w.gen, replace)
			case evRotate:
				if !stopping {
					p.retireOneOld(p.current(), replace)
				}
			case evRetire:
				if !w.quit {
					w.quit = true
					live--
				}
				p.stopWorker(w)
				if !stopping {
					spawn()
				}
			case evExited:
				delete(all, w)
				p.purgeIdle()
				p.ready.Add(-1)
				if !w.quit {
					w.quit = true
					live--
				}
				// A worker that exits during a request is the request's news (exit() after its
				// response, or 502): one event, one line. A request holds its claim until the worker
				// is idle again or ending, so only an idle worker's exit is reported here (or by a
				// request that claimed it as it exited: see takeIdle). A worker that said Bye to a
				// request or a ping is reported once its exit status is known (see leaving).
				switch {
				case w.byeAndExit.Add(1) == 2:
					p.logLeft(w)
				case stopping, w.ending.Load():
				case w.claim.CompareAndSwap(claimIdle, claimReaped):
					p.reportIdleExit(w)
				}
				w.exit()
				if !stopping {
					spawn()
				}
			}
		}
	}
}

// backoff is the delay before booting again after failures boot failures in a row.
func backoff(failures int) time.Duration {
	return min(100*time.Millisecond<<min(failures-1, 7), 10*time.Second)
}

func (p *Pool) boot() {
	proc, err := p.start.Start()
	if err != nil {
		p.events <- event{kind: evBootFailed, err: err}
		return
	}
	h, err := p.hello(proc)
	if err != nil {
		proc.Kill()
		<-proc.Done()
		proc.Close()
		_, conv := proc.(Conversation)
		switch {
		case conv && errors.Is(err, os.ErrDeadlineExceeded):
			err = fmt.Errorf("process pid %d did not answer within boot_timeout (%v); killed", proc.PID(), p.opt.BootTimeout)
		case conv:
			err = fmt.Errorf("process pid %d (%s): %w", proc.PID(), exitStatus(proc.Err()), err)
		case errors.Is(err, io.EOF):
			err = fmt.Errorf("worker pid %d ended (%s) before it called askr_handle_request()", proc.PID(), exitStatus(proc.Err()))
		case errors.Is(err, os.ErrDeadlineExceeded):
			err = fmt.Errorf("worker pid %d did not call askr_handle_request() within boot_timeout (%v); killed", proc.PID(), p.opt.BootTimeout)
		default:
			err = fmt.Errorf("worker pid %d: %w", proc.PID(), err)
		}
		if tail := proc.Tail(); tail != "" {
			err = fmt.Errorf("%w; last output:\n%s", err, tail)
		}
		p.events <- event{kind: evBootFailed, err: err}
		return
	}
	p.events <- event{kind: evBooted, w: p.newWorker(proc, h)}
}

// hello waits for a new process's hello: the channel's Hello frame, or a Conversation's Greet.
func (p *Pool) hello(proc Process) (channel.Hello, error) {
	if c, ok := proc.(Conversation); ok {
		return channel.Hello{PID: proc.PID()}, c.Greet(p.opt.BootTimeout)
	}
	return proc.AwaitHello(p.opt.BootTimeout)
}

func (p *Pool) newWorker(proc Process, h channel.Hello) *worker {
	w := &worker{proc: proc, pid: h.PID, gen: p.gen.Load()}
	if _, ok := proc.(Conversation); !ok {
		w.rd = channel.NewReader(proc.Conn())
	}
	if h.Limits.Known {
		p.limits.Store(&h.Limits)
	}
	if g, ok := proc.(generational); ok {
		w.gen = g.Generation()
	}
	return w
}

// saidBye reports whether a worker that exited while idle said Bye first: it left between
// requests on its own. Run calls it with the worker claimed (claimReaped); its process has exited,
// so what it wrote is all there is.
func (p *Pool) saidBye(w *worker) bool {
	if w.rd == nil {
		return false
	}
	c := w.proc.Conn()
	if cr, ok := c.(interface{ CloseRead() error }); ok {
		cr.CloseRead() // what is buffered can still be read, then end of file: no wait
	} else {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	}
	f, err := w.rd.ReadFrame()
	if err != nil || f.Type != channel.TypeBye {
		return false
	}
	w.left.Store(true)
	return true
}

// saidByeLast reports whether a worker a request holds, to which writing the request failed, said
// Bye before it closed its channel.
func (p *Pool) saidByeLast(w *worker) bool {
	if w.rd == nil {
		return false
	}
	c := w.proc.Conn()
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond)) // its end is closed: what it wrote is there at once
	defer c.SetReadDeadline(time.Time{})
	f, err := w.rd.ReadFrame()
	return err == nil && f.Type == channel.TypeBye
}

// reportIdleExit logs the exit of a worker that was idle, for its claimant (claimReaped).
func (p *Pool) reportIdleExit(w *worker) {
	if p.saidBye(w) {
		p.logLeft(w)
		return
	}
	p.log.Warn("worker exited unexpectedly; replacing it", "pid", w.pid, "status", exitStatus(w.proc.Err()))
}

// logLeft notes the exit of a worker that said Bye: it ended on its own between requests (a break
// or exit() in its loop, an uncaught exception there, exit() in an askr_defer() callback). No
// request is lost, and the runtime has logged the event in the worker's log: here it is only debug
// detail, unless a signal ended the process after its Bye (a crash in PHP's module shutdown).
// While the pool stops, a signal is askrd's kill of a worker that did not end in time, which is
// logged where it is sent.
func (p *Pool) logLeft(w *worker) {
	err := w.proc.Err()
	stopping := false
	select {
	case <-p.closing:
		stopping = true
	default:
	}
	if signaled(err) && !stopping {
		p.log.Warn("worker said it was leaving between requests, then died of a signal", "pid", w.pid, "status", exitStatus(err))
		return
	}
	p.log.Debug("worker left between requests; replacing it", "pid", w.pid, "served", w.servedTotal.Load(), "status", exitStatus(err))
}

// signaled reports whether a process's exit error says a signal ended it.
func signaled(err error) bool {
	var ps interface{ Sys() any } // *exec.ExitError's *os.ProcessState
	if !errors.As(err, &ps) {
		return false
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

func (p *Pool) watch(w *worker) {
	<-w.proc.Done()
	w.dead.Store(true)
	p.events <- event{kind: evExited, w: w}
}

// stopWorker asks an idle worker to leave its loop; called by run only for workers no request holds.
func (p *Pool) stopWorker(w *worker) {
	w.ending.Store(true)
	if w.dead.Load() || w.left.Load() {
		return // it ends by itself: a Stop (or a kill, if it cannot be written) would only cut its shutdown short
	}
	if c, ok := w.proc.(Conversation); ok {
		if err := c.Stop(); err != nil {
			w.proc.Kill()
		}
		return
	}
	var stop []byte
	stop = channel.AppendHeader(stop, channel.TypeStop, 0, 0)
	w.proc.Conn().SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := w.proc.Conn().Write(stop); err != nil {
		w.proc.Kill()
	}
}

// Reload replaces every worker with one that runs the worker script afresh (SIGHUP in worker mode).
// One canary boots first and must answer a ping; only then do the others roll over, each after its
// current request. If the canary fails, the old workers go on serving and Reload says why.
func (p *Pool) Reload() error {
	if _, ok := p.start.(generational); ok {
		return errors.New("reload: the workers come from a CoW template; restart askrd instead")
	}
	gen := p.gen.Load() + 1
	proc, err := p.start.Start()
	if err != nil {
		return fmt.Errorf("reload canary: %w", err)
	}
	fail := func(err error) error {
		proc.Kill()
		<-proc.Done()
		proc.Close()
		if tail := proc.Tail(); tail != "" {
			err = fmt.Errorf("%w; last output:\n%s", err, tail)
		}
		return fmt.Errorf("reload canary pid %d: %w", proc.PID(), err)
	}
	h, err := p.hello(proc)
	if err != nil {
		return fail(err)
	}
	w := p.newWorker(proc, h)
	w.gen = gen
	if err := p.pingWorker(w, 5*time.Second); err != nil {
		return fail(err)
	}
	p.gen.Store(gen)
	select {
	case p.events <- event{kind: evCanary, w: w}:
	case <-p.done:
		return fail(ErrClosed)
	}
	p.log.Info("reload: canary serves; rolling the other workers over", "pid", w.pid, "generation", gen)
	return nil
}

// Ping sends a health check to an idle worker, if one is idle; its answer counts as progress. A
// worker that does not answer is killed and replaced.
func (p *Pool) Ping() {
	var w *worker
	select {
	case w = <-p.idle:
	default:
		return
	}
	if !p.takeIdle(w) {
		return // exited or ending: run replaces it
	}
	defer w.hold(false) // after release: run's exit() must not close the channel under the ping
	err := p.pingWorker(w, 2*time.Second)
	if errors.Is(err, errLeft) {
		p.leaving(w) // logged when it has exited
		p.release(w, false)
		return
	}
	if err != nil {
		p.log.Warn("worker failed its health check; killed", "pid", w.pid, "err", err)
		w.ending.Store(true)
		w.proc.Kill()
		p.release(w, false)
		return
	}
	p.release(w, true)
}

// leaving notes a worker that answered a request or a ping with Bye: it ends by itself (it is
// neither stopped nor killed: its shutdown runs to the end). Its exit is logged once it has
// exited: by run, or here if run saw the exit first.
func (p *Pool) leaving(w *worker) {
	w.left.Store(true)
	w.ending.Store(true)
	if w.byeAndExit.Add(1) == 2 {
		p.logLeft(w)
	}
}

func (p *Pool) pingWorker(w *worker, timeout time.Duration) error {
	if conv, ok := w.proc.(Conversation); ok {
		if err := conv.Ping(timeout); err != nil {
			return err
		}
		p.progress.Store(time.Now().UnixNano())
		return nil
	}
	c := w.proc.Conn()
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(channel.AppendHeader(nil, channel.TypePing, 0, 0)); err != nil {
		if p.saidByeLast(w) {
			return errLeft // it left and closed its channel before the ping came
		}
		return err
	}
	f, err := w.rd.ReadFrame()
	if err != nil {
		return err
	}
	if f.Type == channel.TypeBye {
		return errLeft
	}
	if f.Type != channel.TypePong {
		return fmt.Errorf("%w: frame type %d, want pong", channel.ErrProtocol, f.Type)
	}
	p.progress.Store(time.Now().UnixNano())
	return nil
}

// Healthy reports whether the pool's owner answers and a worker answered a request, a ping or
// booted within the last interval: what the systemd watchdog is pinged for.
func (p *Pool) Healthy(within time.Duration) bool {
	reply := make(chan []WorkerInfo, 1)
	select {
	case p.snaps <- reply:
		<-reply
	case <-time.After(time.Second):
		return false
	case <-p.done:
		return false
	}
	return time.Since(time.Unix(0, p.progress.Load())) < within
}

// SetWorkers changes how many workers the pool keeps: more are started (in CoW mode: forked) at
// once, surplus idle ones are stopped now and surplus busy ones after their request.
func (p *Pool) SetWorkers(n int) error {
	if n < 1 || n > MaxWorkers {
		return fmt.Errorf("workers must be from 1 to %d, got %d", MaxWorkers, n)
	}
	select {
	case p.events <- event{kind: evResize, n: n}:
		return nil
	case <-p.done:
		return ErrClosed
	}
}

// Rotate starts replacing the workers of an older generation (their template has been replaced):
// one idle old worker is retired now, and each new worker that comes up retires the next.
func (p *Pool) Rotate() {
	select {
	case p.events <- event{kind: evRotate}:
	case <-p.done:
	}
}

// current is the generation new workers have.
func (p *Pool) current() int64 {
	if g, ok := p.start.(generational); ok {
		return g.Generation()
	}
	return p.gen.Load()
}

// retireOneOld takes one idle worker older than gen out of the idle channel and passes it to
// retire: each new worker of a new generation replaces one of the old, so capacity never drops.
func (p *Pool) retireOneOld(gen int64, retire func(*worker)) {
	if old := p.sweepIdle(func(w *worker) bool { return w.gen < gen }); old != nil {
		retire(old)
	}
}

// purgeIdle drops workers that exited while idle from the idle channel, so that their slots are
// free for their replacements.
func (p *Pool) purgeIdle() { p.sweepIdle(func(*worker) bool { return false }) }

// sweepIdle goes through the idle channel once: workers that exited are dropped, the first one
// pick chooses is taken out and returned, the others are put back.
func (p *Pool) sweepIdle(pick func(*worker) bool) *worker {
	var keep []*worker
	var picked *worker
	for swept := false; !swept; {
		select {
		case w := <-p.idle:
			switch {
			case w.dead.Load():
			case picked == nil && pick(w):
				picked = w
			default:
				keep = append(keep, w)
			}
		default:
			swept = true
		}
	}
	for _, w := range keep {
		p.idle <- w
	}
	return picked
}

// acquire waits for an idle worker until deadline (queue_timeout from when the request arrived)
// and returns it claimed and held (see takeIdle). A request tried again (retry) waits for its next
// worker whatever the queue's length: it was admitted already.
func (p *Pool) acquire(ctx context.Context, deadline time.Time, retry bool) (*worker, error) {
	for {
		select {
		case w := <-p.idle:
			if !p.takeIdle(w) {
				continue // exited, or killed, while idle; run replaces it
			}
			return w, nil
		default:
		}
		select {
		case <-p.closing:
			return nil, ErrClosed
		case <-p.refusing:
			return nil, ErrClosed
		default:
		}
		if p.failing.Load() && p.ready.Load() == 0 {
			return nil, ErrUnavailable
		}
		if n := p.waiting.Add(1); n > int64(p.opt.QueueSize) && !retry {
			p.waiting.Add(-1)
			return nil, ErrQueueFull
		}
		t := time.NewTimer(time.Until(deadline))
		var w *worker
		var err error
		select {
		case w = <-p.idle:
		case <-t.C:
			err = ErrQueueTimout
		case <-p.closing:
			err = ErrClosed
		case <-p.refusing:
			p.refused.Add(1)
			err = ErrClosed
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
		t.Stop()
		p.waiting.Add(-1)
		if err != nil {
			return nil, err
		}
		if p.takeIdle(w) {
			return w, nil
		}
	}
}

// release gives a worker back after a request.
func (p *Pool) release(w *worker, reusable bool) {
	if reusable && p.opt.MaxRequests > 0 && w.served >= p.opt.MaxRequests {
		reusable = false
	}
	if reusable && w.gen < p.current() {
		reusable = false // its template has been replaced
	}
	if reusable && p.shrink.Load() > 0 && p.shrink.Add(-1) >= 0 {
		reusable = false // SetWorkers asked for fewer
	}
	select {
	case <-p.closing:
		reusable = false
	default:
	}
	if reusable {
		w.claim.Store(claimIdle)
		p.idle <- w
		return
	}
	p.events <- event{kind: evRetire, w: w}
}

// Serve sends one request to an idle worker and streams its answer to resp. payload is the
// serialize()d request array. Errors before resp.Head was called are the pool's (ErrQueueFull, …)
// or ErrTimeout / ErrWorkerDied; after Head, any error means the response is cut short.
//
// A request is tried on another worker only if it never reached the first: writing it failed (the
// worker was gone already), at most three tries in all; or the worker answered Bye (it was ending
// between requests and never read it), which is no try: each Bye is a worker that served a request
// and is replaced; at most maxLeft Byes for one request. A Bye from a worker that has answered no
// request yet is not believed: the runtime reads a worker's first request in the call that said
// Hello, so it is treated as a death. A request whose worker died while it had it gets
// ErrWorkerDied, whatever its method: running it again could crash worker after worker (a query of
// death), so the worker that died is the only one. All tries wait for a worker within one
// queue_timeout, counted from the first.
func (p *Pool) Serve(ctx context.Context, payload []byte, resp Response) error {
	deadline := time.Now().Add(p.opt.QueueTimeout)
	left := 0
	for try := 1; ; {
		err, undelivered := p.serveOnce(ctx, deadline, try > 1 || left > 0, payload, resp)
		switch {
		case errors.Is(err, errLeft):
			if left++; left > maxLeft {
				return fmt.Errorf("%w: %d workers left before reading the request; the last: %v", ErrWorkerDied, left, err)
			}
			p.log.Debug("worker left before reading the request; trying another", "err", err, "left", left)
			continue
		case !errors.Is(err, errNoAnswer):
			return err
		case try == 3 || !undelivered:
			return fmt.Errorf("%w: %v", ErrWorkerDied, err)
		}
		p.log.Warn("worker was gone before the request reached it; trying another", "err", err, "try", try)
		try++
	}
}

// maxLeft bounds the Byes one request meets, in all. A worker that leaves after every request
// answers about every second request handed to it with Bye; 16 in a row is chance 1 in 65 536.
const maxLeft = 16

// Call runs one request on an idle Conversation process: call gets the process and must talk to it
// (e.g. one FastCGI request). Call waits for the process as Serve does (queue_size, queue_timeout),
// kills the process if the request runs past request_timeout (ErrTimeout), counts the request for
// max_requests, and gives the process back or, if the outcome is Broken, replaces it. A Broken
// outcome is returned wrapped in ErrWorkerDied, except that an Unsent request is tried on another
// process (at most three tries in all), as Serve does: call must be able to send its request again.
func (p *Pool) Call(ctx context.Context, call func(Process) Outcome) error {
	deadline := time.Now().Add(p.opt.QueueTimeout)
	for try := 1; ; try++ {
		err, retry := p.callOnce(ctx, deadline, try > 1, call)
		if !retry {
			return err
		}
		if try == 3 {
			return fmt.Errorf("%w: %v", ErrWorkerDied, err)
		}
		p.log.Warn("process was gone before the request reached it; trying another", "err", err, "try", try)
	}
}

// callOnce runs one try of Call; retry reports an Unsent request.
func (p *Pool) callOnce(ctx context.Context, deadline time.Time, again bool, call func(Process) Outcome) (err error, retry bool) {
	w, timedOut, giveBack, err := p.lend(ctx, deadline, again)
	if err != nil {
		return err, false
	}
	defer giveBack()
	o := call(w.proc)
	switch {
	case timedOut.Load() && (o.Err != nil || o.Broken):
		p.release(w, false)
		return ErrTimeout, false
	case o.Broken:
		w.ending.Store(true)
		w.proc.Kill()
		p.release(w, false)
		if o.Unsent {
			return fmt.Errorf("process pid %d: %v", w.pid, o.Err), true
		}
		return fmt.Errorf("%w: process pid %d: %v", ErrWorkerDied, w.pid, o.Err), false
	}
	w.served++
	w.servedTotal.Store(int64(w.served))
	p.served.Add(1)
	p.progress.Store(time.Now().UnixNano())
	p.release(w, true)
	return o.Err, false
}

// lend takes an idle worker for one request (see acquire) and marks it busy; past request_timeout
// the worker is killed and timedOut says so. giveBack ends the loan's bookkeeping (not the
// worker's release), and the hold acquire took.
func (p *Pool) lend(ctx context.Context, deadline time.Time, retry bool) (w *worker, timedOut *atomic.Bool, giveBack func(), err error) {
	w, err = p.acquire(ctx, deadline, retry)
	if err != nil {
		return nil, nil, nil, err
	}
	p.busy.Add(1)
	w.busy.Store(true)
	// The worker goes back to the idle channel (release) before this loan's bookkeeping ends: the
	// loan number keeps a late timer or giveBack from touching the worker's next request.
	loan := w.loans.Add(1)
	timedOut = new(atomic.Bool)
	var t *time.Timer
	if p.opt.RequestTimeout > 0 {
		t = time.AfterFunc(p.opt.RequestTimeout, func() {
			if w.loans.Load() != loan {
				return
			}
			timedOut.Store(true)
			w.ending.Store(true) // acquire never hands out an ending worker
			w.proc.Kill()
		})
	}
	return w, timedOut, func() {
		if t != nil {
			t.Stop()
		}
		if w.loans.Load() == loan {
			w.busy.Store(false)
		}
		p.busy.Add(-1)
		w.hold(false)
	}, nil
}

// errNoAnswer marks a worker that died (by itself) before sending any frame of its answer.
var errNoAnswer = errors.New("no answer")

// errLeft marks a worker whose first frame was Bye: it ends between requests and never read the request.
var errLeft = errors.New("worker left between requests")

// serveOnce runs one try; undelivered reports that the request could not even be written.
func (p *Pool) serveOnce(ctx context.Context, deadline time.Time, retry bool, payload []byte, resp Response) (err error, undelivered bool) {
	w, timedOut, giveBack, err := p.lend(ctx, deadline, retry)
	if err != nil {
		return err, false
	}
	defer giveBack()
	answered, sent, err := p.exchange(w, payload, resp)
	if err == nil || errors.Is(err, ErrBadResponse) {
		p.served.Add(1)
		return err, false
	}
	var cg *clientGone
	if errors.As(err, &cg) {
		p.served.Add(1)
		return cg.err, false
	}
	if errors.Is(err, errLeft) && w.served > 0 {
		// Nothing reached PHP: the worker ends by itself (not killed: its shutdown runs to the end).
		p.leaving(w)
		p.release(w, false)
		return fmt.Errorf("%w: worker pid %d", errLeft, w.pid), true
	}
	if errors.Is(err, errLeft) {
		// The runtime says Bye only after an End: a worker's first askr_handle_request() call says
		// Hello and reads its first request. A Bye before any answer is not believed: the worker
		// may have read the request and died of it, and running it again could cost worker after
		// worker. It counts as a worker that ended without a word.
		p.log.Warn("worker said Bye before answering any request; treated as a worker that died", "pid", w.pid)
		err = errors.New("Bye before any answer")
	}
	var end *exitAfter
	if errors.As(err, &end) {
		w.ending.Store(true)
		p.served.Add(1)
		p.release(w, false)
		if end.bad != nil {
			return fmt.Errorf("%w: %v", ErrBadResponse, end.bad), false
		}
		return nil, false
	}
	var re *responseError
	switch {
	case timedOut.Load():
		err = ErrTimeout
	case errors.As(err, &re):
		w.ending.Store(true) // killed because its client went away
		err = re.err
	case errors.Is(err, channel.ErrProtocol):
		w.ending.Store(true)
		p.log.Error("worker broke the channel protocol; killed", "pid", w.pid, "err", err)
		err = fmt.Errorf("%w: %v", ErrWorkerDied, err)
	case !answered:
		err = fmt.Errorf("%w: worker pid %d: %v", errNoAnswer, w.pid, err)
	default:
		err = fmt.Errorf("%w: %v", ErrWorkerDied, err)
	}
	w.ending.Store(true) // the request reports it: the watcher's exit adds no second line
	w.proc.Kill()
	p.release(w, false)
	return err, !sent
}

// exitAfter reports a worker that ends after its response; bad is set if that response was invalid.
type exitAfter struct{ bad error }

func (*exitAfter) Error() string { return "worker exits after this response" }

type responseError struct{ err error }

// clientGone reports a response the client did not take all of, from a worker that finished it.
type clientGone struct{ err error }

func (e *clientGone) Error() string { return e.err.Error() }

func (e *responseError) Error() string { return e.err.Error() }

// exchange sends the request and passes the answer on. answered reports that a frame came back,
// sent that the request was written.
func (p *Pool) exchange(w *worker, payload []byte, resp Response) (answered, sent bool, err error) {
	w.out = channel.AppendHeader(w.out[:0], channel.TypeRequest, 0, len(payload))
	w.out = append(w.out, payload...)
	if _, err := w.proc.Conn().Write(w.out); err != nil {
		if p.saidByeLast(w) {
			return false, false, errLeft // it left and closed its channel before the request came
		}
		return false, false, err
	}
	if cap(w.out) > 1<<20 {
		w.out = nil
	}
	answered, err = p.answer(w, resp)
	return answered, true, err
}

func (p *Pool) answer(w *worker, resp Response) (answered bool, err error) {
	headDone := false
	var bad error       // the app's response is invalid: read on to its End, keep the worker
	var gone error      // the client went away mid-response: the worker was told, read on to its End
	var told chan error // the Abort frame's write
	// delivered notes the outcome of passing part of the answer on; calls are skipped once gone.
	delivered := func(err error) {
		if err != nil {
			gone = err
			// As php-fpm notices a client that left when it writes to it: connection_aborted()
			// becomes 1 in the worker, which may stop (or, with ignore_user_abort, finish). The
			// worker may be busy writing; the frame goes out beside this loop's reading.
			told = make(chan error, 1)
			go func() {
				conn := w.proc.Conn()
				conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_, werr := conn.Write(channel.AppendHeader(nil, channel.TypeAbort, 0, 0))
				conn.SetWriteDeadline(time.Time{})
				told <- werr
			}()
		}
	}
	for {
		f, err := w.rd.ReadFrame()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if gone != nil {
				return headDone, &responseError{gone}
			}
			return headDone, err
		}
		switch f.Type {
		case channel.TypeHead:
			if headDone {
				return headDone, fmt.Errorf("%w: second head", channel.ErrProtocol)
			}
			headDone = true
			status, hs, err := channel.ParseHead(f.Payload)
			if errors.Is(err, channel.ErrBadHeader) {
				bad = err
				continue
			}
			if err != nil {
				return headDone, err
			}
			if gone == nil {
				delivered(resp.Head(status, hs))
			}
		case channel.TypeBody:
			if !headDone {
				return headDone, fmt.Errorf("%w: body before head", channel.ErrProtocol)
			}
			if bad != nil {
				continue
			}
			if gone == nil {
				delivered(resp.Body(f.Payload))
			}
			if gone == nil && f.Flags&channel.FlagFlush != 0 {
				delivered(resp.Flush())
			}
		case channel.TypeBye:
			if headDone {
				return headDone, fmt.Errorf("%w: bye mid-response", channel.ErrProtocol)
			}
			return false, errLeft
		case channel.TypeEnd:
			if !headDone {
				return headDone, fmt.Errorf("%w: end before head", channel.ErrProtocol)
			}
			e, err := channel.ParseEnd(f)
			if err != nil {
				return headDone, err
			}
			w.served++
			w.servedTotal.Store(int64(w.served))
			p.progress.Store(time.Now().UnixNano())
			w.memory.Store(e.Memory)
			if e.Exit {
				return headDone, &exitAfter{bad}
			}
			if gone != nil {
				if err := <-told; err != nil {
					return headDone, &responseError{gone}
				}
				// An Abort the worker did not read before its End, it skips before the next request.
				p.release(w, true)
				return headDone, &clientGone{gone}
			}
			p.release(w, true)
			if bad != nil {
				return headDone, fmt.Errorf("%w: %v", ErrBadResponse, bad)
			}
			return headDone, nil
		default:
			return headDone, fmt.Errorf("%w: unexpected frame type %d from worker", channel.ErrProtocol, f.Type)
		}
	}
}

// exitStatus describes a process's exit for the log.
func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Wait blocks until Run has returned.
func (p *Pool) Wait() { <-p.done }
