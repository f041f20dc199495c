// Package template runs CoW template mode: one php-cgi process (the template) boots the app and, at
// askr_cow_ready(), waits for Fork frames; every forked child connects back to askrd's private
// socket and becomes a worker with a channel of its own. The package is the pool's Starter in CoW
// mode: Start asks the template for one fork and returns the verified child. It boots a new
// template (a new generation) when the old one dies, and, as the pool's Stager, stages a new one
// beside it (a reload boots one, a refork promotes a worker) that replaces it on Commit. It knows
// nothing of HTTP or dispatch.
//
// One goroutine (run) owns the templates' state: the current template, the staged one, the retired
// ones that still have workers, the spare worker, the forks asked for and not yet connected. The
// exported methods (callable from any goroutine), and the goroutines that boot a template, watch
// one or a worker, or admit a connection, talk to it through channels. What it does to
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
	RoleLog     *slog.Logger // for what role processes (StartRole) write, tagged with role and pid (nil: Logger)
	// NewGeneration is called (on its own goroutine) when a template has replaced one that died
	// (not on Commit: the pool that commits rolls the workers over itself).
	NewGeneration func()
	// Spare keeps one worker of the current template forked ahead, so that a worker that exits is
	// replaced without waiting for a fork ([worker] cow_spare). Without it Start always forks.
	Spare bool
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
	gen atomic.Int64 // the current template's generation; written by run only
	pid atomic.Int64 // the current template's pid (the last one, if it died); written by run only

	// Requests to run; each gets exactly one answer on the channel it carries.
	boots        chan chan error
	starts       chan chan forkResult
	closes       chan chan error
	stages       chan stageRequest
	stagedStarts chan chan forkResult
	commits      chan chan struct{}
	abandons     chan chan struct{}
	// Reports to run from the goroutines it starts.
	booted       chan bootResult
	stagedBoots  chan stageResult
	exited       chan templateProcess
	arrivals     chan arrival
	workerExits  chan workerExit
	timeouts     chan string   // the token of a fork that did not connect in time
	stopTimeouts chan *tmpl    // a template asked to stop 10 s ago
	done         chan struct{} // closed when run has stopped taking requests

	// Owned by run; no other goroutine touches these.
	cur         *tmpl   // the current template (Start forks from it), or nil
	staged      *tmpl   // the staged template (StartStaged forks from it), or nil
	old         []*tmpl // retired or abandoned templates not yet exited
	staging     bool    // a Stage is under way
	owedRoll    bool    // cur replaced a template that died while one was staged: see onBooted
	booting     bool    // a boot goroutine runs
	replacing   bool    // a template died: its successor is a new generation to announce
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
	if opt.RoleLog == nil {
		opt.RoleLog = opt.Logger
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
		stages: make(chan stageRequest), stagedStarts: make(chan chan forkResult),
		commits: make(chan chan struct{}), abandons: make(chan chan struct{}),
		booted: make(chan bootResult), stagedBoots: make(chan stageResult), exited: make(chan templateProcess),
		arrivals: make(chan arrival), workerExits: make(chan workerExit),
		timeouts: make(chan string), stopTimeouts: make(chan *tmpl), done: make(chan struct{}),
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

// Start returns a worker forked from the current template (booting a template first if none
// runs), once it has connected and been verified. With Options.Spare one worker is kept forked
// ahead, so that a worker that exits is replaced without waiting for a fork.
func (t *Template) Start() (pool.Process, error) { return t.fork(t.starts) }

// fork asks run on ch for a worker.
func (t *Template) fork(ch chan chan forkResult) (pool.Process, error) {
	reply := make(chan forkResult, 1)
	select {
	case ch <- reply:
	case <-t.done:
		return nil, errClosed
	}
	r := <-reply
	if r.err != nil {
		return nil, r.err
	}
	return r.w, nil
}

// Generation is the current template's generation, counted from 1: the templates that became
// current so far, less those that replaced one that died while another was staged (see onBooted).
// Workers of an older one should be replaced.
func (t *Template) Generation() int64 { return t.gen.Load() }

// PID returns the pid of the current template (the last one, if it died since), or 0.
func (t *Template) PID() int { return int(t.pid.Load()) }

// Close stops the templates, current, staged and retired (the workers are the pool's to stop), and
// the listener. A boot or Stage under way is waited for, and the template it booted stopped. A
// Close beside it waits for it too.
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
	for !t.closed || t.booting || t.staging {
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
		case r := <-t.stages:
			t.onStage(r)
		case reply := <-t.stagedStarts:
			t.onStartStaged(reply)
		case reply := <-t.commits:
			t.onCommit()
			reply <- struct{}{}
		case reply := <-t.abandons:
			t.onAbandon()
			reply <- struct{}{}
		case r := <-t.booted:
			t.onBooted(r)
		case r := <-t.stagedBoots:
			t.onStaged(r)
		case p := <-t.exited:
			t.onExited(p)
		case a := <-t.arrivals:
			t.onArrival(a)
		case e := <-t.workerExits:
			t.onWorkerExit(e)
		case token := <-t.timeouts:
			t.onForkTimeout(token)
		case m := <-t.stopTimeouts:
			t.onStopTimeout(m)
		case <-t.retry:
			t.retry = nil
			t.ensureBoot()
		}
	}
	close(t.done)
	err := t.stopAll()
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
	for _, r := range t.pending { // the staged template's too
		t.finish(r, nil, errClosed)
	}
	t.ln.Close()
}

// stopAll asks every template still running to stop (a Stop frame), kills those that have not
// within 10 s, and releases them.
func (t *Template) stopAll() error {
	all := t.held()
	t.cur, t.staged, t.old = nil, nil, nil
	for _, m := range all {
		if !m.stopping {
			m.stop()
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for _, m := range all {
		timer := time.NewTimer(time.Until(deadline))
		select {
		case <-m.p.Done():
		case <-timer.C:
			m.p.Kill()
			<-m.p.Done()
		}
		timer.Stop()
		if cerr := m.p.Close(); err == nil {
			err = cerr
		}
	}
	return err
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
