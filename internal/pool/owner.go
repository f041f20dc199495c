package pool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/askr-php/askr/internal/proc"
)

type eventKind int

const (
	evBooted     eventKind = iota // a new worker greeted
	evBootFailed                  // a boot failed (err)
	evExited                      // a worker's process exited
	evRetire                      // a request or a ping gave a worker back that must not serve again
	evRotate                      // a CoW template was replaced: retire the old generation
	evCanary                      // a reload's canary serves
	evRecycle                     // Recycle(pid): retire that worker after its request
	evMark                        // retire w after its request, for reason
	evTrial                       // a canary to judge serves next to the old generation (rollout.go)
	evVerdict                     // the judged canary passed (err nil: the old generation rolls over) or is rolled back
	evPromote                     // a refork takes w out of the books: it becomes the next template
	evOutdated                    // a request or a ping gave back a worker of a replaced generation
)

type event struct {
	kind   eventKind
	w      *worker
	err    error
	pid    int        // evRecycle's
	reply  chan error // evRecycle's answer
	reason ExitReason // evMark's
}

// owner is the state of the goroutine that owns the workers (Run); each event has its method.
type owner struct {
	p          *Pool
	all        map[*worker]bool // every process not yet exited
	live       int              // booting or serving, not retired
	booted     int              // first-boot progress, for Ready
	everBooted bool             // a worker has booted: boot failures are retried from now on
	firstErr   error            // the first boot failure while none has booted
	failures   int              // boot failures in a row
	retry      <-chan time.Time // non-nil while backing off after a failed boot
	stopping   bool
	killAll    <-chan time.Time // stop_timeout after the pool began to stop
	sc         scaler           // the target (see scale.go)
	trialW     *worker          // the canary being judged (see extra)
}

// Run supervises the workers until ctx is done, then stops them all (idle ones at once, busy ones
// after their request) and returns nil when every worker process has exited.
//
// A first generation in which no worker boots is fatal: once every boot started before any worker
// ever booted has failed, Run returns the first failure (PHP's error) and the pool is closed. After
// a worker has booted once, failed boots are retried with back-off (100 ms doubling up to 10 s).
func (p *Pool) Run(ctx context.Context) error {
	defer close(p.done)
	o := &owner{p: p, all: map[*worker]bool{}, sc: newScaler(p)}
	defer o.sc.stop()
	o.spawn()
	stop := ctx.Done()
	for !o.stopping || len(o.all) > 0 || o.live > 0 {
		select {
		case <-stop:
			stop = nil // seen; keep looping until the workers are gone
			o.stop()
		case <-o.killAll:
			o.kill()
		case <-o.retry:
			o.retry = nil
			o.spawn()
		case reply := <-p.snaps:
			reply <- o.snapshot()
		case <-p.scale.nudge:
			o.scaleUp()
		case <-o.sc.tickC():
			o.scaleTick()
		case ev := <-p.events:
			if err := o.event(ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// event handles one event; an error ends Run (no worker of the first generation booted).
func (o *owner) event(ev event) error {
	switch ev.kind {
	case evBooted:
		o.bootedOne(ev.w)
	case evBootFailed:
		return o.bootFailed(ev.err)
	case evCanary:
		o.canary(ev.w)
	case evRotate:
		o.rotate()
	case evRetire:
		o.retired(ev.w)
	case evExited:
		o.exited(ev.w)
	case evRecycle:
		ev.reply <- o.recycle(ev.pid)
	case evMark:
		o.mark(ev.w, ev.reason)
	case evTrial:
		o.trial(ev.w)
	case evVerdict:
		o.verdict(ev.w, ev.err)
	case evPromote:
		o.promote(ev.w)
	case evOutdated:
		o.outdated(ev.w)
	}
	return nil
}

// spawn boots workers until the pool has its target, unless it is backing off.
func (o *owner) spawn() {
	for o.live < o.sc.target+o.extra() && o.retry == nil {
		o.live++
		go o.p.boot()
	}
}

// retire stops a worker no request holds.
func (o *owner) retire(w *worker) {
	w.quit = true
	o.live--
	o.p.stopWorker(w)
}

// replace retires a worker no request holds and starts its successor.
func (o *owner) replace(w *worker) {
	o.retire(w)
	o.spawn()
}

// stop begins the pool's stop: requests get ErrClosed, idle workers are stopped, and busy ones
// after their request; stop_timeout later the rest are killed.
func (o *owner) stop() {
	o.stopping = true
	o.p.closeOnce.Do(func() { close(o.p.closing) })
	o.retry = nil
	o.killAll = time.After(o.p.opt.StopTimeout)
	for {
		select {
		case w := <-o.p.idle:
			o.retire(w)
		default:
			return
		}
	}
}

// kill kills the workers still running stop_timeout after the pool began to stop.
func (o *owner) kill() {
	for w := range o.all {
		o.p.log.Warn("worker did not stop in time; killing", "pid", w.pid)
		w.proc.Kill()
	}
	o.killAll = nil
}

func (o *owner) snapshot() []WorkerInfo {
	infos := make([]WorkerInfo, 0, len(o.all))
	current := o.p.current()
	for w := range o.all {
		info := WorkerInfo{PID: w.pid, Generation: w.gen, Busy: w.cur.Load() != nil, Served: w.servedTotal.Load(),
			Memory: w.memory.Load(), Peak: w.peak.Load(), Started: w.started, Last: time.Duration(w.last.Load())}
		if l := w.cur.Load(); l != nil {
			v := l.visit
			v.Slow = l.state.Load() == loanSlow
			info.Current = &v
		}
		maxReq := o.p.opt.MaxRequests
		info.Recycling = w.quit || w.marked.Load() > 0 ||
			info.Busy && (w.gen < current || maxReq > 0 && info.Served+1 >= int64(maxReq))
		infos = append(infos, info)
	}
	return infos
}

// firstBoot notes a booted worker: from now on failed boots are retried. Boots of the first
// generation that failed before are retried now, with back-off.
func (o *owner) firstBoot() {
	if !o.everBooted && o.failures > 0 && !o.stopping {
		delay := backoff(o.failures)
		o.p.log.Error("worker failed to boot", "err", o.firstErr, "failed", o.failures, "retry_in", delay)
		o.retry = time.After(delay)
	}
	o.everBooted = true
}

// adopt starts watching a worker that greeted.
func (o *owner) adopt(w *worker) {
	o.all[w] = true
	go o.p.watch(w)
	o.p.ready.Add(1)
}

// bootedOne takes in a worker that booted: it goes to the idle channel and retires one of an
// older generation.
func (o *owner) bootedOne(w *worker) {
	p := o.p
	p.progress.Store(time.Now().UnixNano())
	o.firstBoot()
	o.failures = 0
	p.failing.Store(false)
	o.adopt(w)
	if o.stopping {
		o.retire(w)
		return
	}
	if w.gen < p.current() { // forked from a template that was replaced while it booted
		w.setReason(ExitReload)
		o.replace(w)
		return
	}
	p.log.Debug("worker ready", "pid", w.pid, "generation", w.gen)
	p.retireOneOld(w.gen, o.replace)
	select {
	case p.idle <- w:
	default: // cannot happen: live ≤ MaxWorkers + a canary < the channel's size, and dead workers are purged
		p.log.Error("idle queue full; stopping the extra worker", "pid", w.pid)
		o.retire(w)
	}
	if o.booted++; o.booted == p.opt.Workers { // after the idle channel has it: Ready means it can serve
		p.readyOnce.Do(func() { close(p.firstReady) })
	}
	o.scaleUp() // requests may still wait
	o.rollCheck()
}

// bootFailed notes a failed boot: retried after a back-off, or, while no worker ever booted and
// none is booting any more, the end of Run.
func (o *owner) bootFailed(err error) error {
	p := o.p
	o.live--
	o.failures++
	if p.ready.Load() == 0 {
		p.failing.Store(true)
	}
	switch {
	case o.stopping:
	case !o.everBooted:
		// Not retried: either a worker of this first generation boots, or none does and askrd
		// cannot serve PHP at all.
		if o.firstErr == nil {
			o.firstErr = err
		}
		if o.live == 0 {
			p.closeOnce.Do(func() { close(p.closing) })
			return fmt.Errorf("no worker booted (%d tried): %w", o.failures, o.firstErr)
		}
	default:
		delay := backoff(o.failures)
		p.log.Error("worker failed to boot", "err", err, "retry_in", delay)
		o.retry = time.After(delay)
	}
	o.rollCheck()
	return nil
}

// canary takes in a reload's canary, which has booted and answered: it replaces one old worker,
// and the rest follow one at a time (each new worker that comes up retires the next).
func (o *owner) canary(w *worker) {
	p := o.p
	if !o.takeIn(w) {
		return
	}
	p.retireOneOld(w.gen, o.retire)
	select {
	case p.idle <- w:
	default:
		o.retire(w)
	}
	p.retireOneOld(w.gen, o.replace)
	o.rollCheck()
}

// takeIn adopts a canary, which booted outside spawn, as one more live worker; false if the pool
// is stopping (it is retired at once).
func (o *owner) takeIn(w *worker) bool {
	o.firstBoot()
	o.adopt(w)
	o.live++
	if o.stopping {
		o.retire(w)
		return false
	}
	return true
}

// rotate starts retiring the workers of a replaced template.
func (o *owner) rotate() {
	if !o.stopping {
		o.p.retireOneOld(o.p.current(), o.replace)
	}
}

// retired stops a worker a request or a ping gave back unfit to serve again, and replaces it.
func (o *owner) retired(w *worker) {
	if !w.quit {
		w.quit = true
		o.live--
	}
	o.p.stopWorker(w)
	if !o.stopping {
		o.spawn()
	}
}

// outdated takes a worker of a replaced generation that a request or a ping gave back fit to
// serve: it is retired and replaced now if no worker is booting, else it goes back to the idle
// channel and serves on (the next worker that boots retires an idle old one: bootedOne). So a roll
// has at most one worker down at a time, however busy the old ones are.
func (o *owner) outdated(w *worker) {
	if w.dead.Load() || w.quit || o.stopping || w.marked.Load() > 0 || o.booting() == 0 {
		if r := w.marked.Load(); r > 0 {
			w.setReason(ExitReason(r - 1)) // marked (Recycle) after its request had gone
		} else if !w.dead.Load() {
			w.setReason(ExitReload)
		}
		o.retired(w)
		return
	}
	w.claim.Store(claimIdle)
	select {
	case o.p.idle <- w:
	default:
		o.retired(w)
	}
}

// exited takes a worker whose process exited out of the books and replaces it.
func (o *owner) exited(w *worker) {
	p := o.p
	if !o.all[w] {
		return // a refork's template, the Stager's now (promote)
	}
	delete(o.all, w)
	p.purgeIdle()
	p.ready.Add(-1)
	if !w.quit {
		w.quit = true
		o.live--
	}
	// A worker that exits during a request is the request's news (exit() after its response, or
	// 502): one event, one line. A request holds its claim until the worker is idle again or
	// ending, so only an idle worker's exit is reported here (or by a request that claimed it as it
	// exited: see takeIdle). A worker that said Bye to a request or a ping is reported once its
	// exit status is known (see leaving).
	switch {
	case w.byeAndExit.Add(1) == 2:
		p.logLeft(w)
	case o.stopping, w.ending.Load():
	case w.claim.CompareAndSwap(claimIdle, claimReaped):
		p.reportIdleExit(w)
	}
	p.exitedOne(w, w.exitReason(o.stopping))
	w.exit()
	if !o.stopping {
		o.spawn()
	}
	o.rollCheck()
}

// backoff is the delay before booting again after failures boot failures in a row.
func backoff(failures int) time.Duration {
	return min(100*time.Millisecond<<min(failures-1, 7), 10*time.Second)
}

// boot starts a worker and waits for its greeting (on its own goroutine); run gets the outcome.
func (p *Pool) boot() {
	started := time.Now()
	pr, err := p.start.Start()
	if err != nil {
		p.events <- event{kind: evBootFailed, err: err}
		return
	}
	w, err := p.greet(pr, started)
	if err != nil {
		p.events <- event{kind: evBootFailed, err: err}
		return
	}
	p.events <- event{kind: evBooted, w: w}
}

// greet waits for a new process's greeting (boot_timeout) and returns its worker; a process that
// does not greet is killed and the error says why, with its last output. A pool that stops
// meanwhile does not wait for the greeting (boot_timeout may be 0: no limit): the process is
// killed, which ends it. started is when the process was asked for (Options.Booted is told how
// long it took).
func (p *Pool) greet(pr Process, started time.Time) (*worker, error) {
	greeted := make(chan struct{})
	go func() {
		select {
		case <-p.closing:
			pr.Kill()
		case <-greeted:
		}
	}()
	h, err := pr.Greet(p.opt.BootTimeout)
	close(greeted)
	if err == nil {
		if p.opt.Booted != nil {
			p.opt.Booted(time.Since(started))
		}
		w := &worker{proc: pr, pid: h.PID, gen: p.gen.Load(), started: started}
		if h.Limits.Known {
			p.limits.Store(&h.Limits)
		}
		if g, ok := pr.(generational); ok {
			w.gen = g.Generation()
		}
		if p.limitsMemory() {
			if w.mem, err = p.openMem(w.pid); err != nil {
				p.log.Warn("cannot read the worker's memory; max_rss and max_private_memory do not apply to it", "pid", w.pid, "err", err)
			}
		}
		return w, nil
	}
	pr.Kill()
	<-pr.Done()
	pr.Close()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("worker pid %d: %v within boot_timeout (%v); killed", pr.PID(), err, p.opt.BootTimeout)
	} else {
		err = fmt.Errorf("worker pid %d (%s): %w", pr.PID(), proc.ExitStatus(pr.Err()), err)
	}
	if tail := pr.Tail(); tail != "" {
		err = fmt.Errorf("%w; last output:\n%s", err, tail)
	}
	return nil, err
}

func (p *Pool) watch(w *worker) {
	<-w.proc.Done()
	w.dead.Store(true)
	select {
	case p.events <- event{kind: evExited, w: w}:
	case <-p.done: // a refork's template that outlived the pool
	}
}

// stopWorker asks an idle worker to leave; called by run only for workers no request holds.
func (p *Pool) stopWorker(w *worker) {
	w.ending.Store(true)
	if w.dead.Load() || w.left.Load() {
		return // it ends by itself: a Stop (or a kill, if it cannot be sent) would only cut its shutdown short
	}
	if err := w.proc.Stop(); err != nil {
		w.proc.Kill()
	}
}

// reportIdleExit logs the exit of a worker that was idle, for its claimant (claimReaped).
func (p *Pool) reportIdleExit(w *worker) {
	if w.proc.Left() {
		w.left.Store(true)
		p.logLeft(w)
		return
	}
	p.log.Warn("worker exited unexpectedly; replacing it", "pid", w.pid, "status", proc.ExitStatus(w.proc.Err()))
}

// logLeft notes the exit of a worker that said Bye: it ended on its own between requests (a break
// or exit() in its loop, an uncaught exception there, exit() in an askr_defer() callback). No
// request is lost, and the runtime has logged the event in the worker's log: here it is only debug
// detail, unless a signal ended the process after its Bye (a crash in PHP's module shutdown).
// While the pool stops, a signal is askrd's kill of a worker that did not end in time, which is
// logged where it is sent.
func (p *Pool) logLeft(w *worker) {
	err := w.proc.Err()
	if proc.Signaled(err) && !p.stopping() {
		p.log.Warn("worker said it was leaving between requests, then died of a signal", "pid", w.pid, "status", proc.ExitStatus(err))
		return
	}
	p.log.Debug("worker left between requests; replacing it", "pid", w.pid, "served", w.servedTotal.Load(), "status", proc.ExitStatus(err))
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
		old.setReason(ExitReload)
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
