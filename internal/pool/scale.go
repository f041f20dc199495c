package pool

import (
	"math"
	"sync/atomic"
	"time"
)

// Scaling (Options.MinWorkers < Options.MaxWorkers). The pool keeps a target, the workers it
// keeps alive, which starts at Options.Workers and moves between the bounds; only the owner
// changes it. Request goroutines pay at most an atomic for it: a request that has to wait for a
// worker nudges the owner through a channel of one slot (a burst folds into one nudge), and lend
// raises the peak of workers lent at once only when it is a new peak.
//
// Up: on a nudge, while requests wait and no worker is booting, the target goes up by one (to
// MaxWorkers) and a worker is started; each boot that ends looks again, so a burst adds workers
// one after the other, as fast as they boot (a CoW fork takes milliseconds).
//
// Down: a tick every ScaleDownAfter/scaleTicks records the most workers lent at once during it
// (all of them if a request had to wait). When over the last scaleTicks ticks (ScaleDownAfter)
// at least one worker was never needed, the worker idle longest is retired and the target goes
// down by one, to MinWorkers; at most one a tick (never a canary being judged). A worker need not
// have been idle all along itself: the idle channel hands workers out in turn, so under a light
// load every worker serves now and then while the pool still has one too many.

// scaleTicks is how many ticks ScaleDownAfter is measured in.
const scaleTicks = 4

// defaultScaleDownAfter is ScaleDownAfter when the options leave it at zero.
const defaultScaleDownAfter = 30 * time.Second

// scaling is the part of scaling that request goroutines and Stats touch.
type scaling struct {
	nudge  chan struct{} // a request waits for a worker (one slot; nil without scaling)
	target atomic.Int64  // the target, for Stats (the owner's copy is scaler.target)
	peak   atomic.Int64  // the most workers lent at once since the owner's last tick
	ups    atomic.Uint64 // scale-ups, for Stats
	downs  atomic.Uint64 // scale-downs, for Stats
}

// scaleOptions resolves MinWorkers, MaxWorkers and ScaleDownAfter against Workers (which New has
// made at least 1): zero bounds are Workers, and Workers lies between them.
func scaleOptions(opt *Options) {
	if opt.MinWorkers <= 0 {
		opt.MinWorkers = opt.Workers
	}
	if opt.MaxWorkers <= 0 {
		opt.MaxWorkers = opt.Workers
	}
	opt.MinWorkers = min(opt.MinWorkers, opt.Workers)
	opt.MaxWorkers = max(opt.MaxWorkers, opt.Workers)
	if opt.ScaleDownAfter <= 0 {
		opt.ScaleDownAfter = defaultScaleDownAfter
	}
}

// scales reports whether the pool scales.
func (o *Options) scales() bool { return o.MaxWorkers > o.MinWorkers }

// init sets up the request side of scaling for opt (resolved by scaleOptions).
func (s *scaling) init(opt *Options) {
	if opt.scales() {
		s.nudge = make(chan struct{}, 1)
	}
	s.target.Store(int64(opt.Workers))
}

// waits tells the owner that a request waits for a worker (acquire); it never blocks.
func (s *scaling) waits() {
	select {
	case s.nudge <- struct{}{}:
	default: // a nudge is pending already, or the pool does not scale (nil channel)
	}
}

// lent notes that n workers are lent now (lend): one load unless it is a new peak; nothing
// without scaling.
func (s *scaling) lent(n int64) {
	if s.nudge == nil {
		return
	}
	for m := s.peak.Load(); n > m && !s.peak.CompareAndSwap(m, n); m = s.peak.Load() {
	}
}

// scaler is the owner's scaling state.
type scaler struct {
	target int             // the workers the pool keeps now
	tick   *time.Ticker    // nil without scaling
	peaks  [scaleTicks]int // the most workers in use in each of the last ticks, a ring
	ticks  int             // ticks recorded since the last scale-up (at most scaleTicks count)
	waited uint64          // Stats.MaxWorkersReached at the last tick
}

// newScaler is the owner's scaling state for p.
func newScaler(p *Pool) scaler {
	sc := scaler{target: p.opt.Workers}
	if p.opt.scales() {
		sc.tick = time.NewTicker(max(p.opt.ScaleDownAfter/scaleTicks, time.Millisecond))
	}
	return sc
}

// tickC is the channel of the scale-down ticks (nil without scaling: never ready).
func (sc *scaler) tickC() <-chan time.Time {
	if sc.tick == nil {
		return nil
	}
	return sc.tick.C
}

func (sc *scaler) stop() {
	if sc.tick != nil {
		sc.tick.Stop()
	}
}

// setTarget makes n the target.
func (o *owner) setTarget(n int) {
	o.sc.target = n
	o.p.scale.target.Store(int64(n))
}

// booting counts the workers started and not booted yet.
func (o *owner) booting() int {
	serving := 0
	for w := range o.all {
		if !w.quit {
			serving++
		}
	}
	return o.live - serving
}

// scaleUp adds a worker if requests wait for one, none is booting and the target is below
// MaxWorkers; called on a nudge and after each boot.
func (o *owner) scaleUp() {
	p := o.p
	if !p.opt.scales() || o.stopping || o.retry != nil || o.sc.target >= p.opt.MaxWorkers ||
		p.waiting.Load() == 0 || o.booting() > 0 {
		return
	}
	o.setTarget(o.sc.target + 1)
	o.sc.ticks = 0 // the window of quiet starts again
	p.scale.ups.Add(1)
	p.log.Info("scaled up", "target", o.sc.target, "min", p.opt.MinWorkers, "max", p.opt.MaxWorkers, "waiting", p.waiting.Load())
	o.spawn()
}

// scaleTick records the most workers in use since the last tick and retires one idle worker if
// one was never needed for ScaleDownAfter.
func (o *owner) scaleTick() {
	p := o.p
	sc := &o.sc
	peak := max(int(p.scale.peak.Swap(0)), int(p.busy.Load()))
	if w := p.maxReached.Load(); w != sc.waited || p.waiting.Load() > 0 {
		sc.waited = w
		peak = math.MaxInt // requests waited: every worker was needed
	}
	sc.peaks[sc.ticks%scaleTicks] = peak
	sc.ticks++
	if o.stopping || sc.target <= p.opt.MinWorkers || sc.ticks < scaleTicks || !o.ready() {
		return
	}
	for _, n := range sc.peaks {
		if n >= sc.target {
			return
		}
	}
	// Never the canary being judged: it is an extra worker, and its window's requests judge it.
	w := p.sweepIdle(func(w *worker) bool { return !w.quit && w.marked.Load() == 0 && w != o.trialW })
	if w == nil {
		return // none idle just now
	}
	o.setTarget(sc.target - 1)
	p.scale.downs.Add(1)
	p.log.Info("scaled down", "target", sc.target, "min", p.opt.MinWorkers, "max", p.opt.MaxWorkers, "pid", w.pid)
	w.setReason(ExitScaleDown)
	o.retire(w)
}

// ready reports whether the pool has been ready (its first workers booted): it does not scale
// down before.
func (o *owner) ready() bool {
	select {
	case <-o.p.firstReady:
		return true
	default:
		return false
	}
}
