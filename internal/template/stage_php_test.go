package template

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/phpcgi"
	"github.com/askr-php/askr/internal/phpruntime"
	"github.com/askr-php/askr/internal/proc"
)

// Real php-cgi templates: the runtime's Template.php and Worker.php, forks, the private socket.

// stageScript is the worker script of release rel: each answer says
// "rel pid ppid starts served", starts being how often the askr_on_worker_start() hooks ran in the
// process (or in the one it was forked from, before the fork) and served the requests it answered
// (and the one it was forked from).
const stageScript = `<?php
$release = '%s';
$starts = 0;
$served = 0;
askr_on_worker_start(function () use (&$starts) { $starts++; });
askr_cow_ready();
while (askr_handle_request(function () use ($release, &$starts, &$served) {
    $served++;
    echo $release, ' ', getmypid(), ' ', posix_getppid(), ' ', $starts, ' ', $served;
})) {
}
`

// realTemplate returns a Template running php-cgi on the worker script path in appBase, closed at
// the end of the test; workers handed out are killed then too.
func realTemplate(t *testing.T, appBase, script string) (*Template, *logBuffer) {
	t.Helper()
	bin, err := exec.LookPath("php-cgi")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("php-cgi not found: %v", err)
		}
		t.Skip("php-cgi not installed")
	}
	runtime, remove, err := phpruntime.Install(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
	logs := &logBuffer{}
	dir := t.TempDir()
	l := phpcgi.NewLauncher(phpcgi.Config{Binary: bin, Runtime: runtime, Script: script, AppBase: appBase,
		Env: os.Environ(), Extra: Env(dir), DeathSignal: syscall.SIGTERM, Logger: logs.logger()})
	tm, err := New(Options{Launcher: l, Dir: dir, BootTimeout: 30 * time.Second, Logger: logs.logger(), WorkerLog: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tm.Close() })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	return tm, logs
}

// answer is what a worker running stageScript answered.
type answer struct {
	release              string
	pid, ppid, starts, n int
}

// get sends w one request and parses its answer.
func get(t *testing.T, w *worker) answer {
	t.Helper()
	var s channel.Serializer
	s.Array(5)
	s.String("server")
	s.Array(4)
	s.Pair("QUERY_STRING", "")
	s.Pair("REQUEST_METHOD", "GET")
	s.Pair("REQUEST_URI", "/")
	s.Pair("SCRIPT_NAME", "/worker.php")
	s.Close()
	s.Pair("body", "")
	s.Pair("body_file", "")
	s.String("post")
	s.Array(0)
	s.Close()
	s.String("files")
	s.Array(0)
	s.Close()
	s.Close()
	var body bodyRecorder
	if r := w.Exchange(s.B, &body); r.Err != nil {
		t.Fatalf("request to worker pid %d: %v", w.pid, r.Err)
	}
	f := strings.Fields(string(body.b))
	if len(f) != 5 {
		t.Fatalf("worker pid %d answered %q (status %d); want \"release pid ppid starts served\"", w.pid, body.b, body.status)
	}
	a := answer{release: f[0]}
	for i, p := range []*int{&a.pid, &a.ppid, &a.starts, &a.n} {
		*p, _ = strconv.Atoi(f[i+1])
	}
	return a
}

type bodyRecorder struct {
	status int
	b      []byte
}

func (b *bodyRecorder) Head(status int, _ []channel.Header) error { b.status = status; return nil }
func (b *bodyRecorder) Body(p []byte) error                       { b.b = append(b.b, p...); return nil }
func (b *bodyRecorder) Flush() error                              { return nil }

// startReal calls start (Start or StartStaged) and wants a worker, killed at the end of the test.
func startReal(t *testing.T, start func() (interface{ PID() int }, error)) *worker {
	t.Helper()
	p, err := start()
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	w := p.(*worker)
	t.Cleanup(func() { w.Kill(); <-w.Done(); w.Close() })
	return w
}

func startCur(tm *Template) func() (interface{ PID() int }, error) {
	return func() (interface{ PID() int }, error) { return tm.Start() }
}

func startStaged(tm *Template) func() (interface{ PID() int }, error) {
	return func() (interface{ PID() int }, error) { return tm.StartStaged() }
}

// waitGone waits until process pid has exited (and been reaped).
func waitGone(t *testing.T, what string, pid int) {
	t.Helper()
	poll(t, what, func() bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) })
}

// A reload after a deploy that swapped the current -> releases/N symlink: Stage(nil) boots a new
// template from the files as they are now (the launcher passes the configured paths, which the
// kernel resolves at exec and chdir), its canary serves the new release while Start still forks
// the old one; after Commit Start forks the new one, and the old template is stopped once its last
// worker has exited.
func TestStageBootPicksUpSwappedSymlink(t *testing.T) {
	root := t.TempDir()
	for _, rel := range []string{"1", "2"} {
		d := filepath.Join(root, "releases", rel)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "worker.php"), []byte(strings.Replace(stageScript, "%s", "R"+rel, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	current := filepath.Join(root, "current")
	if err := os.Symlink("releases/1", current); err != nil {
		t.Fatal(err)
	}
	tm, logs := realTemplate(t, current, filepath.Join(current, "worker.php"))
	if err := tm.Boot(); err != nil {
		t.Fatalf("Boot() = %v; log:\n%s", err, logs.String())
	}
	oldPID := tm.PID()
	w1 := startReal(t, startCur(tm))
	if a := get(t, w1); a.release != "R1" || a.ppid != oldPID {
		t.Fatalf("before the deploy: %+v; want R1 from a child of %d", a, oldPID)
	}

	// The deploy: current -> releases/2, swapped atomically.
	next := filepath.Join(root, "current.next")
	if err := os.Symlink("releases/2", next); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, current); err != nil {
		t.Fatal(err)
	}
	if err := tm.Stage(nil); err != nil {
		t.Fatalf("Stage(nil) = %v; log:\n%s", err, logs.String())
	}
	if tm.PID() != oldPID || tm.Generation() != 1 {
		t.Errorf("after Stage: PID() = %d, Generation() = %d; want %d, 1 (the current template is untouched)", tm.PID(), tm.Generation(), oldPID)
	}
	canary := startReal(t, startStaged(tm))
	a := get(t, canary)
	if a.release != "R2" || canary.Generation() != 2 || a.ppid == oldPID {
		t.Errorf("canary: %+v gen %d; want R2, gen 2, forked by the staged template (not %d)", a, canary.Generation(), oldPID)
	}
	staged := a.ppid
	if w := startReal(t, startCur(tm)); get(t, w).release != "R1" || w.Generation() != 1 {
		t.Errorf("Start() before Commit: want a worker of the old release, generation 1")
	}

	tm.Commit()
	if tm.PID() != staged || tm.Generation() != 2 {
		t.Errorf("after Commit: PID() = %d, Generation() = %d; want %d, 2", tm.PID(), tm.Generation(), staged)
	}
	w3 := startReal(t, startCur(tm))
	if a := get(t, w3); a.release != "R2" || a.ppid != staged || w3.Generation() != 2 {
		t.Errorf("Start() after Commit: %+v gen %d; want R2 from a child of %d, gen 2", a, w3.Generation(), staged)
	}
	if errors.Is(syscall.Kill(oldPID, 0), syscall.ESRCH) {
		t.Fatalf("the old template pid %d exited while its workers live", oldPID)
	}
	for _, p := range proc.Children(oldPID) { // its workers: w1 and the one Start gave before Commit
		syscall.Kill(p, syscall.SIGKILL)
	}
	waitGone(t, "the old template stopped after its last worker exited", oldPID)
	if !strings.Contains(logs.String(), `msg="retired template has no worker left; stopping it" pid=`+itoa(oldPID)) {
		t.Errorf("no stop of the retired template logged:\n%s", logs.String())
	}
}

// A refork: Stage(w) promotes the idle worker w (which has served requests) to be the staged
// template. It runs the askr_on_worker_start() hooks once more before it forks; its children run
// them again, serve requests, and are its children; the promoted worker answers none itself.
// After Commit it is the current template.
func TestStagePromotesWorker(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "worker.php")
	if err := os.WriteFile(script, []byte(strings.Replace(stageScript, "%s", "R1", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	tm, logs := realTemplate(t, dir, script)
	w0 := startReal(t, startCur(tm)) // keeps the first template running after Commit
	w := startReal(t, startCur(tm))
	first := tm.PID()
	for i := 1; i <= 3; i++ {
		if a := get(t, w); a.n != i || a.starts != 1 || a.ppid != first {
			t.Fatalf("worker request %d: %+v; want served %d, starts 1, a child of %d", i, a, i, first)
		}
	}
	if err := tm.Stage(w); err != nil {
		t.Fatalf("Stage(worker) = %v; log:\n%s", err, logs.String())
	}
	mold := w.pid
	var kids []*worker
	for range 2 {
		k := startReal(t, startStaged(tm))
		kids = append(kids, k)
		for i := 1; i <= 2; i++ {
			a := get(t, k)
			// starts: 1 in the worker, 1 before its fork, 1 in the child; served: the mold's 3, then its own.
			if a.pid != k.pid || a.pid == mold || a.ppid != mold || a.starts != 3 || a.n != 3+i || k.Generation() != 2 {
				t.Errorf("child of the promoted worker, request %d: %+v gen %d; want pid %d, a child of %d, starts 3, served %d, gen 2",
					i, a, k.Generation(), k.pid, mold, 3+i)
			}
		}
	}
	if proc.Parent(mold) != first {
		t.Errorf("the promoted worker's parent is %d; want the template %d", proc.Parent(mold), first)
	}
	tm.Commit()
	if tm.PID() != mold || tm.Generation() != 2 {
		t.Errorf("after Commit: PID() = %d, Generation() = %d; want %d, 2", tm.PID(), tm.Generation(), mold)
	}
	k := startReal(t, startCur(tm))
	if a := get(t, k); a.ppid != mold || a.pid == mold {
		t.Errorf("Start() after Commit: %+v; want a child of the promoted worker %d", a, mold)
	}
	// The first template is stopped once its last worker (w0; w is a template now) has exited.
	// The promoted worker, re-parented away from it, goes on forking while its parent is askrd or
	// that template. Here the test process is no subreaper: the promoted worker ends, and kills
	// its children with it.
	if errors.Is(syscall.Kill(first, 0), syscall.ESRCH) || errors.Is(syscall.Kill(mold, 0), syscall.ESRCH) {
		t.Fatalf("the first template or the promoted worker exited while the first had a worker")
	}
	w0.Kill()
	waitGone(t, "the first template stopped", first)
	waitGone(t, "the promoted worker, re-parented to neither askrd nor its template, ended", mold)
	for _, k := range kids {
		select {
		case <-k.Done():
		case <-time.After(10 * time.Second):
			t.Errorf("child %d of the promoted worker still runs 10 s after it ended", k.pid)
		}
	}
}

// asSubreaper runs the test binary as a child subreaper, as askrd is.
const asSubreaper = "ASKR_TEMPLATE_SUBREAPER"

// Under askrd (a subreaper) a promoted worker outlives the template it was forked from: once that
// one has exited, its parent is askrd, and it goes on forking workers that serve. The test runs in
// a copy of the test binary that is a subreaper (the other tests need one that is not).
func TestPromotedWorkerOutlivesItsTemplate(t *testing.T) {
	if os.Getenv(asSubreaper) != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPromotedWorkerOutlivesItsTemplate$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), asSubreaper+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestPromotedWorkerOutlivesItsTemplate") {
			t.Fatalf("as a subreaper: %v\n%s", err, out)
		}
		return
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "worker.php")
	if err := os.WriteFile(script, []byte(strings.Replace(stageScript, "%s", "R1", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	tm, logs := realTemplate(t, dir, script)
	w := startReal(t, startCur(tm))
	first := tm.PID()
	get(t, w)
	if err := tm.Stage(w); err != nil {
		t.Fatalf("Stage(worker) = %v; log:\n%s", err, logs.String())
	}
	tm.Commit() // the first template has no worker left: stopped at once
	waitGone(t, "the first template stopped", first)
	if p := proc.Parent(w.pid); p != os.Getpid() {
		t.Fatalf("the promoted worker's parent is %d; want askrd (the test process, %d)", p, os.Getpid())
	}
	time.Sleep(1500 * time.Millisecond) // the promoted worker checks its parent every second
	for range 2 {
		k := startReal(t, startCur(tm))
		if a := get(t, k); a.ppid != w.pid || a.release != "R1" {
			t.Errorf("Start() after the first template exited: %+v; want a child of the promoted worker %d", a, w.pid)
		}
	}
	if errors.Is(syscall.Kill(w.pid, 0), syscall.ESRCH) {
		t.Errorf("the promoted worker ended after its template exited")
	}
}
