package template

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/pool"
)

// Staging: a reload or a refork puts a new template beside the current one (Stage), the pool forks
// its canary from it (StartStaged) and then makes it current (Commit) or ends it (Abandon). The
// template Commit replaces is retired: it goes on running while workers forked from it live, and
// is stopped (Stop frame) once the last has exited.

// stageRequest asks run to stage a template: booted (from nil) or promoted from a worker.
type stageRequest struct {
	from  pool.Process
	reply chan error
}

// stageResult is what a staging goroutine reports: the template ready to fork, or why not.
type stageResult struct {
	bootResult
	promoted int // the pid of the worker promoted (0: a boot)
	reply    chan error
}

// errStaged refuses a Stage while another template is staged.
var errStaged = errors.New("template: a template is staged already")

// Stage boots a new template beside the current one from the files as they are now (from nil: a
// reload), or promotes from, an idle worker forked by this Template that the pool has given up,
// to be it (a refork: the Template owns from from now on, and ends it if Stage fails). It returns
// once the template has said Ready, or why it did not (for a boot, PHP's error); the current
// template is left as it was either way. It may be called from any goroutine.
func (t *Template) Stage(from pool.Process) error {
	reply := make(chan error, 1)
	select {
	case t.stages <- stageRequest{from: from, reply: reply}:
		return <-reply
	case <-t.done:
		if from != nil {
			endProcess(from)
		}
		return errClosed
	}
}

// StartStaged forks a worker from the staged template (the canary), admitted as Start's are. Its
// Generation is the staged template's: the current one's + 1.
func (t *Template) StartStaged() (pool.Process, error) { return t.fork(t.stagedStarts) }

// Commit makes the staged template the current one: Start forks from it, Generation and PID are
// its. The spare of the old generation is discarded, and the old template retired. NewGeneration
// is not called: the pool rolls the workers over itself. Without a staged template it does nothing.
func (t *Template) Commit() { t.ask(t.commits) }

// Abandon kills the staged template; the workers forked from it are the pool's to stop. Without a
// staged template it does nothing.
func (t *Template) Abandon() { t.ask(t.abandons) }

// ask sends run a request without an answer and waits until run has dealt with it.
func (t *Template) ask(ch chan chan struct{}) {
	reply := make(chan struct{}, 1)
	select {
	case ch <- reply:
		<-reply
	case <-t.done:
	}
}

var _ pool.Stager = (*Template)(nil)

// onStage starts booting or promoting a template to stage.
func (t *Template) onStage(r stageRequest) {
	var err error
	switch {
	case t.closed:
		err = errClosed
	case t.staged != nil || t.staging:
		err = errStaged
	}
	if err != nil {
		if r.from != nil {
			endProcess(r.from)
		}
		r.reply <- err
		return
	}
	if r.from == nil {
		t.staging = true
		go func() {
			res := stageResult{bootResult: boot(t.sys, t.opt.BootTimeout), reply: r.reply}
			report(t, t.stagedBoots, res, dropStaged)
		}()
		return
	}
	w, ok := r.from.(*worker)
	if !ok {
		endProcess(r.from)
		r.reply <- fmt.Errorf("template: cannot promote pid %d: not a worker forked by a template (%T)", r.from.PID(), r.from)
		return
	}
	for _, m := range t.held() {
		if m.workers[w.pid] { // a template now, no longer a worker it waits for
			delete(m.workers, w.pid)
			defer t.stopIfDone(m)
		}
	}
	t.staging = true
	timeout := t.opt.BootTimeout
	if timeout <= 0 {
		timeout = t.opt.ForkTimeout
	}
	go func() {
		start := time.Now()
		p, err := promote(w, timeout)
		res := stageResult{bootResult: bootResult{p: p, err: err, took: time.Since(start)}, promoted: w.pid, reply: r.reply}
		report(t, t.stagedBoots, res, dropStaged)
	}()
}

// dropStaged ends a template staged after run stopped, and tells its Stage.
func dropStaged(r stageResult) {
	stopBooted(r.bootResult)
	if r.err == nil {
		r.err = errClosed
	}
	r.reply <- r.err
}

// onStaged makes a template that is ready the staged one.
func (t *Template) onStaged(r stageResult) {
	t.staging = false
	if r.err != nil {
		t.log.Error("staging a new template failed", "err", r.err)
		t.settleOwedRoll()
		r.reply <- r.err
		return
	}
	if t.closed {
		go dropStaged(r)
		return
	}
	m := newTmpl(r.p, t.gen.Load()+1)
	t.staged = m
	t.watchTemplate(m)
	if r.promoted != 0 {
		t.log.Info("worker promoted to template (refork), staged", "pid", r.promoted, "generation", m.gen, "took", r.took.Round(time.Millisecond))
	} else {
		t.log.Info("template staged", "pid", m.p.PID(), "generation", m.gen, "boot", r.took.Round(time.Millisecond))
		if t.opt.TemplateBooted != nil {
			t.opt.TemplateBooted(r.took)
		}
	}
	r.reply <- nil
}

// onStartStaged asks the staged template for a fork.
func (t *Template) onStartStaged(reply chan forkResult) {
	switch {
	case t.closed:
		reply <- forkResult{err: errClosed}
	case t.staged == nil:
		reply <- forkResult{err: errors.New("template: no template is staged")}
	case t.staged.exited:
		reply <- forkResult{err: fmt.Errorf("template: the staged template pid %d has exited", t.staged.p.PID())}
	default:
		t.askForkOf(t.staged, &forkRequest{reply: reply})
	}
}

// onCommit makes the staged template the current one and retires the one it replaces. A staged
// template that has died is replaced by a successor, as a current one that dies is.
func (t *Template) onCommit() {
	s := t.staged
	if s == nil || t.closed {
		return
	}
	t.staged, t.owedRoll = nil, false
	if t.spare != nil {
		t.spare.discard()
		t.spare = nil
	}
	if old := t.cur; old != nil && !old.exited {
		t.retire(old)
	}
	t.cur = nil
	t.gen.Store(s.gen)
	t.retry, t.replacing, t.retryDelay = nil, false, minRetry
	if s.exited {
		t.log.Error("committed a staged template that has exited; booting a new one", "pid", s.p.PID(), "generation", s.gen)
		t.replacing = true
		t.ensureBoot()
		return
	}
	t.cur = s
	t.pid.Store(int64(s.p.PID()))
	t.log.Info("staged template is now current", "pid", s.p.PID(), "generation", s.gen)
	t.answerWaiters(nil)
	t.fillSpare()
}

// onAbandon kills the staged template. A current template that replaced one that died while this
// one was staged then becomes a new generation (see onBooted).
func (t *Template) onAbandon() {
	s := t.staged
	if s == nil {
		t.settleOwedRoll()
		return
	}
	t.staged = nil
	for _, f := range t.pending {
		if f.tmpl == s {
			t.finish(f, nil, fmt.Errorf("staged template pid %d abandoned", s.p.PID()))
		}
	}
	if !s.exited {
		t.log.Info("staged template abandoned; killing it", "pid", s.p.PID(), "generation", s.gen)
		s.stopping, s.retired = true, true
		t.old = append(t.old, s)
		s.p.Kill()
	}
	t.settleOwedRoll()
}

// settleOwedRoll: a current template that replaced one that died while another was staged (or
// being staged) kept the dead one's generation; once no template is staged after all (abandoned,
// or its Stage failed), it becomes a new generation, and the pool rolls the dead one's workers
// over (NewGeneration).
func (t *Template) settleOwedRoll() {
	if t.owedRoll && t.running() {
		t.owedRoll = false
		t.cur.gen = t.gen.Add(1)
		if t.spare != nil {
			t.spare.discard()
			t.spare = nil
		}
		t.log.Info("the template that replaced one that died is a new generation", "pid", t.cur.p.PID(), "generation", t.cur.gen)
		if t.opt.NewGeneration != nil {
			go t.opt.NewGeneration()
		}
		t.fillSpare()
	}
	t.owedRoll = false
}

// promote sends the idle worker w a Promote frame and waits up to timeout for its Ready: it is then
// a template, with w's channel as the template's.
func promote(w *worker, timeout time.Duration) (templateProcess, error) {
	err := func() error {
		c := w.conn
		c.SetDeadline(time.Now().Add(timeout))
		defer c.SetDeadline(time.Time{})
		if _, err := c.Write(channel.AppendHeader(nil, channel.TypePromote, 0, 0)); err != nil {
			return err
		}
		// The worker is idle: everything it sent has been read, so nothing waits in its
		// Endpoint's buffer and the answer can be read from the connection.
		f, err := readFrame(c)
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return errors.New("it ended before it answered Ready")
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("no Ready within %v", timeout)
		case err != nil:
			return err
		case f.Type == channel.TypeBye:
			return errors.New("it was leaving (Bye)")
		case f.Type != channel.TypeReady:
			return fmt.Errorf("%w: frame type %d, want ready", channel.ErrProtocol, f.Type)
		case len(f.Payload) == 4 && int(binary.BigEndian.Uint32(f.Payload)) != w.pid:
			return fmt.Errorf("%w: Ready names pid %d", channel.ErrProtocol, binary.BigEndian.Uint32(f.Payload))
		}
		return nil
	}()
	if err != nil {
		w.discard()
		return nil, fmt.Errorf("promote worker pid %d to template: %w", w.pid, err)
	}
	return mold{w}, nil
}

// mold is a worker promoted to template (refork). It is not askrd's child: it is watched and
// killed through its pid handle, its exit status is unknown, and its log lines go on reaching
// askrd through its log FIFO.
type mold struct{ *worker }

func (m mold) Conn() net.Conn { return m.conn }

// endProcess ends a process handed to Stage that cannot be staged.
func endProcess(p pool.Process) {
	if w, ok := p.(*worker); ok {
		w.discard()
		return
	}
	p.Kill()
	go func() {
		<-p.Done()
		p.Close()
	}()
}
