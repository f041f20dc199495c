package pool

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/channel"
)

// genProc is a worker forked from a fake template: a fakeProc of that template's generation.
type genProc struct {
	*fakeProc
	gen int64
}

func (g genProc) Generation() int64 { return g.gen }

// fakeStager plays CoW mode's template (a Stager): each template is a fakeStarter of its own
// (its behaviour is the code it loaded), numbered by its generation; pids of generation g are
// 1001+1000g, ….
type fakeStager struct {
	mu       sync.Mutex
	cur      *fakeStarter // the template Start forks from
	staged   *fakeStarter // nil: none
	gen      atomic.Int64
	next     behaviour     // what the next staged template's workers do
	boot     time.Duration // how long a worker of a staged template takes to start (0: at once)
	stageErr error         // Stage fails with it
	froms    []Process     // Stage's arguments
	commits  atomic.Int64
	abandons atomic.Int64
}

func newFakeStager(old, next behaviour) *fakeStager {
	return &fakeStager{cur: &fakeStarter{act: old}, next: next}
}

func (s *fakeStager) Generation() int64 { return s.gen.Load() }

func (s *fakeStager) Start() (Process, error) {
	s.mu.Lock()
	t, gen := s.cur, s.gen.Load()
	s.mu.Unlock()
	return fork(t, gen)
}

func fork(t *fakeStarter, gen int64) (Process, error) {
	pr, err := t.Start()
	if err != nil {
		return nil, err
	}
	return genProc{pr.(*fakeProc), gen}, nil
}

func (s *fakeStager) Stage(from Process) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.staged != nil {
		panic("Stage called twice without Commit or Abandon")
	}
	s.froms = append(s.froms, from)
	if s.stageErr != nil {
		if from != nil {
			from.Kill() // it is the Stager's: its end is no exit of the pool
		}
		return s.stageErr
	}
	s.staged = &fakeStarter{act: s.next, base: 1000 * int(s.gen.Load()+1)}
	if d := s.boot; d > 0 {
		s.staged.gate = func(int64) error { time.Sleep(d); return nil } // a boot's duration
	}
	return nil
}

func (s *fakeStager) StartStaged() (Process, error) {
	s.mu.Lock()
	t := s.staged
	s.mu.Unlock()
	if t == nil {
		return nil, errors.New("nothing staged")
	}
	return fork(t, s.gen.Load()+1)
}

func (s *fakeStager) Commit() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur, s.staged = s.staged, nil
	s.gen.Add(1)
	s.commits.Add(1)
}

func (s *fakeStager) Abandon() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.staged = nil
	s.abandons.Add(1)
}

func (s *fakeStager) stagedFrom() []Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Process(nil), s.froms...)
}

// statusResponse answers status with body.
func statusResponse(status int, body string) []byte {
	out := frame(channel.TypeHead, 0, append([]byte{byte(status >> 8), byte(status)}, "X-Test: 1"...))
	out = append(out, frame(channel.TypeBody, 0, []byte(body))...)
	return append(out, frame(channel.TypeEnd, 0, make([]byte, 16))...)
}

// load sends requests from clients goroutines until stop is closed; it returns the count of
// requests Call failed, and of answers per body, once they have ended.
func load(p *Pool, clients int, stop <-chan struct{}) func() (failed int, bodies map[string]int) {
	var mu sync.Mutex
	bodies := map[string]int{}
	failed := 0
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var r recorder
				err := serve(p, context.Background(), []byte("req"), &r)
				mu.Lock()
				if err != nil {
					failed++
				} else {
					bodies[string(r.body)]++
				}
				mu.Unlock()
			}
		}()
	}
	return func() (int, map[string]int) {
		wg.Wait()
		return failed, bodies
	}
}

// pids is the set of the pool's workers by pid, with their generations.
func pids(p *Pool) map[int]int64 {
	m := map[int]int64{}
	for _, w := range p.Workers() {
		m[w.PID] = w.Generation
	}
	return m
}

var canaryOpts = Canary{Enabled: true, Window: 300 * time.Millisecond, MinRequests: 5, MaxErrorRate: 2, MaxLatencyFactor: 50}

// reloadUnderLoad runs Reload while 3 clients send requests, and returns what the clients saw
// and Reload's error.
func reloadUnderLoad(t *testing.T, p *Pool) (int, map[string]int, error) {
	t.Helper()
	stop := make(chan struct{})
	wait := load(p, 3, stop)
	err := p.Reload()
	time.Sleep(50 * time.Millisecond) // some requests after the verdict too
	close(stop)
	failed, bodies := wait()
	return failed, bodies, err
}

// A canary that answers as well as the old workers passes: every old worker is replaced by one
// of the new template, no request fails, and Rollout ends ok.
func TestReloadCanaryPasses(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte { return okResponse("new") })
	p := startPool(t, Options{Workers: 3, Canary: canaryOpts}, s)
	waitReady(t, p)
	old := pids(p)
	oldTemplate := s.cur
	failed, bodies, err := reloadUnderLoad(t, p)
	if err != nil || failed != 0 || bodies["new"] == 0 {
		t.Fatalf("Reload() = %v; %d requests failed, answers %v; want nil, 0, some new", err, failed, bodies)
	}
	waitCond(t, "every old worker replaced", func() bool {
		now := pids(p)
		for pid := range old {
			if _, ok := now[pid]; ok {
				return false
			}
		}
		for _, g := range now {
			if g != 1 {
				return false
			}
		}
		return len(now) == 3
	})
	waitCond(t, "rollout ok", func() bool { return p.Stats().Rollout.State == RolloutOK })
	r := p.Stats().Rollout
	if r.Cause != "reload" || r.From != 0 || r.To != 1 || r.Canary < 2001 || r.Ended.Before(r.Started) || !strings.Contains(r.Detail, "canary pid") {
		t.Errorf("Rollout = %+v; want reload 0 → 1, the canary's pid, ended", r)
	}
	if s.commits.Load() != 1 || s.abandons.Load() != 0 || p.Stats().Generation != 1 {
		t.Errorf("%d commits, %d abandons, generation %d; want 1, 0, 1", s.commits.Load(), s.abandons.Load(), p.Stats().Generation)
	}
	for i := 0; oldTemplate.proc(i) != nil; i++ {
		select {
		case <-oldTemplate.proc(i).done:
		default:
			t.Errorf("old worker pid %d still runs", oldTemplate.proc(i).pid)
		}
	}
}

// A canary that answers 500 to a share of its requests is rolled back: it is retired, the old
// workers all go on serving, the template is abandoned and Reload names the rate.
func TestReloadCanaryErrorsRollBack(t *testing.T) {
	var n atomic.Int64
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte {
		if n.Add(1)%2 == 0 {
			return statusResponse(500, "new, failing")
		}
		return okResponse("new")
	})
	logs := &logBuffer{}
	p := startPool(t, Options{Workers: 3, Canary: canaryOpts, Logger: logs.logger()}, s)
	waitReady(t, p)
	old := pids(p)
	failed, bodies, err := reloadUnderLoad(t, p)
	if err == nil || !regexp.MustCompile(`canary pid 2001 answered 5xx to [3-6]\d\.\d% of \d+ requests in 300ms, the old workers to 0\.0% of \d+`).MatchString(err.Error()) || !strings.Contains(err.Error(), "canary_max_error_rate 2 points") {
		t.Fatalf("Reload() = %v; want the canary's 5xx rate", err)
	}
	if failed != 0 || bodies["old"] == 0 {
		t.Errorf("%d requests failed, answers %v; want 0 failed, the old workers serving", failed, bodies)
	}
	waitCond(t, "the canary gone, the old workers left", func() bool {
		now := pids(p)
		if len(now) != len(old) {
			return false
		}
		for pid, g := range old {
			if now[pid] != g {
				return false
			}
		}
		return true
	})
	r := p.Stats().Rollout
	if r.State != RolloutAborted || !strings.Contains(r.Detail, "5xx") || r.Ended.IsZero() || p.Stats().Generation != 0 {
		t.Errorf("Rollout = %+v, generation %d; want aborted naming the 5xx rate, generation 0", r, p.Stats().Generation)
	}
	if s.commits.Load() != 0 || s.abandons.Load() != 1 {
		t.Errorf("%d commits, %d abandons; want 0, 1", s.commits.Load(), s.abandons.Load())
	}
	if !strings.Contains(logs.String(), "level=ERROR msg=\"reload: canary rolled back") {
		t.Errorf("log %q; want an ERROR line for the rollback", logs.String())
	}
	// The next reload may run: its template is good.
	s.next = func([]byte) []byte { return okResponse("new") }
	if failed, _, err := reloadUnderLoad(t, p); err != nil || failed != 0 {
		t.Errorf("second Reload() = %v, %d failed; want nil, 0", err, failed)
	}
}

// A canary much slower than the old workers is rolled back by canary_max_latency_factor.
func TestReloadSlowCanaryRollsBack(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte {
		time.Sleep(20 * time.Millisecond)
		return okResponse("new")
	})
	c := canaryOpts
	c.MinRequests, c.MaxLatencyFactor = 3, 3
	p := startPool(t, Options{Workers: 2, Canary: c}, s)
	waitReady(t, p)
	failed, _, err := reloadUnderLoad(t, p)
	if err == nil || !strings.Contains(err.Error(), "per request") || !strings.Contains(err.Error(), "canary_max_latency_factor 3") {
		t.Fatalf("Reload() = %v; want the canary's latency named", err)
	}
	if failed != 0 || s.abandons.Load() != 1 || p.Stats().Rollout.State != RolloutAborted {
		t.Errorf("%d failed, %d abandons, Rollout %+v; want 0, 1, aborted", failed, s.abandons.Load(), p.Stats().Rollout)
	}
	waitCond(t, "the canary retired", func() bool { return len(p.Workers()) == 2 })
}

// A canary that serves too few requests in its window is not judged: the reload rolls on, with a
// warning, and Rollout ends inconclusive.
func TestReloadCanaryInconclusive(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte { return okResponse("new") })
	logs := &logBuffer{}
	p := startPool(t, Options{Workers: 2, Canary: canaryOpts, Logger: logs.logger()}, s)
	waitReady(t, p)
	if err := p.Reload(); err != nil {
		t.Fatalf("Reload() without traffic = %v; want nil (inconclusive rolls on)", err)
	}
	waitCond(t, "rollout inconclusive", func() bool { return p.Stats().Rollout.State == RolloutInconclusive })
	for _, w := range p.Workers() {
		if w.Generation != 1 {
			t.Errorf("worker %d of generation %d after the rollout; want 1", w.PID, w.Generation)
		}
	}
	if !strings.Contains(logs.String(), "level=WARN msg=\"reload: canary verdict inconclusive") ||
		!strings.Contains(logs.String(), "fewer than canary_min_requests 5") {
		t.Errorf("log %q; want a warning naming canary_min_requests", logs.String())
	}
}

// A new template that fails to boot leaves everything as it was; Reload returns PHP's error.
func TestReloadStageFailure(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, nil)
	s.stageErr = errors.New("PHP Parse error: syntax error in /app/worker.php on line 3")
	p := startPool(t, Options{Workers: 2, Canary: canaryOpts}, s)
	waitReady(t, p)
	before := pids(p)
	err := p.Reload()
	if err == nil || !strings.Contains(err.Error(), "PHP Parse error: syntax error") {
		t.Fatalf("Reload() = %v; want PHP's error", err)
	}
	after := pids(p)
	if len(after) != len(before) {
		t.Errorf("workers %v after a failed stage; want %v", after, before)
	}
	for pid, g := range before {
		if after[pid] != g {
			t.Errorf("workers %v after a failed stage; want %v", after, before)
		}
	}
	r := p.Stats().Rollout
	if r.State != RolloutAborted || !strings.Contains(r.Detail, "PHP Parse error") || r.Canary != 0 || p.Stats().Generation != 0 {
		t.Errorf("Rollout = %+v; want aborted with PHP's error, no canary, generation 0", r)
	}
	var rec recorder
	if err := serve(p, context.Background(), nil, &rec); err != nil || string(rec.body) != "old" {
		t.Errorf("request after the failed reload: %v %q; want the old code", err, rec.body)
	}
}

// A second reload while the first judges its canary is refused.
func TestReloadWhileJudging(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte { return okResponse("new") })
	c := canaryOpts
	c.Window = time.Second
	p := startPool(t, Options{Workers: 1, Canary: c}, s)
	waitReady(t, p)
	first := make(chan error, 1)
	go func() { first <- p.Reload() }()
	waitCond(t, "the canary judged", func() bool { return p.Stats().Rollout.Canary != 0 })
	if err := p.Reload(); err == nil || !strings.Contains(err.Error(), "a reload is already running") {
		t.Errorf("second Reload() = %v; want \"a reload is already running\"", err)
	}
	if err := <-first; err != nil {
		t.Errorf("first Reload() = %v", err)
	}
}

// In worker mode (no Stager) the canary is judged the same way, then the generation is raised.
func TestReloadCanaryWorkerMode(t *testing.T) {
	s := &fakeStarter{act: func([]byte) []byte { return okResponse("ok") }}
	p := startPool(t, Options{Workers: 2, Canary: canaryOpts}, s)
	waitReady(t, p)
	old := pids(p)
	failed, _, err := reloadUnderLoad(t, p)
	if err != nil || failed != 0 {
		t.Fatalf("Reload() = %v, %d failed; want nil, 0", err, failed)
	}
	waitCond(t, "rollout ok, every worker of generation 1", func() bool {
		now := pids(p)
		for pid, g := range now {
			if _, was := old[pid]; was || g != 1 {
				return false
			}
		}
		return len(now) == 2 && p.Stats().Rollout.State == RolloutOK
	})
}

// A pool stopped during a canary window stops the canary with its workers, abandons the staged
// template, and Run and Reload return.
func TestStopDuringCanaryWindow(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte { return okResponse("new") })
	c := canaryOpts
	c.Window = time.Minute
	p := New(Options{Workers: 2, QueueSize: 1, QueueTimeout: time.Minute, Canary: c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, s)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	waitReady(t, p)
	reloaded := make(chan error, 1)
	go func() { reloaded <- p.Reload() }()
	waitCond(t, "the canary serves", func() bool { return len(p.Workers()) == 3 })
	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run() = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10s after the pool was stopped during a canary window")
	}
	select {
	case err := <-reloaded:
		if err == nil || !strings.Contains(err.Error(), "stopped") {
			t.Errorf("Reload() = %v; want an error saying the pool stopped", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Reload() still judges 10s after the pool stopped")
	}
	if s.abandons.Load() != 1 || s.commits.Load() != 0 {
		t.Errorf("%d abandons, %d commits; want 1, 0", s.abandons.Load(), s.commits.Load())
	}
	if r := p.Stats().Rollout; r.State != RolloutAborted {
		t.Errorf("Rollout = %+v; want aborted", r)
	}
}

// refork_after: the worker that has served N requests becomes the next template (Stage gets it),
// leaves the books without an exit, and the pool rolls over to workers forked from it; the list
// used up, no more reforks.
func TestReforkAfter(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte { return okResponse("new") })
	var mu sync.Mutex
	exited := map[int]ExitReason{}
	p := startPool(t, Options{Workers: 2, ReforkAfter: []int{5}, Exited: func(pid int, r ExitReason) {
		mu.Lock()
		exited[pid] = r
		mu.Unlock()
	}}, s)
	waitReady(t, p)
	old := pids(p)
	for i := range 10 { // on 2 workers in turn: one of them serves its 5th
		if err := serve(p, context.Background(), nil, &recorder{}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	waitCond(t, "a refork", func() bool { return len(s.stagedFrom()) == 1 })
	from := s.stagedFrom()[0]
	if _, ok := old[from.PID()]; !ok || from.(genProc).served.Load() != 5 {
		t.Fatalf("Stage(pid %d, %d served); want an old worker (%v) that served 5", from.PID(), from.(genProc).served.Load(), old)
	}
	waitCond(t, "rollout ok, every worker of generation 1", func() bool {
		now := pids(p)
		if _, ok := now[from.PID()]; ok {
			return false
		}
		for _, g := range now {
			if g != 1 {
				return false
			}
		}
		return len(now) == 2 && p.Stats().Rollout.State == RolloutOK
	})
	r := p.Stats().Rollout
	if r.Cause != "refork" || r.From != 0 || r.To != 1 {
		t.Errorf("Rollout = %+v; want refork 0 → 1", r)
	}
	select {
	case <-from.Done():
		t.Error("the promoted worker was stopped or killed; want it left to the Stager")
	default:
	}
	mu.Lock()
	for pid := range old {
		if r, ok := exited[pid]; pid == from.PID() && ok || pid != from.PID() && r != ExitReload {
			t.Errorf("old worker %d: exit %v (%v); want none for the promoted worker, reload for the other", pid, r, ok)
		}
	}
	mu.Unlock()
	for i := range 20 {
		if err := serve(p, context.Background(), nil, &recorder{}); err != nil {
			t.Fatalf("request %d after the refork: %v", i, err)
		}
	}
	if n := len(s.stagedFrom()); n != 1 {
		t.Errorf("%d reforks; want 1 (refork_after has one count)", n)
	}
	from.Kill() // the fake template's end
}

// An old worker that dies while the canary is judged is replaced by one of the old generation
// (nothing is committed yet), and the canary stays an extra worker. Without traffic the canary
// answered no request: inconclusive, it rolls on.
func TestOldWorkerDiesDuringCanaryWindow(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte { return okResponse("new") })
	c := canaryOpts
	c.Window, c.MinRequests = time.Second, 0
	p := startPool(t, Options{Workers: 2, Canary: c}, s)
	waitReady(t, p)
	oldTemplate := s.cur
	reloaded := make(chan error, 1)
	go func() { reloaded <- p.Reload() }()
	waitCond(t, "the canary serves", func() bool { return len(p.Workers()) == 3 })
	oldTemplate.proc(0).exit()
	waitCond(t, "the dead worker replaced from the old template", func() bool {
		now := pids(p)
		if _, dead := now[oldTemplate.proc(0).pid]; dead || len(now) != 3 || oldTemplate.proc(2) == nil {
			return false
		}
		g, ok := now[oldTemplate.proc(2).pid]
		return ok && g == 0
	})
	if err := <-reloaded; err != nil {
		t.Fatalf("Reload() = %v", err)
	}
	waitCond(t, "rollout inconclusive, 2 workers of generation 1", func() bool {
		now := pids(p)
		for _, g := range now {
			if g != 1 {
				return false
			}
		}
		return len(now) == 2 && p.Stats().Rollout.State == RolloutInconclusive
	})
}

// A refork whose Stage fails is logged and aborted, not tried again for its count; the next
// count still applies.
func TestReforkStageFailureThenNextCount(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte { return okResponse("new") })
	s.stageErr = errors.New("promote: no answer")
	logs := &logBuffer{}
	p := startPool(t, Options{Workers: 1, ReforkAfter: []int{3, 2}, Logger: logs.logger()}, s)
	waitReady(t, p)
	for i := range 3 {
		if err := serve(p, context.Background(), nil, &recorder{}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	waitCond(t, "the refork aborted", func() bool {
		r := p.Stats().Rollout
		return r.State == RolloutAborted && r.Cause == "refork" && strings.Contains(r.Detail, "promote: no answer")
	})
	if !strings.Contains(logs.String(), "level=WARN msg=\"refork failed") {
		t.Errorf("log %q; want a warning for the failed refork", logs.String())
	}
	if st := p.Stats(); st.Exits != [numExitReasons]uint64{} {
		t.Errorf("exits %v; want none (the promoted worker is the Stager's)", st.Exits)
	}
	s.mu.Lock()
	s.stageErr = nil
	s.mu.Unlock()
	// The replacement of the promoted worker serves; at its 2nd request the next count applies.
	for i := range 4 {
		if err := serve(p, context.Background(), nil, &recorder{}); err != nil {
			t.Fatalf("request %d after the failed refork: %v", i, err)
		}
	}
	waitCond(t, "the second refork done", func() bool {
		return len(s.stagedFrom()) == 2 && p.Stats().Rollout.State == RolloutOK && p.Stats().Generation == 1
	})
	if froms := s.stagedFrom(); froms[0].PID() == froms[1].PID() {
		t.Errorf("both reforks staged pid %d; want two workers", froms[0].PID())
	}
}
