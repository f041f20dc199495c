package template

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/proc"
)

// Back-off between the boots of a template that replaces one that died, while they fail.
const (
	minRetry = 100 * time.Millisecond
	maxRetry = 10 * time.Second
)

// bootResult is what a boot goroutine reports: a template that has said Ready, or why not.
type bootResult struct {
	p    templateProcess
	err  error
	took time.Duration
}

// onBoot answers at once if a template runs, or when the boot it starts (or joins) ends.
func (t *Template) onBoot(reply chan error) {
	if t.closed {
		reply <- errClosed
		return
	}
	if t.running() {
		reply <- nil
		return
	}
	t.bootWaiters = append(t.bootWaiters, reply)
	t.ensureBoot()
}

// running reports whether the current template runs; one found dead is dealt with as its exit.
func (t *Template) running() bool {
	if t.cur == nil {
		return false
	}
	select {
	case <-t.cur.p.Done():
		t.onExited(t.cur.p)
		return false
	default:
		return true
	}
}

// ensureBoot starts booting a template unless one runs or boots.
func (t *Template) ensureBoot() {
	if t.closed || t.running() || t.booting { // running first: it may find the template dead and boot
		return
	}
	t.booting = true
	go func() { report(t, t.booted, boot(t.sys, t.opt.BootTimeout), stopBooted) }()
}

// stopBooted ends a template that booted after run stopped.
func stopBooted(r bootResult) {
	if r.p != nil {
		r.p.Kill()
		<-r.p.Done()
		r.p.Close()
	}
}

// boot starts a template and waits for its Ready frame. A failed boot returns the PHP error the
// template printed.
func boot(sys system, timeout time.Duration) bootResult {
	start := time.Now()
	p, err := sys.start()
	if err != nil {
		return bootResult{err: fmt.Errorf("start template: %w", err)}
	}
	if err := awaitReady(p, timeout); err != nil {
		p.Kill()
		<-p.Done()
		p.Close()
		if errors.Is(err, errEnded) {
			err = fmt.Errorf("it ended (%s) before askr_cow_ready()", proc.ExitStatus(p.Err()))
		}
		err = fmt.Errorf("template pid %d failed to boot: %w", p.PID(), err)
		if tail := p.Tail(); tail != "" {
			err = fmt.Errorf("%w; last output:\n%s", err, tail)
		}
		return bootResult{err: err}
	}
	return bootResult{p: p, took: time.Since(start)}
}

// onBooted makes a booted template the current one (a new generation) and asks it for the forks
// that waited; a failed boot fails them, and is retried with back-off if it was to replace a
// template that died.
//
// A template that replaces one that died while another is staged (or being staged) keeps the dead
// one's generation: the staged one is the next (current + 1), and its canary may be serving
// already. The roll to it owed for the orphans is then done by Commit (the pool rolls every older
// worker over), or, on Abandon, by raising this template's generation and calling NewGeneration.
func (t *Template) onBooted(r bootResult) {
	t.booting = false
	if r.err != nil {
		t.answerWaiters(r.err)
		if t.replacing && !t.closed {
			t.log.Error("template failed to boot", "err", r.err, "retry_in", t.retryDelay)
			t.retry = time.After(t.retryDelay)
			t.retryDelay = min(2*t.retryDelay, maxRetry)
		}
		return
	}
	m := newTmpl(r.p, 0)
	t.watchTemplate(m)
	if t.closed {
		t.old = append(t.old, m) // run stops it
		return
	}
	if t.running() { // a Commit made a current template while this one booted
		t.log.Info("template booted after another became current; stopping it", "pid", m.p.PID())
		t.retire(m)
		t.answerWaiters(nil)
		return
	}
	t.cur = m
	t.pid.Store(int64(m.p.PID()))
	announce := t.replacing
	if t.replacing && (t.staged != nil || t.staging) {
		m.gen, t.owedRoll, announce = t.gen.Load(), true, false
	} else {
		m.gen = t.gen.Add(1)
	}
	t.log.Info("template ready", "pid", m.p.PID(), "generation", m.gen, "boot", r.took.Round(time.Millisecond))
	if t.opt.TemplateBooted != nil {
		t.opt.TemplateBooted(r.took)
	}
	t.answerWaiters(nil)
	t.replacing, t.retryDelay = false, minRetry
	if announce && t.opt.NewGeneration != nil {
		go t.opt.NewGeneration()
	}
}

// onExited deals with the exit of a template: the forks it has not delivered fail. A current
// template is replaced (unless askrd is stopping): the workers of the dead template go on serving
// meanwhile; the pool replaces them with the new generation's, one by one, on NewGeneration. A
// staged one stays staged, dead: StartStaged fails, and Commit boots a successor.
func (t *Template) onExited(p templateProcess) {
	m := t.lookup(p)
	if m == nil {
		return // seen already
	}
	m.exited = true
	for _, f := range t.pending {
		if f.tmpl == m {
			t.finish(f, nil, fmt.Errorf("template pid %d exited before its fork connected", p.PID()))
		}
	}
	p.Close()
	switch {
	case m == t.staged:
		if !t.closed {
			t.log.Error("staged template exited", "pid", p.PID(), "generation", m.gen, "status", p.Err())
		}
	case m != t.cur:
		t.dropOld(m)
		if !m.stopping && !t.closed {
			t.log.Warn("retired template exited before it was stopped", "pid", p.PID(), "generation", m.gen, "status", p.Err())
		} else {
			t.log.Info("retired template exited", "pid", p.PID(), "generation", m.gen)
		}
	default:
		t.cur = nil
		if t.closed {
			return
		}
		t.log.Error("template exited; booting a new one", "pid", p.PID(), "generation", t.gen.Load(), "status", p.Err())
		t.replacing = true
		t.ensureBoot()
	}
}

// answerWaiters tells the Boots and forks waiting for a template how its boot went: the forks are
// asked of it, or fail with err.
func (t *Template) answerWaiters(err error) {
	for _, reply := range t.bootWaiters {
		reply <- err
	}
	t.bootWaiters = nil
	waiting := t.forkWaiters
	t.forkWaiters = nil
	for _, f := range waiting {
		if err == nil {
			t.askFork(f)
		} else {
			t.finish(f, nil, err)
		}
	}
}

// errEnded is a template that closed its channel before it was ready.
var errEnded = errors.New("ended before askr_cow_ready()")

// awaitReady reads the template's Ready frame.
func awaitReady(p templateProcess, timeout time.Duration) error {
	c := p.Conn()
	if timeout > 0 {
		c.SetReadDeadline(time.Now().Add(timeout))
		defer c.SetReadDeadline(time.Time{})
	}
	f, err := readFrame(c)
	switch {
	case errors.Is(err, io.EOF):
		return errEnded
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("no askr_cow_ready() within boot_timeout (%v)", timeout)
	case err != nil:
		return err
	case f.Type != channel.TypeReady:
		return fmt.Errorf("%w: frame type %d, want ready", channel.ErrProtocol, f.Type)
	}
	return nil
}

// readFrame reads one frame without reading ahead (the connection is handed on afterwards).
func readFrame(r io.Reader) (channel.Frame, error) {
	var h [channel.HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return channel.Frame{}, err
	}
	f, n, err := channel.ParseHeader(h[:])
	if err != nil {
		return f, err
	}
	f.Payload = make([]byte, n)
	_, err = io.ReadFull(r, f.Payload)
	return f, err
}
