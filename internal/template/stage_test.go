package template

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// stage calls Stage and wants no error.
func stage(t *testing.T, tm *Template, from *worker) {
	t.Helper()
	var err error
	if from == nil {
		err = tm.Stage(nil)
	} else {
		err = tm.Stage(from)
	}
	if err != nil {
		t.Fatalf("Stage() error = %v; want nil", err)
	}
}

// startStagedFake calls StartStaged and wants a worker.
func startStagedFake(t *testing.T, tm *Template) *worker {
	t.Helper()
	p, err := tm.StartStaged()
	if err != nil {
		t.Fatalf("StartStaged() error = %v; want a worker", err)
	}
	return p.(*worker)
}

// waitStopped waits until template p has got its Stop frame and exited.
func waitStopped(t *testing.T, what string, p *fakeTemplate) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: template pid %d still runs after 10 s", what, p.pid)
	}
	if !p.stopped.Load() {
		t.Errorf("%s: template pid %d exited without a Stop frame", what, p.pid)
	}
}

// noNewGeneration fails if NewGeneration was called.
func noNewGeneration(t *testing.T, newGen chan struct{}) {
	t.Helper()
	select {
	case <-newGen:
		t.Errorf("NewGeneration called; want the pool to roll over itself")
	default:
	}
}

// A reload: Stage boots a second template beside the first, which Start still forks from; the
// canary comes from the staged one, one generation up. Commit makes it current (Generation, PID,
// Start; the old spare is discarded; NewGeneration is not called), and the old template is stopped
// once the last worker forked from it has exited, not before.
func TestStageCommitRetiresTheOldTemplate(t *testing.T) {
	sys := newFakeSystem(t)
	newGen := make(chan struct{}, 10)
	tm, logs := newFake(t, sys, Options{Spare: true, NewGeneration: func() { newGen <- struct{}{} }})
	w1 := start(t, tm)
	old := sys.template(0)
	waitForks(t, sys, old, 2) // the spare

	stage(t, tm, nil)
	staged := sys.template(1)
	if tm.Generation() != 1 || tm.PID() != old.pid {
		t.Errorf("after Stage: Generation() = %d, PID() = %d; want 1, %d (unchanged)", tm.Generation(), tm.PID(), old.pid)
	}
	if err := tm.Stage(nil); !errors.Is(err, errStaged) {
		t.Errorf("second Stage() = %v; want errStaged", err)
	}
	canary := startStagedFake(t, tm)
	if canary.Generation() != 2 || canary.PID() != staged.forkedPIDs()[0] {
		t.Errorf("StartStaged() = pid %d gen %d; want pid %d (the staged template's fork), gen 2", canary.PID(), canary.Generation(), staged.forkedPIDs()[0])
	}
	w2 := start(t, tm) // the old spare
	if w2.Generation() != 1 || w2.PID() != old.forkedPIDs()[1] {
		t.Errorf("Start() before Commit = pid %d gen %d; want the old template's spare, pid %d gen 1", w2.PID(), w2.Generation(), old.forkedPIDs()[1])
	}
	waitForks(t, sys, old, 3) // its next spare

	tm.Commit()
	if tm.Generation() != 2 || tm.PID() != staged.pid {
		t.Errorf("after Commit: Generation() = %d, PID() = %d; want 2, %d", tm.Generation(), tm.PID(), staged.pid)
	}
	if h := sys.handle(old.forkedPIDs()[2]); h.kills.Load() != 1 {
		t.Errorf("the old generation's spare was killed %d times at Commit; want 1", h.kills.Load())
	}
	w3 := start(t, tm)
	if w3.Generation() != 2 || !forkedBy(staged, w3) {
		t.Errorf("Start() after Commit = pid %d gen %d; want a fork of the staged template, gen 2", w3.PID(), w3.Generation())
	}
	if old.stopped.Load() {
		t.Fatalf("the old template was stopped while workers of it live")
	}
	sys.handle(w1.PID()).exit()
	sys.handle(w2.PID()).exit()
	waitStopped(t, "retired template after its last worker exited", old)
	poll(t, "retired template's exit logged", func() bool {
		return strings.Contains(logs.String(), `msg="retired template exited" pid=`+itoa(old.pid))
	})
	if staged.stopped.Load() || !canary.alive() || !w3.alive() {
		t.Errorf("the new generation was touched")
	}
	noNewGeneration(t, newGen)
}

// A Stage whose template fails to boot returns PHP's error and leaves the current template as it
// was; StartStaged and Commit then have nothing to work on. A later Stage works, and Close stops
// the staged template as well as the current one.
func TestStageFailureLeavesTheCurrentTemplate(t *testing.T) {
	sys := newFakeSystem(t, bootReady, bootFail, bootReady)
	tm, _ := newFake(t, sys, Options{Spare: true})
	start(t, tm)
	cur := sys.template(0)
	err := tm.Stage(nil)
	want := "template pid " + itoa(sys.template(1).pid) + " failed to boot: it ended (exit status 255) before askr_cow_ready(); last output:\nPHP Fatal error:  boom in /app/boot.php on line 3"
	if err == nil || err.Error() != want {
		t.Fatalf("Stage() error = %v; want %q", err, want)
	}
	if _, err := tm.StartStaged(); err == nil || !strings.Contains(err.Error(), "no template is staged") {
		t.Errorf("StartStaged() after a failed Stage = %v; want \"no template is staged\"", err)
	}
	tm.Commit()
	tm.Abandon()
	if tm.Generation() != 1 || tm.PID() != cur.pid {
		t.Errorf("after a failed Stage, Commit and Abandon: Generation() = %d, PID() = %d; want 1, %d", tm.Generation(), tm.PID(), cur.pid)
	}
	if w := start(t, tm); w.Generation() != 1 || !forkedBy(cur, w) {
		t.Errorf("Start() after a failed Stage: pid %d gen %d; want a fork of the current template, gen 1", w.PID(), w.Generation())
	}
	stage(t, tm, nil)
	if w := startStagedFake(t, tm); w.Generation() != 2 {
		t.Errorf("StartStaged() after a second Stage: gen %d; want 2", w.Generation())
	}
	tm.Close() // stops both templates, the current and the staged one
	waitStopped(t, "the current template at Close", cur)
	waitStopped(t, "the staged template at Close", sys.template(2))
}

// forkedBy reports whether template p forked worker w.
func forkedBy(p *fakeTemplate, w *worker) bool {
	for _, pid := range p.forkedPIDs() {
		if pid == w.PID() {
			return true
		}
	}
	return false
}

// Abandon kills the staged template, and a fork asked of it fails; its canary is left to the
// pool, and the current template goes on.
func TestAbandon(t *testing.T) {
	sys := newFakeSystem(t)
	newGen := make(chan struct{}, 10)
	tm, _ := newFake(t, sys, Options{Spare: true, NewGeneration: func() { newGen <- struct{}{} }})
	start(t, tm)
	cur := sys.template(0)
	stage(t, tm, nil)
	staged := sys.template(1)
	canary := startStagedFake(t, tm)
	tm.Abandon()
	select {
	case <-staged.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the abandoned template still runs 10 s after Abandon")
	}
	if staged.stopped.Load() || staged.err == nil || staged.err.Error() != "signal: killed" {
		t.Errorf("abandoned template: stopped %v, exit %v; want killed", staged.stopped.Load(), staged.err)
	}
	if !canary.alive() {
		t.Errorf("Abandon killed the canary; want it left to the pool")
	}
	if _, err := tm.StartStaged(); err == nil {
		t.Errorf("StartStaged() after Abandon = nil error; want one")
	}
	if tm.Generation() != 1 || tm.PID() != cur.pid {
		t.Errorf("after Abandon: Generation() = %d, PID() = %d; want 1, %d", tm.Generation(), tm.PID(), cur.pid)
	}
	if w := start(t, tm); w.Generation() != 1 || !forkedBy(cur, w) {
		t.Errorf("Start() after Abandon = pid %d gen %d; want a fork of the current template", w.PID(), w.Generation())
	}
	if cur.stopped.Load() {
		t.Errorf("Abandon stopped the current template")
	}
	noNewGeneration(t, newGen)
}

// A refork: Stage(w) promotes the idle worker w (Promote, Ready); its forks are admitted (their
// parent is a known template now) as the next generation, and after Commit Start forks from it.
// The old template, which w was the last worker of, is stopped at Commit.
func TestStagePromotesAWorker(t *testing.T) {
	sys := newFakeSystem(t)
	tm, _ := newFake(t, sys, Options{})
	w := start(t, tm)
	old := sys.template(0)
	stage(t, tm, w)
	mold := sys.mold(w.PID())
	if tm.Generation() != 1 || tm.PID() != old.pid {
		t.Errorf("after Stage(worker): Generation() = %d, PID() = %d; want 1, %d", tm.Generation(), tm.PID(), old.pid)
	}
	canary := startStagedFake(t, tm)
	if canary.Generation() != 2 || canary.PID() != mold.forkedPIDs()[0] {
		t.Errorf("StartStaged() = pid %d gen %d; want pid %d (forked by the promoted worker), gen 2", canary.PID(), canary.Generation(), mold.forkedPIDs()[0])
	}
	if old.stopped.Load() {
		t.Errorf("the current template was stopped before Commit")
	}
	tm.Commit()
	if tm.Generation() != 2 || tm.PID() != w.PID() {
		t.Errorf("after Commit: Generation() = %d, PID() = %d; want 2, %d", tm.Generation(), tm.PID(), w.PID())
	}
	waitStopped(t, "the old template, whose only worker became the template", old)
	if w2 := start(t, tm); w2.Generation() != 2 || !forkedBy(mold, w2) {
		t.Errorf("Start() after Commit = pid %d gen %d; want a fork of the promoted worker, gen 2", w2.PID(), w2.Generation())
	}
	if n := len(old.forkedPIDs()); n != 1 {
		t.Errorf("the old template forked %d workers; want 1 (Spare off)", n)
	}
	tm.Close()
	waitStopped(t, "the promoted worker at Close", mold)
}

// A worker that does not answer Promote with Ready: Stage fails, and the worker (the Template's
// now) is killed and released; the current template goes on.
func TestStagePromoteFailureEndsTheWorker(t *testing.T) {
	sys := newFakeSystem(t)
	tm, _ := newFake(t, sys, Options{})
	w := start(t, tm)
	sys.noReady.Store(true)
	err := tm.Stage(w)
	if want := "promote worker pid " + itoa(w.PID()) + " to template: it ended before it answered Ready"; err == nil || err.Error() != want {
		t.Errorf("Stage(worker) = %v; want %q", err, want)
	}
	h := sys.handle(w.PID())
	if h.kills.Load() != 1 || h.closed.Load() != 1 {
		t.Errorf("the worker Stage failed to promote: %d kills, %d closes; want 1, 1", h.kills.Load(), h.closed.Load())
	}
	if tm.Generation() != 1 {
		t.Errorf("Generation() = %d; want 1", tm.Generation())
	}
	if _, err := tm.StartStaged(); err == nil {
		t.Errorf("StartStaged() after a failed Stage = nil error; want one")
	}
	start(t, tm)
}

// Without Spare, Start forks for every worker and nothing is forked ahead.
func TestNoSpare(t *testing.T) {
	sys := newFakeSystem(t)
	tm, _ := newFake(t, sys, Options{})
	tp := (*fakeTemplate)(nil)
	for i := range 3 {
		w := start(t, tm)
		tp = sys.template(0)
		if pids := tp.forkedPIDs(); w.PID() != pids[i] {
			t.Errorf("Start() %d = pid %d; want a new fork, pid %d", i+1, w.PID(), pids[i])
		}
	}
	tm.Close() // the template takes the Stop frame after every Fork frame sent before it
	if n := len(tp.forkedPIDs()); n != 3 {
		t.Errorf("%d forks for 3 Starts; want 3 (no spare)", n)
	}
}

// A current template that dies while another is staged is replaced (a cold boot) within its
// generation: the staged one is the next, and its canary may serve already. Commit then rolls
// both over (NewGeneration is not called), and the successor is retired like any old template.
func TestCurrentDiesWhileStagedThenCommit(t *testing.T) {
	sys := newFakeSystem(t)
	newGen := make(chan struct{}, 10)
	tm, logs := newFake(t, sys, Options{NewGeneration: func() { newGen <- struct{}{} }})
	start(t, tm)
	stage(t, tm, nil)
	staged := sys.template(1)
	canary := startStagedFake(t, tm)
	sys.template(0).exit(errors.New("signal: killed"))
	successor := sys.template(2)
	poll(t, "successor current", func() bool { return tm.PID() == successor.pid })
	if tm.Generation() != 1 {
		t.Errorf("successor of a template that died while one is staged: Generation() = %d; want 1", tm.Generation())
	}
	w := start(t, tm)
	if w.Generation() != 1 || !forkedBy(successor, w) {
		t.Errorf("Start() = pid %d gen %d; want a fork of the successor, gen 1", w.PID(), w.Generation())
	}
	tm.Commit()
	if tm.Generation() != 2 || tm.PID() != staged.pid || canary.Generation() != 2 {
		t.Errorf("after Commit: Generation() = %d, PID() = %d, canary gen %d; want 2, %d, 2", tm.Generation(), tm.PID(), canary.Generation(), staged.pid)
	}
	sys.handle(w.PID()).exit()
	waitStopped(t, "the successor, retired", successor)
	noNewGeneration(t, newGen)
	if !strings.Contains(logs.String(), `msg="template exited; booting a new one"`) {
		t.Errorf("the death was not logged:\n%s", logs.String())
	}
}

// The same, abandoned: the successor is then a new generation, announced by NewGeneration, so that
// the pool rolls the dead template's orphans over, as it does when no template is staged.
func TestCurrentDiesWhileStagedThenAbandon(t *testing.T) {
	sys := newFakeSystem(t)
	newGen := make(chan struct{}, 10)
	tm, _ := newFake(t, sys, Options{NewGeneration: func() { newGen <- struct{}{} }})
	start(t, tm)
	stage(t, tm, nil)
	sys.template(0).exit(errors.New("signal: killed"))
	successor := sys.template(2)
	poll(t, "successor current", func() bool { return tm.PID() == successor.pid })
	noNewGeneration(t, newGen)
	tm.Abandon()
	select {
	case <-newGen:
	case <-time.After(10 * time.Second):
		t.Fatalf("NewGeneration not called after Abandon")
	}
	if tm.Generation() != 2 || tm.PID() != successor.pid {
		t.Errorf("after Abandon: Generation() = %d, PID() = %d; want 2, %d", tm.Generation(), tm.PID(), successor.pid)
	}
	if w := start(t, tm); w.Generation() != 2 || !forkedBy(successor, w) {
		t.Errorf("Start() after Abandon = pid %d gen %d; want a fork of the successor, gen 2", w.PID(), w.Generation())
	}
}

// A staged template that dies: StartStaged fails; Commit boots a successor for it, announced as a
// new generation, as a current template that dies is.
func TestStagedTemplateDies(t *testing.T) {
	sys := newFakeSystem(t)
	newGen := make(chan struct{}, 10)
	tm, _ := newFake(t, sys, Options{NewGeneration: func() { newGen <- struct{}{} }})
	w := start(t, tm)
	stage(t, tm, nil)
	staged := sys.template(1)
	staged.exit(errors.New("signal: killed"))
	poll(t, "StartStaged fails", func() bool {
		_, err := tm.StartStaged()
		return err != nil && strings.Contains(err.Error(), "has exited")
	})
	tm.Commit()
	select {
	case <-newGen:
	case <-time.After(10 * time.Second):
		t.Fatalf("NewGeneration not called after committing a dead template")
	}
	if next := sys.template(2); tm.Generation() != 3 || tm.PID() != next.pid {
		t.Errorf("after Commit of a dead template: Generation() = %d, PID() = %d; want 3, %d", tm.Generation(), tm.PID(), next.pid)
	}
	sys.handle(w.PID()).exit()
	waitStopped(t, "the old current template, retired, after its worker exited", sys.template(0))
}

// The current template dies while a worker is being promoted, and the promotion then fails: the
// successor, which kept the dead template's generation while a template was being staged, becomes
// a new generation after all, so that the pool rolls the dead one's workers over.
func TestFailedStageSettlesTheOwedRoll(t *testing.T) {
	sys := newFakeSystem(t)
	newGen := make(chan struct{}, 10)
	tm, logs := newFake(t, sys, Options{ForkTimeout: 2 * time.Second, NewGeneration: func() { newGen <- struct{}{} }})
	w := start(t, tm)
	start(t, tm) // an orphan-to-be of the template that dies
	promoting, release := make(chan struct{}), make(chan struct{})
	sys.ln.promote = func(int, net.Conn) { close(promoting); <-release } // answers no Ready
	errc := make(chan error, 1)
	go func() { errc <- tm.Stage(w) }()
	<-promoting
	sys.template(0).exit(errors.New("signal: killed"))
	successor := sys.template(1)
	poll(t, "the successor current", func() bool { return tm.PID() == successor.pid })
	close(release)
	if err := <-errc; err == nil {
		t.Fatal("Stage of a worker that never answered Ready = nil; want an error")
	}
	select {
	case <-newGen:
	case <-time.After(5 * time.Second):
		t.Fatalf("NewGeneration not called after the failed Stage; Generation() = %d\n%s", tm.Generation(), logs.String())
	}
	if g := tm.Generation(); g != 2 {
		t.Errorf("Generation() = %d after the failed Stage; want 2 (the successor, a new generation)", g)
	}
}
