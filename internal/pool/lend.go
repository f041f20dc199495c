package pool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// Call runs one request on an idle process: call gets the process and talks to it (askr's
// channel, a FastCGI request), and reports what became of the request. Call waits for a process
// (queue_size, queue_timeout), kills the process if the request runs past request_timeout
// (ErrTimeout), counts the request for max_requests, and gives the process back or, if the
// outcome is Broken, kills and replaces it. Errors before call ran are the pool's (ErrQueueFull,
// …); a Broken outcome is returned wrapped in ErrWorkerDied (but see Outcome.ClientGone).
//
// A request is tried on another process only if it never reached the first: it was Unsent (the
// process was gone already), at most three tries in all; or the process said it was Left (it was
// ending between requests and never read it), which is no try: each is a worker that served a
// request and is replaced; at most maxLeft for one request. A Bye from a process that has answered
// no request yet is not believed: the runtime reads a worker's first request in the call that said
// Hello, so it is treated as a death. A request whose process died while it had it gets
// ErrWorkerDied, whatever its method: running it again could crash process after process (a query
// of death), so the one that died is the only one. All tries wait for a process within one
// queue_timeout, counted from the first; call must be able to send its request again.
//
// v (may be nil) is the request as the pool records it: see Visit.
func (p *Pool) Call(ctx context.Context, v *Visit, call func(Process) Outcome) error {
	p.accepted.Add(1)
	c := calling{v: v, arrived: time.Now()}
	if v != nil && v.Start.IsZero() {
		v.Start = c.arrived
	}
	deadline := c.arrived.Add(p.opt.QueueTimeout)
	left := 0
	for try := 1; ; {
		again, err := p.callOnce(ctx, deadline, try > 1 || left > 0, &c, call)
		switch again {
		case tryLeft:
			if left++; left > maxLeft {
				return fmt.Errorf("%w: %d workers left before reading the request; the last: %v", ErrWorkerDied, left, err)
			}
			p.log.Debug("worker left before reading the request; trying another", "err", err, "left", left)
			continue
		case tryUnsent:
			if try == 3 {
				return fmt.Errorf("%w: %v", ErrWorkerDied, err)
			}
			p.log.Warn("worker was gone before the request reached it; trying another", "err", err, "try", try)
			try++
			continue
		}
		return err
	}
}

// calling is one Call's state across its tries.
type calling struct {
	v       *Visit    // the caller's, or nil
	arrived time.Time // when Call began
	queued  bool      // it waited for a process (counted in MaxWorkersReached)
}

// maxLeft bounds the Byes one request meets, in all. A worker that leaves after every request
// answers about every second request handed to it with Bye; 16 in a row is chance 1 in 65 536.
const maxLeft = 16

// again says whether a try of Call is followed by another.
type again int

const (
	tryNot    again = iota
	tryLeft         // the process left before it read the request
	tryUnsent       // the request never reached the process
)

// callOnce runs one try of Call.
func (p *Pool) callOnce(ctx context.Context, deadline time.Time, retry bool, c *calling, call func(Process) Outcome) (again, error) {
	l, err := p.lend(ctx, deadline, retry, c)
	if err != nil {
		return tryNot, err
	}
	yield := false // see below; after giveBack (defers run last first), so that the worker is not counted busy twice
	defer func() {
		if yield {
			runtime.Gosched()
		}
	}()
	defer l.giveBack(p)
	w := l.w
	o := call(w.proc)
	end := time.Now()
	slow := !l.state.CompareAndSwap(loanRunning, loanEnded)
	if slow {
		<-l.slowDone // the worker is neither given back nor stopped while its stack is read
	}
	if v := c.v; v != nil {
		v.Upstream, v.PID = end.Sub(l.start), w.pid
		v.Slow = v.Slow || slow
	}
	if o.Left {
		if w.served > 0 {
			// Nothing reached PHP: the worker ends by itself (not killed: its shutdown runs to the end).
			p.leaving(w)
			p.release(w, false)
			return tryLeft, fmt.Errorf("%w: worker pid %d", errLeft, w.pid)
		}
		// The runtime says Bye only after an End: a worker's first askr_handle_request() call says
		// Hello and reads its first request. A Bye before any answer is not believed: the worker
		// may have read the request and died of it, and running it again could cost worker after
		// worker. It counts as a worker that ended without a word.
		p.log.Warn("worker said Bye before answering any request; treated as a worker that died", "pid", w.pid)
		// A request that could not even be written (Unsent) is tried on another worker.
		o = Outcome{Err: errors.New("no answer: Bye before any answer"), Broken: true, Unsent: o.Unsent}
	}
	if l.timedOut.Load() && (o.Err != nil || o.Broken) {
		// request_timeout killed the worker: whatever the request's function saw after is the
		// kill's doing (504), and the worker does not serve again.
		w.ending.Store(true)
		p.judged(w, 504, l.start, end)
		p.release(w, false)
		return tryNot, ErrTimeout
	}
	if !o.Broken && !o.Unsent {
		w.answered(&o, end.Sub(l.start))
		if p.judge.Load() != nil {
			p.judged(w, answerStatus(&o), l.start, end)
		}
		p.served.Add(1)
		p.progress.Store(end.UnixNano())
		keep := !o.Exits
		if o.Exits {
			w.setReason(ExitExit)
			w.ending.Store(true) // it exits by itself: its exit is this request's news
		} else if p.limitsMemory() && p.overMemory(w, end) {
			w.setReason(ExitMemory)
			keep = false
		}
		p.release(w, keep)
		// A request waits for this worker and was just made runnable here: let it run now (once
		// giveBack has ended this loan), so the worker gets its next request before this goroutine
		// writes its own answer to the client (its goroutine goes to the back of the run queue, or
		// to the other CPU).
		yield = keep && p.waiting.Load() > 0
		return tryNot, o.Err
	}
	switch {
	case o.ClientGone:
		w.setReason(ExitAbort) // killed only because its client left
	case !o.Unsent:
		w.setReason(ExitCrash) // it died with the request, or broke its protocol: killed now
		p.judged(w, 502, l.start, end)
	}
	w.ending.Store(true) // the request reports it: the watcher's exit adds no second line
	w.proc.Kill()
	p.release(w, false)
	switch {
	case o.Unsent:
		return tryUnsent, fmt.Errorf("worker pid %d: %v", w.pid, o.Err)
	case o.ClientGone:
		return tryNot, o.Err
	}
	return tryNot, fmt.Errorf("%w: worker pid %d: %v", ErrWorkerDied, w.pid, o.Err)
}

// answerStatus is the status the client got for an answered request: 502 for an answer the
// application got wrong, else the process's.
func answerStatus(o *Outcome) int {
	if o.Err != nil && errors.Is(o.Err, ErrBadResponse) {
		return 502
	}
	return o.Status
}

// errLeft marks a worker that said Bye instead of taking the request.
var errLeft = errors.New("worker left between requests")

// loan is one request's use of a worker.
type loan struct {
	w        *worker
	timedOut atomic.Bool // request_timeout ran out and the worker was killed
	timer    *time.Timer // request_timeout
	slowT    *time.Timer // Options.SlowAfter
	n        int64       // the worker's loan number
	// state ends the race between the request's end and SlowAfter: whichever moves it from
	// loanRunning first decides whether the request was slow.
	state atomic.Int32
	// slowDone is closed once OnSlow has returned (made only with SlowAfter): a request that ended
	// while its slow log was being read waits for it, so that the worker's stack is still this
	// request's when it is read, and its pid still the worker's.
	slowDone chan struct{}
	start    time.Time // when the process got the request
	visit    Visit     // the request as WorkerInfo.Current and OnSlow show it; set before the loan is seen
}

const (
	loanRunning int32 = iota
	loanEnded
	loanSlow
)

// lend takes an idle worker for one request (see acquire) and marks it busy; past request_timeout
// the worker is killed and timedOut says so, past SlowAfter the request is marked slow.
func (p *Pool) lend(ctx context.Context, deadline time.Time, retry bool, c *calling) (*loan, error) {
	asked := c.arrived
	if retry {
		asked = time.Now()
	}
	w, waited, err := p.acquire(ctx, deadline, retry, c)
	now := asked // an idle worker at once: no time.Now (a hello world's request is a few µs)
	if waited {
		now = time.Now()
	}
	if c.v != nil {
		c.v.QueueWait += now.Sub(asked)
	}
	if err != nil {
		return nil, err
	}
	p.scale.lent(p.busy.Add(1))
	w.busy.Store(true)
	// The worker goes back to the idle channel (release) before this loan's bookkeeping ends: the
	// loan number keeps a late timer or giveBack from touching the worker's next request.
	l := &loan{w: w, n: w.loans.Add(1), start: now}
	if c.v != nil {
		l.visit = *c.v
	} else {
		l.visit.Start = c.arrived
	}
	l.visit.PID = w.pid
	if p.opt.RequestTimeout > 0 {
		l.timer = time.AfterFunc(p.opt.RequestTimeout, func() {
			if w.loans.Load() != l.n {
				return
			}
			l.timedOut.Store(true)
			w.setReason(ExitTimeout)
			w.ending.Store(true) // acquire never hands out an ending worker
			w.proc.Kill()
		})
	}
	if p.opt.SlowAfter > 0 {
		l.slowDone = make(chan struct{})
		l.slowT = time.AfterFunc(p.opt.SlowAfter, func() { p.slowRequest(l) })
	}
	w.cur.Store(l)
	return l, nil
}

// slowRequest marks a request that ran past SlowAfter, unless it ended first, and tells OnSlow
// (on the timer's goroutine).
func (p *Pool) slowRequest(l *loan) {
	if !l.state.CompareAndSwap(loanRunning, loanSlow) {
		return
	}
	defer close(l.slowDone)
	p.slow.Add(1)
	if p.opt.OnSlow != nil {
		v := l.visit
		v.Slow = true
		p.opt.OnSlow(l.w.pid, &v, time.Since(l.start))
	}
}

// giveBack ends the loan's bookkeeping (not the worker's release), and the hold acquire took.
func (l *loan) giveBack(p *Pool) {
	if l.timer != nil {
		l.timer.Stop()
	}
	if l.slowT != nil {
		l.slowT.Stop()
	}
	l.w.cur.CompareAndSwap(l, nil)
	if l.w.loans.Load() == l.n {
		l.w.busy.Store(false)
	}
	p.busy.Add(-1)
	l.w.hold(false)
}

// testHookTaken, if set (by tests only), runs in takeIdle right after the claim.
var testHookTaken func(*worker)

// takeIdle takes a worker received from the idle channel for a request or a ping. On true the
// caller has its claim and a loan of its process (hold), which it ends with hold(false). False: it
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
	w.hold(true) // before the claim: run's exit() must not close the process under Left below
	if !w.take() {
		w.hold(false)
		return false // exited; run has it
	}
	if testHookTaken != nil {
		testHookTaken(w)
	}
	if w.dead.Load() {
		w.claim.Store(claimReaped)
		if !p.stopping() && !w.ending.Load() { // stopping: exits are expected
			p.reportIdleExit(w)
		}
		w.hold(false)
		return false
	}
	if r := w.marked.Load(); r > 0 {
		// Marked for retirement as it went back to the idle channel (see owner.mark).
		w.setReason(ExitReason(r - 1))
		p.release(w, false)
		w.hold(false)
		return false
	}
	return true
}

// acquire waits for an idle worker until deadline (queue_timeout from when the request arrived)
// and returns it claimed and held (see takeIdle); waited reports that there was none at once. A
// request tried again (retry) waits for its next worker whatever the queue's length: it was
// admitted already.
func (p *Pool) acquire(ctx context.Context, deadline time.Time, retry bool, c *calling) (w *worker, waited bool, err error) {
	for {
		select {
		case w := <-p.idle:
			if !p.takeIdle(w) {
				continue // exited, or killed, while idle; run replaces it
			}
			return w, waited, nil
		default:
		}
		waited = true
		select {
		case <-p.closing:
			return nil, waited, ErrClosed
		case <-p.refusing:
			return nil, waited, ErrClosed
		default:
		}
		if p.failing.Load() && p.ready.Load() == 0 {
			return nil, waited, ErrUnavailable
		}
		n := p.waiting.Add(1)
		if n > int64(p.opt.QueueSize) && !retry {
			p.waiting.Add(-1)
			return nil, waited, ErrQueueFull
		}
		p.queued(n, c)
		p.scale.waits()
		w, err := p.wait(ctx, deadline)
		if err != nil {
			return nil, waited, err
		}
		if p.takeIdle(w) {
			return w, waited, nil
		}
	}
}

// queued counts a request that waits for a process, the nth waiting now.
func (p *Pool) queued(n int64, c *calling) {
	if !c.queued {
		c.queued = true
		p.maxReached.Add(1)
	}
	for m := p.waitingMax.Load(); n > m && !p.waitingMax.CompareAndSwap(m, n); m = p.waitingMax.Load() {
	}
}

// wait waits in the queue (counted in waiting) for a worker to come to the idle channel.
func (p *Pool) wait(ctx context.Context, deadline time.Time) (*worker, error) {
	defer p.waiting.Add(-1)
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case w := <-p.idle:
		return w, nil
	case <-t.C:
		return nil, ErrQueueTimeout
	case <-p.closing:
		return nil, ErrClosed
	case <-p.refusing:
		p.refused.Add(1)
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// release gives a worker back after a request or a ping; one that is not reusable, or is due for
// retirement (see retiring), is retired and replaced. One whose generation has been replaced goes
// to the owner, which replaces it when that keeps capacity (owner.outdated).
func (p *Pool) release(w *worker, reusable bool) {
	if reusable {
		if r, retire := p.retiring(w); retire {
			w.setReason(r)
			reusable = false
		}
	}
	if p.stopping() {
		reusable = false
	}
	switch {
	case !reusable:
		p.events <- event{kind: evRetire, w: w}
	case w.gen < p.current(): // its template, or its worker script, has been replaced
		p.events <- event{kind: evOutdated, w: w}
	case len(p.opt.ReforkAfter) > 0 && p.reforkDue(w):
		// the next template now
	default:
		w.claim.Store(claimIdle)
		p.idle <- w
	}
}

// retiring reports whether a worker that could serve again is due for retirement, and why: it was
// marked (Recycle, max_private_memory), or it has served max_requests.
func (p *Pool) retiring(w *worker) (ExitReason, bool) {
	switch r := w.marked.Load(); {
	case r > 0:
		return ExitReason(r - 1), true
	case p.opt.MaxRequests > 0 && w.served >= p.opt.MaxRequests:
		return ExitMaxRequests, true
	}
	return 0, false
}
