package pool

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeMemory plays the memory of the pool's processes: what every process reads now.
type fakeMemory struct {
	mu           sync.Mutex
	rss, private uint64
	fullReads    int // PrivateDirty calls
	open, closed int
}

func (m *fakeMemory) set(rss, private uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rss, m.private = rss, private
}

func (m *fakeMemory) reads() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fullReads
}

func (m *fakeMemory) opener(p *Pool) {
	p.openMem = func(int) (memProbe, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.open++
		return fakeProbe{m}, nil
	}
}

type fakeProbe struct{ m *fakeMemory }

func (f fakeProbe) RSS() (uint64, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	return f.m.rss, nil
}

func (f fakeProbe) PrivateDirty() (uint64, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	f.m.fullReads++
	return f.m.private, nil
}

func (f fakeProbe) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	f.m.closed++
	return nil
}

const mb = 1 << 20

// A process over max_rss after a request has answered it, and is then stopped (not killed) and
// replaced, with one INFO line; under the limit it stays.
func TestMaxRSSRecycles(t *testing.T) {
	s := &convStarter{}
	var logs logBuffer
	mem := &fakeMemory{rss: 50 * mb}
	p := startPool(t, Options{Workers: 1, MaxRSS: 100 * mb, Logger: logs.logger()}, s, mem.opener)
	waitReady(t, p)
	var pids [4]int
	for i := range pids {
		if i == 2 {
			mem.set(150*mb, 0)
		}
		if i == 3 {
			mem.set(50*mb, 0)
		}
		if err := p.Call(context.Background(), nil, pidOf(&pids[i], Outcome{})); err != nil {
			t.Fatalf("request %d = %v; want answered", i, err)
		}
	}
	if pids[0] != pids[1] || pids[1] != pids[2] || pids[3] == pids[2] {
		t.Errorf("pids %v; want one process for 3 requests (over max_rss after the third), another for the fourth", pids)
	}
	old := s.proc(0)
	waitCond(t, "the process over max_rss stopped", func() bool { return old.stopped.Load() })
	if old.killed.Load() {
		t.Error("process over max_rss was killed; want Stop")
	}
	waitCond(t, "its exit counted as memory", func() bool { return p.Stats().Exits[ExitMemory] == 1 })
	lines := 0
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "over max_rss") {
			lines++
			if !strings.Contains(l, "level=INFO") || !strings.Contains(l, "pid="+strconv.Itoa(old.pid)) ||
				!strings.Contains(l, "rss=150.0MiB") || !strings.Contains(l, "max_rss=100.0MiB") {
				t.Errorf("log line %q; want INFO with the pid, the RSS and the limit", l)
			}
		}
	}
	if lines != 1 || mem.reads() != 0 {
		t.Errorf("%d max_rss lines, %d smaps_rollup reads; want 1, 0 (max_rss needs statm only)", lines, mem.reads())
	}
	waitCond(t, "the probe of the stopped process closed", func() bool { mem.mu.Lock(); defer mem.mu.Unlock(); return mem.closed == 1 })
}

// max_private_memory reads Private_Dirty only when RSS is over the limit, and then not after every
// request: when RSS has grown by a sixteenth of the limit (or a second passed), off the request's
// path. A process whose RSS is mostly shared (a CoW worker) is not recycled; one whose private
// memory is over is, after a request.
func TestMaxPrivateMemory(t *testing.T) {
	s := &convStarter{}
	var logs logBuffer
	mem := &fakeMemory{rss: 40 * mb, private: 30 * mb}
	p := startPool(t, Options{Workers: 1, MaxPrivate: 64 * mb, Logger: logs.logger()}, s, mem.opener)
	waitReady(t, p)
	call := func() int {
		t.Helper()
		var pid int
		if err := p.Call(context.Background(), nil, pidOf(&pid, Outcome{})); err != nil {
			t.Fatal(err)
		}
		return pid
	}
	first := call()
	if n := mem.reads(); n != 0 {
		t.Errorf("%d smaps_rollup reads with RSS under max_private_memory; want 0", n)
	}
	mem.set(250*mb, 10*mb) // 200 MB shared with a template, 10 MB its own
	for range 20 {
		if pid := call(); pid != first {
			t.Fatalf("process %d replaced by %d with 10 MB private, limit 64 MB; want it kept", first, pid)
		}
	}
	// One read when RSS went over; the next a second later at the earliest (this test takes less,
	// or a few more if the machine is slow).
	waitCond(t, "Private_Dirty read once RSS was over the limit", func() bool { return mem.reads() >= 1 })
	if n := mem.reads(); n > 3 {
		t.Errorf("%d smaps_rollup reads for 20 requests at a steady RSS; want 1 (one a second at most)", n)
	}
	before := mem.reads()
	mem.set(250*mb+4*mb, 70*mb) // grew by 4 MB (limit/16): read again, over
	if pid := call(); pid != first {
		t.Fatalf("request served by %d; want %d, which answers it before it is retired", pid, first)
	}
	waitCond(t, "Private_Dirty read again after RSS grew by limit/16", func() bool { return mem.reads() == before+1 })
	waitCond(t, "the process over max_private_memory stopped and counted", func() bool {
		return s.proc(0).stopped.Load() && p.Stats().Exits[ExitMemory] == 1
	})
	if s.proc(0).killed.Load() {
		t.Error("process over max_private_memory was killed; want Stop")
	}
	if pid := call(); pid == first {
		t.Errorf("request after the retirement served by %d; want a new process", pid)
	}
	want := "pid=" + strconv.Itoa(first) + " private_dirty=70.0MiB max_private_memory=64.0MiB rss=254.0MiB"
	if !strings.Contains(logs.String(), "level=INFO msg=\"worker over max_private_memory; replacing it after its current request\" "+want) {
		t.Errorf("log:\n%s\nwant an INFO line with %s", logs.String(), want)
	}
}
