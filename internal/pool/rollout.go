package pool

// Rollouts: a reload, or a refork, boots one canary of the next generation and puts it into
// rotation; with Options.Canary it serves next to the old generation for a window and is judged
// against it on those requests. Then the old generation is replaced one worker at a time (each
// after its current request), or the canary is retired and the old generation goes on.

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/askr-php/askr/internal/proc"
)

// errRolling is a reload's error while another reload or a refork judges its canary.
var errRolling = errors.New("a reload is already running")

// Reload replaces every worker with one of the next generation: in CoW mode (the Starter is a
// Stager) forked from a new template booted from the files as they are now, else one that runs
// the worker script afresh. One canary boots first and must answer a ping; with Options.Canary it
// then serves next to the old workers for Canary.Window and is judged against them (see
// judge.verdict). Only then do the others roll over, each after its current request; Reload
// returns then, before the roll ends (Stats().Rollout follows it). A template that fails to boot,
// a canary that fails, or one rolled back leaves the old workers serving and Reload says why.
func (p *Pool) Reload() error {
	_, stager := p.start.(Stager)
	if _, ok := p.start.(generational); ok && !stager {
		return errors.New("reload: the workers come from a CoW template that cannot be replaced; restart askrd instead")
	}
	if !p.judging.CompareAndSwap(judgeFree, judgeReload) {
		switch {
		case p.judging.Load() != judgeRefork:
			return fmt.Errorf("reload: %w", errRolling)
		case p.opt.Canary.Enabled:
			return fmt.Errorf("reload: a refork's canary is being judged; try again after canary_window %v", p.opt.Canary.Window)
		}
		return errors.New("reload: a refork is staging the next template; try again in a moment")
	}
	defer p.judging.Store(judgeFree)
	return p.roll(nil, "reload")
}

// Who holds Pool.judging: a reload or a refork from its start to its canary's verdict.
const (
	judgeFree int32 = iota
	judgeReload
	judgeRefork
)

// roll runs a rollout (cause "reload" or "refork"; from: the worker a refork promotes) while the
// caller holds judging.
func (p *Pool) roll(from Process, cause string) error {
	st, cow := p.start.(Stager)
	now := p.current()
	p.beginRollout(Rollout{State: RolloutRolling, Cause: cause, From: now, To: now + 1, Started: time.Now()})
	if cow {
		if err := st.Stage(from); err != nil {
			return p.abortRollout(fmt.Errorf("%s: the new template did not boot: %w", cause, err))
		}
	}
	w, err := p.bootCanary(st, cow, cause, now+1)
	if err != nil {
		if cow {
			st.Abandon()
		}
		return p.abortRollout(err)
	}
	p.updateRollout(func(r *Rollout) { r.Canary, r.To = w.pid, w.gen })
	if !p.opt.Canary.Enabled {
		p.commit(st, cow, w.gen, RolloutOK, "the canary answered a ping (canary judging off)")
		if err := p.toOwner(event{kind: evCanary, w: w}); err != nil {
			return p.abortRollout(p.canaryFailed(w, cause, err))
		}
		p.log.Info(cause+": canary serves; rolling the other workers over", "pid", w.pid, "generation", w.gen)
		return nil
	}
	return p.judgeCanary(st, cow, cause, w, now)
}

// bootCanary starts the canary of generation gen (from the staged template in CoW mode) and
// waits for its hello and its pong.
func (p *Pool) bootCanary(st Stager, cow bool, cause string, gen int64) (*worker, error) {
	started := time.Now()
	var pr Process
	var err error
	if cow {
		pr, err = st.StartStaged()
	} else {
		pr, err = p.start.Start()
	}
	if err != nil {
		return nil, fmt.Errorf("%s canary: %w", cause, err)
	}
	w, err := p.greet(pr, started)
	if err != nil {
		return nil, fmt.Errorf("%s canary: %w", cause, err)
	}
	if !cow {
		w.gen = gen
	}
	if err := p.ping(w, 5*time.Second); err != nil {
		return nil, p.canaryFailed(w, cause, err)
	}
	return w, nil
}

// canaryFailed kills a canary that greeted but cannot serve, and says why.
func (p *Pool) canaryFailed(w *worker, cause string, err error) error {
	w.proc.Kill()
	<-w.proc.Done()
	w.close()
	if tail := w.proc.Tail(); tail != "" {
		err = fmt.Errorf("%w; last output:\n%s", err, tail)
	}
	return fmt.Errorf("%s canary pid %d: %w", cause, w.pid, err)
}

// judgeCanary puts the canary into rotation next to the old generation (from) for the window,
// then commits it and rolls on, or rolls it back.
func (p *Pool) judgeCanary(st Stager, cow bool, cause string, w *worker, from int64) error {
	c := p.opt.Canary
	j := &judge{canary: w, from: from}
	p.judge.Store(j)
	if err := p.toOwner(event{kind: evTrial, w: w}); err != nil {
		p.judge.Store(nil)
		if cow {
			st.Abandon()
		}
		return p.abortRollout(p.canaryFailed(w, cause, err))
	}
	p.log.Info(cause+": canary serves; judging it next to the old workers", "pid", w.pid, "generation", w.gen, "window", c.Window)
	t := time.NewTimer(c.Window)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.closing: // the pool stops the canary with the other workers
		p.judge.Store(nil)
		if cow {
			st.Abandon()
		}
		return p.abortRollout(fmt.Errorf("%s: the pool stopped during the canary window", cause))
	}
	p.judge.Store(nil)
	var running time.Duration // how long the canary has had the request it has now
	if l := w.cur.Load(); l != nil {
		running = time.Since(l.start)
	}
	state, detail := j.verdict(c, running)
	if gone := canaryGone(w); gone != "" {
		state, detail = RolloutAborted, fmt.Sprintf("canary pid %d %s during its window", w.pid, gone)
	}
	if state == RolloutAborted {
		p.toOwner(event{kind: evVerdict, w: w, err: errors.New(detail)})
		if cow {
			st.Abandon()
		}
		p.log.Error(cause+": canary rolled back; the old workers go on serving", "pid", w.pid, "generation", w.gen, "cause", detail)
		return p.abortRollout(fmt.Errorf("%s rolled back: %s", cause, detail))
	}
	if state == RolloutInconclusive {
		p.log.Warn(cause+": canary verdict inconclusive; rolling on", "pid", w.pid, "generation", w.gen, "detail", detail)
	}
	p.commit(st, cow, w.gen, state, detail)
	p.toOwner(event{kind: evVerdict, w: w})
	p.log.Info(cause+": canary passed; rolling the other workers over", "pid", w.pid, "generation", w.gen, "detail", detail)
	return nil
}

// canaryGone says how the canary died, if it did: a canary that crashed, was killed by
// request_timeout or exited unasked (between requests too) must not pass. One the pool retired
// (max_requests, memory, recycle) or that ended as its script asked (exit(), a Bye) is judged on
// the requests it answered.
func canaryGone(w *worker) string {
	dead := false
	select {
	case <-w.proc.Done():
		dead = true
	default:
	}
	switch r := w.reason.Load(); {
	case r == int32(ExitCrash)+1 || r == int32(ExitTimeout)+1:
		return "ended (" + ExitReason(r-1).String() + ")"
	case dead && r == 0 && !w.left.Load() && !w.ending.Load():
		return "exited (" + proc.ExitStatus(w.proc.Err()) + ")"
	}
	return ""
}

// commit makes gen the generation new workers have; the rollout ends in state once no older
// worker remains.
func (p *Pool) commit(st Stager, cow bool, gen int64, state, detail string) {
	p.updateRollout(func(r *Rollout) { r.Detail, p.rollFinal = detail, state })
	if cow {
		st.Commit()
	} else {
		p.gen.Store(gen)
	}
	p.updateRollout(func(*Rollout) { p.rollPending.Store(true) }) // after the commit: see rollCheck
}

// toOwner hands the owner an event, unless the pool has stopped.
func (p *Pool) toOwner(ev event) error {
	select {
	case p.events <- ev:
		return nil
	case <-p.done:
		return ErrClosed
	}
}

// beginRollout records a rollout that starts.
func (p *Pool) beginRollout(r Rollout) {
	p.rollMu.Lock()
	defer p.rollMu.Unlock()
	p.rollout, p.rollFinal = r, ""
	p.rollPending.Store(false)
	p.rollActive.Store(true)
}

func (p *Pool) updateRollout(f func(*Rollout)) {
	p.rollMu.Lock()
	f(&p.rollout)
	p.rollMu.Unlock()
}

// abortRollout records that the rollout ended without a new generation, and returns err.
func (p *Pool) abortRollout(err error) error {
	p.updateRollout(func(r *Rollout) {
		r.State, r.Detail, r.Ended = RolloutAborted, err.Error(), time.Now()
		p.rollActive.Store(false)
	})
	return err
}

// lastRollout is Stats().Rollout.
func (p *Pool) lastRollout() Rollout {
	p.rollMu.Lock()
	defer p.rollMu.Unlock()
	r := p.rollout
	if r.State == "" {
		r.State = RolloutIdle
	}
	return r
}

// testHookRollCheck, if set (by tests only), runs in rollCheck before it takes rollMu.
var testHookRollCheck func(*Pool)

// rollCheck ends a rollout whose verdict is given once no worker older than the current
// generation is left and none boots (on the owner's goroutine, after exits and boots). It looks
// and ends under rollMu, where a rollout begins and is committed: a newer rollout that began
// meanwhile is left alone.
func (o *owner) rollCheck() {
	p := o.p
	if !p.rollPending.Load() {
		return
	}
	if testHookRollCheck != nil {
		testHookRollCheck(p)
	}
	p.rollMu.Lock()
	defer p.rollMu.Unlock()
	if !p.rollPending.Load() {
		return // a newer rollout began
	}
	cur := p.current()
	for w := range o.all {
		if w.gen < cur {
			return
		}
	}
	if o.booting() > 0 {
		return // a successor still boots (or an old worker, replaced once up): the roll is not done
	}
	r := &p.rollout
	if r.State == RolloutRolling && r.To <= cur { // cur > To: its template died and was replaced mid-roll
		r.State, r.Ended = p.rollFinal, time.Now()
		p.log.Info(r.Cause+": rollout done", "from", r.From, "to", r.To, "canary", r.Canary, "state", r.State, "took", r.Ended.Sub(r.Started).Round(time.Millisecond))
	}
	p.rollPending.Store(false)
	p.rollActive.Store(false)
}

// extra is the canary being judged, if it still serves: the pool keeps it next to its workers.
func (o *owner) extra() int {
	if c := o.trialW; c != nil && o.all[c] && !c.quit {
		return 1
	}
	return 0
}

// trial takes in a canary to judge: an extra worker next to the old generation, which goes on
// serving (a worker of it that ends is replaced by one of its own generation).
func (o *owner) trial(w *worker) {
	if !o.takeIn(w) {
		return
	}
	o.trialW = w
	select {
	case o.p.idle <- w:
	default:
		o.retire(w)
	}
}

// verdict ends the canary's trial: rolled back (err), it is retired after its request; passed, the
// generation it starts is committed already and the old one rolls over as after an unjudged
// canary.
func (o *owner) verdict(w *worker, err error) {
	o.trialW = nil
	switch {
	case err != nil:
		o.mark(w, ExitReload)
	case !o.stopping:
		if o.all[w] && !w.quit { // the canary was an extra worker: one old one goes without a successor
			o.p.retireOneOld(w.gen, o.retire)
		}
		o.p.retireOneOld(w.gen, o.replace)
		o.rollCheck()
	}
}

// judge counts the requests of a canary and of the old generation's workers while the canary is
// judged (Options.Canary): the pool's request path adds to it only while it is set.
type judge struct {
	canary    *worker
	from      int64 // the old generation
	can, olds tally
}

// tally counts requests answered (including those that got 5xx from askrd: a worker that broke,
// 502, or was killed by request_timeout, 504), those with a 5xx status, and their durations.
type tally struct {
	n, errs, took atomic.Int64
}

// count adds a request of w with status that the process had for took.
func (j *judge) count(w *worker, status int, took time.Duration) {
	t := &j.olds
	if w == j.canary {
		t = &j.can
	} else if w.gen != j.from {
		return
	}
	t.n.Add(1)
	t.took.Add(int64(took))
	if status >= 500 {
		t.errs.Add(1)
	}
}

// figures are one side's numbers: requests, 5xx share in percent, mean duration.
func (t *tally) figures() (n int64, rate float64, mean time.Duration) {
	n = t.n.Load()
	if n == 0 {
		return 0, 0, 0
	}
	return n, 100 * float64(t.errs.Load()) / float64(n), time.Duration(t.took.Load() / n)
}

// verdict judges the canary on the window's requests and on the one it has had for running as
// the window ends (0: none): a 5xx rate more than MaxErrorRate points above the old workers'
// (counted on at least MinRequests: too few requests can still fail it by their errors alone)
// rolls it back (aborted); else too few answered (Canary.MinRequests; none at all whatever it
// is) is inconclusive; a mean duration over MaxLatencyFactor times the old workers' (when both
// served) rolls it back. A canary that answered none while its request in progress has run past
// that factor is rolled back too: its requests outlast the window.
func (j *judge) verdict(c Canary, running time.Duration) (state, detail string) {
	cn, crate, cmean := j.can.figures()
	on, orate, omean := j.olds.figures()
	pid := j.canary.pid
	ms := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	// slowAfter is the longest a canary's request may take on average (0: latency not judged);
	// mean counts the request the canary has now, at what it has taken so far.
	slowAfter := time.Duration(float64(omean) * c.MaxLatencyFactor)
	mean, counted, note := cmean, cn, ""
	if running > 0 {
		mean, counted, note = (cmean*time.Duration(cn)+running)/time.Duration(cn+1), cn+1, ", the one in progress counted"
	}
	switch {
	case float64(j.can.errs.Load())*100 > (orate+c.MaxErrorRate)*float64(max(cn, int64(c.MinRequests))):
		// Over the rate, and it would be had it answered canary_min_requests, the rest without 5xx.
		return RolloutAborted, fmt.Sprintf("canary pid %d answered 5xx to %.1f%% of %d requests in %v, the old workers to %.1f%% of %d (canary_max_error_rate %g points)",
			pid, crate, cn, c.Window, orate, on, c.MaxErrorRate)
	case cn == 0 && on > 0 && slowAfter > 0 && running > slowAfter:
		return RolloutAborted, fmt.Sprintf("canary pid %d answered none of its requests in %v; the one it has had ran for %v, the old workers took %v per request (mean of %d) (canary_max_latency_factor %g)",
			pid, c.Window, ms(running), ms(omean), on, c.MaxLatencyFactor)
	case cn < int64(c.MinRequests):
		return RolloutInconclusive, fmt.Sprintf("canary pid %d answered %d requests in %v, fewer than canary_min_requests %d",
			pid, cn, c.Window, c.MinRequests)
	case cn == 0: // canary_min_requests 0
		return RolloutInconclusive, fmt.Sprintf("canary pid %d answered no request in %v", pid, c.Window)
	case cn > 0 && on > 0 && slowAfter > 0 && mean > slowAfter:
		return RolloutAborted, fmt.Sprintf("canary pid %d took %v per request (mean of %d in %v%s), the old workers %v (of %d) (canary_max_latency_factor %g)",
			pid, ms(mean), counted, c.Window, note, ms(omean), on, c.MaxLatencyFactor)
	}
	return RolloutOK, fmt.Sprintf("canary pid %d answered 5xx to %.1f%% of %d requests in %v (mean %v), the old workers to %.1f%% of %d (mean %v)",
		pid, crate, cn, c.Window, ms(cmean), orate, on, ms(omean))
}

// judged counts a request of w for the canary's judge, if one is judging: status is the answer's
// (0: unknown), start and end when the process had it.
func (p *Pool) judged(w *worker, status int, start, end time.Time) {
	if j := p.judge.Load(); j != nil {
		j.count(w, status, end.Sub(start))
	}
}

// reforkDue reports whether w, given back fit to serve by the request goroutine that had it, is
// promoted to be the next template (Options.ReforkAfter, CoW mode): it is of the current
// generation, has served the next count, and no rollout runs. Then the owner takes it out of its
// books (promote) and the refork runs on a goroutine of its own. The count is used up whatever
// becomes of its refork.
func (p *Pool) reforkDue(w *worker) bool {
	k := int(p.reforks.Load())
	if k >= len(p.opt.ReforkAfter) || w.served < p.opt.ReforkAfter[k] || w.gen != p.current() || p.rollActive.Load() {
		return false
	}
	if _, ok := p.start.(Stager); !ok || !p.judging.CompareAndSwap(judgeFree, judgeRefork) {
		return false
	}
	if p.rollActive.Load() || !p.reforks.CompareAndSwap(int32(k), int32(k+1)) {
		p.judging.Store(judgeFree)
		return false
	}
	p.events <- event{kind: evPromote, w: w}
	go p.refork(w)
	return true
}

// refork makes w the next template and rolls the pool over to workers forked from it (holding
// judging, which reforkDue took).
func (p *Pool) refork(w *worker) {
	defer p.judging.Store(judgeFree)
	p.log.Info("refork: a worker becomes the next template", "pid", w.pid, "served", w.servedTotal.Load(), "generation", w.gen)
	if err := p.roll(w.proc, "refork"); err != nil {
		p.log.Warn("refork failed; the old workers go on serving", "pid", w.pid, "err", err)
	}
}

// promote takes a worker that a refork makes the next template out of the books: it is the
// Stager's from now on (not stopped, not counted as an exit); a new worker replaces it.
func (o *owner) promote(w *worker) {
	if !o.all[w] || w.quit {
		return // it exited meanwhile: its Stage fails
	}
	delete(o.all, w)
	w.quit = true
	o.live--
	o.p.ready.Add(-1)
	if w.mem != nil {
		w.mem.Close()
	}
	if !o.stopping {
		o.spawn()
	}
}
