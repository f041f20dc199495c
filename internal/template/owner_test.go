package template

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/pool"
)

// newFake returns a Template on sys, closed at the end of the test.
func newFake(t *testing.T, sys *fakeSystem, opt Options) (*Template, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	opt.Dir = t.TempDir()
	opt.Logger = logs.logger()
	tm, err := newTemplate(opt, sys.system())
	if err != nil {
		t.Fatalf("newTemplate() error = %v; want nil", err)
	}
	t.Cleanup(func() { tm.Close() })
	return tm, logs
}

// start calls Start and wants a worker.
func start(t *testing.T, tm *Template) *worker {
	t.Helper()
	p, err := tm.Start()
	if err != nil {
		t.Fatalf("Start() error = %v; want a worker", err)
	}
	return p.(*worker)
}

// waitForks waits until template p has received n Fork frames and forked as many workers.
func waitForks(t *testing.T, sys *fakeSystem, p *fakeTemplate, n int) {
	t.Helper()
	poll(t, "forks", func() bool {
		pids := p.forkedPIDs()
		if len(pids) < n {
			return false
		}
		h := sys.handle(pids[n-1])
		return h != nil && h.opened.Load() == 1 // admitted
	})
}

// Boot boots one template (generation 1); Start asks it for a fork and returns the admitted
// worker, then forks a spare ahead, which the next Start returns without waiting for a fork.
func TestBootStartTakesSpare(t *testing.T) {
	sys := newFakeSystem(t)
	tm, _ := newFake(t, sys, Options{Spare: true})
	if err := tm.Boot(); err != nil {
		t.Fatalf("Boot() error = %v; want nil", err)
	}
	tp := sys.template(0)
	if tm.Generation() != 1 || tm.PID() != tp.pid {
		t.Errorf("after Boot: Generation() = %d, PID() = %d; want 1, %d", tm.Generation(), tm.PID(), tp.pid)
	}
	if err := tm.Boot(); err != nil || len(sys.started) != 1 {
		t.Errorf("second Boot() = %v, %d templates started; want nil, 1 (it runs)", err, len(sys.started))
	}

	w1 := start(t, tm)
	token := <-tp.forks
	h, err := w1.Greet(time.Second)
	if err != nil || w1.PID() != tp.forkedPIDs()[0] || h.Token != token || w1.Generation() != 1 {
		t.Errorf("Start() = pid %d gen %d hello %+v, %v; want pid %d gen 1 token %q", w1.PID(), w1.Generation(), h, err, tp.forkedPIDs()[0], token)
	}
	var _ pool.Process = w1
	waitForks(t, sys, tp, 2) // the spare
	w2 := start(t, tm)
	if spare := tp.forkedPIDs()[1]; w2.PID() != spare {
		t.Errorf("second Start() = pid %d; want the spare, pid %d", w2.PID(), spare)
	}
	waitForks(t, sys, tp, 3) // the next spare
	if n := len(tp.forks); n != 2 {
		t.Errorf("%d more Fork frames after the first; want 2 (one spare each time)", n)
	}
}

// A spare that died is not handed out: it is killed and released, and a new fork serves the
// Start. A worker's Done closes when its process exits.
func TestDeadSpareIsNotHandedOut(t *testing.T) {
	sys := newFakeSystem(t)
	tm, _ := newFake(t, sys, Options{Spare: true})
	w1 := start(t, tm) // boots the template first
	tp := sys.template(0)
	waitForks(t, sys, tp, 2)
	spare := sys.handle(tp.forkedPIDs()[1])
	spare.exit()

	w2 := start(t, tm)
	if third := tp.forkedPIDs()[2]; w2.PID() != third {
		t.Errorf("Start() after the spare died = pid %d; want a new fork, pid %d", w2.PID(), third)
	}
	if spare.kills.Load() != 1 || spare.closed.Load() != 1 {
		t.Errorf("dead spare: %d kills, %d closes; want 1, 1", spare.kills.Load(), spare.closed.Load())
	}

	h1 := sys.handle(w1.PID())
	select {
	case <-w1.Done():
		t.Fatalf("worker pid %d done before its process exited", w1.PID())
	default:
	}
	h1.exit()
	select {
	case <-w1.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("worker pid %d: Done not closed after its process exited", w1.PID())
	}
	if err := w1.Err(); !errors.Is(err, errUnknownStatus) {
		t.Errorf("Err() = %v; want errUnknownStatus", err)
	}
	w1.Close()
	w1.Close()
	if h1.closed.Load() != 1 {
		t.Errorf("Close twice: handle closed %d times; want 1", h1.closed.Load())
	}
}

// A template that dies is replaced by a new generation, announced by NewGeneration; the spare of
// the old one is not handed out, and a fork the dead template owed fails at once.
func TestTemplateDeathBootsNewGeneration(t *testing.T) {
	sys := newFakeSystem(t)
	newGen := make(chan struct{}, 10)
	tm, logs := newFake(t, sys, Options{Spare: true, NewGeneration: func() { newGen <- struct{}{} }})
	w1 := start(t, tm)
	old := sys.template(0)
	waitForks(t, sys, old, 2) // the spare, generation 1

	old.exit(errors.New("signal: killed"))
	select {
	case <-newGen:
	case <-time.After(10 * time.Second):
		t.Fatalf("NewGeneration not called 10 s after the template died; log:\n%s", logs.String())
	}
	next := sys.template(1)
	if tm.Generation() != 2 || tm.PID() != next.pid {
		t.Errorf("after the template died: Generation() = %d, PID() = %d; want 2, %d", tm.Generation(), tm.PID(), next.pid)
	}
	if want := `msg="template exited; booting a new one" pid=` + itoa(old.pid) + ` generation=1 status="signal: killed"`; !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, logs.String())
	}
	w2 := start(t, tm)
	if w2.Generation() != 2 || w2.PID() != next.forkedPIDs()[0] {
		t.Errorf("Start() after the new generation = pid %d gen %d; want pid %d gen 2 (not the old spare)", w2.PID(), w2.Generation(), next.forkedPIDs()[0])
	}
	if h := sys.handle(old.forkedPIDs()[1]); h.kills.Load() != 1 {
		t.Errorf("the old generation's spare was killed %d times; want 1", h.kills.Load())
	}
	if w1.Generation() != 1 || !w1.alive() {
		t.Errorf("the old worker: gen %d alive %v; want gen 1, still serving", w1.Generation(), w1.alive())
	}

	// A fork the template owes when it dies fails then, not at ForkTimeout.
	waitForks(t, sys, next, 2)
	sys.noFork.Store(true)
	sys.handle(next.forkedPIDs()[1]).exit() // the spare: Start must fork
	errc := make(chan error, 1)
	go func() { _, err := tm.Start(); errc <- err }()
	for range 3 { // w2's, the spare's and this Start's
		<-next.forks
	}
	next.exit(errors.New("exit status 1"))
	select {
	case err := <-errc:
		if want := "template pid " + itoa(next.pid) + " exited before its fork connected"; err == nil || err.Error() != want {
			t.Errorf("Start() while the template died = %v; want %q", err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Start() still waits 5 s after the template died (ForkTimeout is 10 s)")
	}
}

// A template that fails to boot: Boot returns its error with PHP's last output. A successor that
// fails is retried with back-off until one boots, which is announced as a new generation.
func TestBootFailure(t *testing.T) {
	sys := newFakeSystem(t, bootFail)
	tm, _ := newFake(t, sys, Options{Spare: true})
	err := tm.Boot()
	want := "template pid " + itoa(sys.template(0).pid) + " failed to boot: it ended (exit status 255) before askr_cow_ready(); last output:\nPHP Fatal error:  boom in /app/boot.php on line 3"
	if err == nil || err.Error() != want {
		t.Fatalf("Boot() error = %v; want %q", err, want)
	}
	if _, err := tm.Start(); err == nil || !strings.Contains(err.Error(), "failed to boot") {
		t.Errorf("Start() with a failing template = %v; want the boot error", err)
	}
	if tm.Generation() != 0 || tm.PID() != 0 {
		t.Errorf("no template booted: Generation() = %d, PID() = %d; want 0, 0", tm.Generation(), tm.PID())
	}

	sys = newFakeSystem(t, bootReady, bootFail, bootFail, bootReady)
	newGen := make(chan struct{}, 10)
	tm, logs := newFake(t, sys, Options{Spare: true, NewGeneration: func() { newGen <- struct{}{} }})
	if err := tm.Boot(); err != nil {
		t.Fatalf("Boot() error = %v", err)
	}
	sys.template(0).exit(errors.New("signal: killed"))
	select {
	case <-newGen:
	case <-time.After(10 * time.Second):
		t.Fatalf("NewGeneration not called; log:\n%s", logs.String())
	}
	if n := strings.Count(logs.String(), `msg="template failed to boot"`); n != 2 {
		t.Errorf("%d boot failures logged; want 2:\n%s", n, logs.String())
	}
	for _, want := range []string{"retry_in=100ms", "retry_in=200ms"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q (back-off):\n%s", want, logs.String())
		}
	}
	if tm.Generation() != 2 || tm.PID() != sys.template(3).pid {
		t.Errorf("Generation() = %d, PID() = %d; want 2, %d", tm.Generation(), tm.PID(), sys.template(3).pid)
	}
}

// A fork whose worker never connects fails after ForkTimeout.
func TestForkTimeout(t *testing.T) {
	sys := newFakeSystem(t)
	sys.noFork.Store(true)
	tm, _ := newFake(t, sys, Options{Spare: true, ForkTimeout: 50 * time.Millisecond})
	_, err := tm.Start()
	if want := "no forked worker connected within 50ms"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Start() = %v; want %q", err, want)
	}
}

// Close stops the template with a Stop frame, lets the spare go and answers later calls with
// errClosed; the workers handed out are the pool's to stop.
func TestClose(t *testing.T) {
	sys := newFakeSystem(t)
	tm, _ := newFake(t, sys, Options{Spare: true})
	w1 := start(t, tm)
	tp := sys.template(0)
	waitForks(t, sys, tp, 2)
	if err := tm.Close(); err != nil {
		t.Errorf("Close() = %v; want nil", err)
	}
	if !tp.stopped.Load() {
		t.Errorf("the template got no Stop frame")
	}
	if h := sys.handle(tp.forkedPIDs()[1]); h.kills.Load() != 1 || h.closed.Load() != 1 {
		t.Errorf("spare: %d kills, %d closes; want 1, 1", h.kills.Load(), h.closed.Load())
	}
	if !w1.alive() {
		t.Errorf("Close killed a worker handed to the pool")
	}
	select {
	case <-sys.ln.closed:
	default:
		t.Errorf("the listener is still open")
	}
	if _, err := tm.Start(); !errors.Is(err, errClosed) {
		t.Errorf("Start() after Close = %v; want errClosed", err)
	}
	if err := tm.Boot(); !errors.Is(err, errClosed) {
		t.Errorf("Boot() after Close = %v; want errClosed", err)
	}
	if err := tm.Close(); err != nil {
		t.Errorf("second Close() = %v; want nil", err)
	}
}

// Close during a boot waits for it and stops the template it booted; the Boot waiting is told the
// template is closed.
func TestCloseDuringBoot(t *testing.T) {
	sys := newFakeSystem(t)
	sys.gate, sys.entered = make(chan struct{}), make(chan struct{}, 1)
	tm, _ := newFake(t, sys, Options{Spare: true})
	booted := make(chan error, 1)
	go func() { booted <- tm.Boot() }()
	<-sys.entered // the boot is under way
	closed := make(chan error, 2)
	go func() { closed <- tm.Close() }()
	select {
	case err := <-booted:
		if !errors.Is(err, errClosed) {
			t.Errorf("Boot() during Close = %v; want errClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Boot() not answered 10 s after Close")
	}
	select {
	case <-closed:
		t.Fatalf("Close returned before the boot under way ended")
	default:
	}
	go func() { closed <- tm.Close() }() // a second Close beside the first
	close(sys.gate)
	for range 2 {
		select {
		case err := <-closed:
			if err != nil {
				t.Errorf("Close() = %v; want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Close() not returned 10 s after the boot ended")
		}
	}
	if tp := sys.template(0); !tp.stopped.Load() {
		t.Errorf("the template booted during Close got no Stop frame")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// Options.TemplateBooted is told each template's boot, Options.Forked each admitted fork (the
// spare's too), with the time it took.
func TestBootAndForkDurationsReported(t *testing.T) {
	sys := newFakeSystem(t)
	var mu sync.Mutex
	var boots, forks []time.Duration
	note := func(to *[]time.Duration) func(time.Duration) {
		return func(d time.Duration) { mu.Lock(); *to = append(*to, d); mu.Unlock() }
	}
	tm, _ := newFake(t, sys, Options{Spare: true, TemplateBooted: note(&boots), Forked: note(&forks)})
	began := time.Now()
	start(t, tm)
	tp := sys.template(0)
	waitForks(t, sys, tp, 2) // the spare
	took := time.Since(began)
	poll(t, "two forks reported", func() bool { mu.Lock(); defer mu.Unlock(); return len(forks) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if len(boots) != 1 || boots[0] <= 0 || boots[0] > took {
		t.Errorf("TemplateBooted got %v; want one boot, 0 < d ≤ %v", boots, took)
	}
	for _, d := range forks {
		if d <= 0 || d > took {
			t.Errorf("Forked got %v; want 0 < d ≤ %v each", forks, took)
		}
	}
}
