// Package template runs CoW template mode: one php-cgi process (the template) boots the app and, at
// askr_cow_ready(), waits for Fork frames; every forked child connects back to askrd's private
// socket and becomes a worker with a channel of its own. The package is the pool's Starter in CoW
// mode: Start asks the template for one fork and returns the verified child. It boots a new
// template (a new generation) when the old one dies, and knows nothing of HTTP or dispatch.
//
// One goroutine (run) owns the template's state: the running template, its generation, the spare
// worker, the forks asked for and not yet connected. Start, Boot and Close, and the goroutines that
// boot a template, watch one or admit a connection, talk to it through channels. What it does to
// the OS besides the template's channel sits in a system, which unit tests replace with fakes.
package template

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/phpcgi"
	"github.com/askr-php/askr/internal/pool"
)

// Options configures a Template.
type Options struct {
	Launcher    *phpcgi.Launcher // starts the template process (with this package's Env)
	Dir         string           // private directory for the socket and the workers' log FIFOs
	BootTimeout time.Duration    // bound on a template's boot (to askr_cow_ready())
	ForkTimeout time.Duration    // bound on Fork → the child's hello
	Logger      *slog.Logger
	WorkerLog   *slog.Logger // for what forked workers write (tagged with their pid)
	// NewGeneration is called (on its own goroutine) when a template has replaced one that died.
	NewGeneration func()
	// Forked, if set, is told how long each fork took, from the request to the template to the
	// forked worker's admission; TemplateBooted how long each template took to boot (to
	// askr_cow_ready()). Both are called on the Template's own goroutine: they must return quickly.
	Forked, TemplateBooted func(time.Duration)
}

// Env returns the variables a template process needs, for phpcgi.Config.Extra.
func Env(dir string) []string {
	return []string{"ASKR_COW=1", "ASKR_COW_SOCKET=" + socketPath(dir)}
}

func socketPath(dir string) string { return filepath.Join(dir, "workers.sock") }

// errClosed answers what is asked of a closed Template.
var errClosed = errors.New("template: closed")

// Template is the CoW template and the listener its children connect to.
type Template struct {
	opt Options
	log *slog.Logger
	sys system
	ln  net.Listener
	gen atomic.Int64 // the running template's generation; written by run only
	pid atomic.Int64 // the last booted template's pid; written by run only

	// Requests to run; each gets exactly one answer on the channel it carries.
	boots  chan chan error
	starts chan chan forkResult
	closes chan chan error
	// Reports to run from the goroutines it starts.
	booted   chan bootResult
	exited   chan templateProcess
	arrivals chan arrival
	timeouts chan string   // the token of a fork that did not connect in time
	done     chan struct{} // closed when run has stopped taking requests

	// Owned by run; no other goroutine touches these.
	proc        templateProcess // the running template, or nil
	booting     bool            // a boot goroutine runs
	replacing   bool            // a template died: its successor is a new generation to announce
	retry       <-chan time.Time
	retryDelay  time.Duration
	known       map[int]bool // every template pid booted: a worker's parent must be one
	bootWaiters []chan error
	forkWaiters []*forkRequest // forks to ask for once a template runs
	pending     map[string]*forkRequest
	spare       *worker // forked ahead, not yet handed to the pool
	filling     bool    // a fork for the spare is under way
	closed      bool
}

// New listens on the private socket. Boot starts the first template.
func New(opt Options) (*Template, error) {
	return newTemplate(opt, realSystem(opt.Launcher))
}

func newTemplate(opt Options, sys system) (*Template, error) {
	if opt.ForkTimeout <= 0 {
		opt.ForkTimeout = 10 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.WorkerLog == nil {
		opt.WorkerLog = opt.Logger
	}
	ln, err := sys.listen(socketPath(opt.Dir))
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	t := &Template{
		opt: opt, log: opt.Logger, sys: sys, ln: ln,
		boots: make(chan chan error), starts: make(chan chan forkResult), closes: make(chan chan error),
		booted: make(chan bootResult), exited: make(chan templateProcess), arrivals: make(chan arrival),
		timeouts: make(chan string), done: make(chan struct{}),
		retryDelay: minRetry, known: map[int]bool{}, pending: map[string]*forkRequest{},
	}
	go t.accept()
	go t.run()
	return t, nil
}

// Boot starts a template unless one is running, and waits until it has booted (its Ready frame).
// A failed boot returns the PHP error the template printed.
func (t *Template) Boot() error {
	reply := make(chan error, 1)
	select {
	case t.boots <- reply:
		return <-reply
	case <-t.done:
		return errClosed
	}
}

// Start returns a worker forked from the template (booting a template first if none runs), once it
// has connected and been verified. One spare worker is kept forked ahead, so that a worker that
// exits is replaced without waiting for a fork.
func (t *Template) Start() (pool.Process, error) {
	reply := make(chan forkResult, 1)
	select {
	case t.starts <- reply:
	case <-t.done:
		return nil, errClosed
	}
	r := <-reply
	if r.err != nil {
		return nil, r.err
	}
	return r.w, nil
}

// Generation counts the templates booted so far; workers of an older one should be replaced.
func (t *Template) Generation() int64 { return t.gen.Load() }

// PID returns the pid of the last template that booted (it may have died since), or 0.
func (t *Template) PID() int { return int(t.pid.Load()) }

// Close stops the template (the workers are the pool's to stop) and the listener. A boot under
// way is waited for, and the template it booted stopped. A Close beside it waits for it too.
func (t *Template) Close() error {
	reply := make(chan error, 1)
	select {
	case t.closes <- reply:
		return <-reply
	case <-t.done:
		return nil // closed already
	}
}

// run is the owner: it takes one request or report at a time until Close, then stops the template.
func (t *Template) run() {
	var closeReplies []chan error
	for !t.closed || t.booting {
		select {
		case reply := <-t.boots:
			t.onBoot(reply)
		case reply := <-t.starts:
			t.onStart(reply)
		case reply := <-t.closes:
			closeReplies = append(closeReplies, reply)
			if !t.closed {
				t.onClose()
			}
		case r := <-t.booted:
			t.onBooted(r)
		case p := <-t.exited:
			t.onExited(p)
		case a := <-t.arrivals:
			t.onArrival(a)
		case token := <-t.timeouts:
			t.onForkTimeout(token)
		case <-t.retry:
			t.retry = nil
			t.ensureBoot()
		}
	}
	close(t.done)
	err := t.stopTemplate()
	for _, reply := range closeReplies {
		reply <- err
	}
}

// onClose refuses what waits, lets the spare go and stops taking connections; run then waits for
// a boot under way and stops the template.
func (t *Template) onClose() {
	t.closed = true
	t.retry = nil
	if t.spare != nil {
		t.spare.discard()
		t.spare = nil
	}
	t.answerWaiters(errClosed)
	for _, r := range t.pending {
		t.finish(r, nil, errClosed)
	}
	t.ln.Close()
}

// stopTemplate asks the template to stop (a Stop frame), and kills it if it has not within 10 s.
func (t *Template) stopTemplate() error {
	p := t.proc
	if p == nil {
		return nil
	}
	t.proc = nil
	c := p.Conn()
	c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(channel.AppendHeader(nil, channel.TypeStop, 0, 0)); err != nil {
		p.Kill()
	}
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-p.Done():
	case <-timer.C:
		p.Kill()
		<-p.Done()
	}
	return p.Close()
}

// report sends v to run on ch, or drops it (calling drop, if not nil) once run has stopped.
func report[T any](t *Template, ch chan<- T, v T, drop func(T)) {
	select {
	case ch <- v:
	case <-t.done:
		if drop != nil {
			drop(v)
		}
	}
}
