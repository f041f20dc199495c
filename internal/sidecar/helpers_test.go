package sidecar

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/proc"
)

// TestMain lets the test binary act as the keeper (/proc/self/exe is the keeper Command runs) and
// as a stand-in for askrd that starts a keeper and waits to be killed (testParent).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == KeeperCommand {
		os.Exit(Keeper(os.Args[2:]))
	}
	if os.Getenv("ASKR_SIDECAR_TEST_PARENT") != "" {
		testParent()
	}
	os.Exit(m.Run())
}

// testParent starts the command in ASKR_SIDECAR_TEST_PARENT through a keeper (grace 300ms),
// prints the keeper's pid and waits to be killed.
func testParent() {
	p, err := Command(CommandSpec{Name: "t", Command: os.Getenv("ASKR_SIDECAR_TEST_PARENT"), Dir: "/", Env: os.Environ(),
		Grace: 300 * time.Millisecond})(0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("keeper %d\n", p.PID())
	select {}
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logBuf is a log written by a slog.TextHandler, read by the test.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the log lines that contain every one of parts.
func (l *logBuf) lines(parts ...string) []string {
	var out []string
next:
	for _, line := range strings.Split(l.String(), "\n") {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		out = append(out, line)
	}
	return out
}

func newLog() (*slog.Logger, *logBuf) {
	lb := &logBuf{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// fakeProc is a process the test ends: exit ends it with the given result, Signal calls onSignal.
type fakeProc struct {
	pid      int
	done     chan struct{}
	once     sync.Once
	mu       sync.Mutex
	failed   bool
	text     string
	signals  []syscall.Signal
	onSignal func(p *fakeProc, sig syscall.Signal)
}

var fakePIDs struct {
	sync.Mutex
	next int
}

func newFakeProc() *fakeProc {
	fakePIDs.Lock()
	defer fakePIDs.Unlock()
	fakePIDs.next++
	return &fakeProc{pid: 100000 + fakePIDs.next, done: make(chan struct{}), onSignal: exitOnSignal}
}

// exitOnSignal is a process that dies of any signal.
func exitOnSignal(p *fakeProc, sig syscall.Signal) { p.exit(true, "signal: "+sig.String()) }

func (p *fakeProc) exit(failed bool, text string) {
	p.once.Do(func() {
		p.mu.Lock()
		p.failed, p.text = failed, text
		p.mu.Unlock()
		close(p.done)
	})
}

func (p *fakeProc) PID() int              { return p.pid }
func (p *fakeProc) Done() <-chan struct{} { return p.done }
func (p *fakeProc) Close() error          { return nil }

func (p *fakeProc) Exit() (bool, string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed, p.text, true
}

func (p *fakeProc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	p.signals = append(p.signals, sig)
	p.mu.Unlock()
	p.onSignal(p, sig)
	return nil
}

// fakeLaunch records every Launch and makes each process with make (its number, from 0).
type fakeLaunch struct {
	mu     sync.Mutex
	starts []time.Time
	procs  []*fakeProc
	make   func(n int) (*fakeProc, error)
}

func (f *fakeLaunch) Launch(int) (Proc, error) {
	f.mu.Lock()
	n := len(f.starts)
	f.starts = append(f.starts, time.Now())
	f.mu.Unlock()
	p, err := f.make(n)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.procs = append(f.procs, p)
	f.mu.Unlock()
	return p, nil
}

func (f *fakeLaunch) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.starts)
}

func (f *fakeLaunch) times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.starts...)
}

func (f *fakeLaunch) proc(n int) *fakeProc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.procs[n]
}

// gone reports whether none of pids runs any more (a zombie has ended); starts holds their
// start times, so that a pid used again by a new process does not count.
func gone(pids []int, starts map[int]uint64) bool {
	for _, pid := range pids {
		st, err := proc.ReadStat(pid)
		if err == nil && st.State != 'Z' && st.StartTime == starts[pid] {
			return false
		}
	}
	return true
}

// tree waits until pid has descendants running n processes named comm, and returns all its
// descendants with their start times.
func tree(t *testing.T, pid int, comm string, n int) ([]int, map[int]uint64) {
	t.Helper()
	var pids []int
	starts := map[int]uint64{}
	waitFor(t, 5*time.Second, fmt.Sprintf("%d %s processes under pid %d", n, comm, pid), func() bool {
		pids, starts = pids[:0], map[int]uint64{}
		found := 0
		for _, d := range proc.Descendants(pid) {
			st, err := proc.ReadStat(d)
			if err != nil {
				continue
			}
			pids = append(pids, d)
			starts[d] = st.StartTime
			if st.Comm == comm {
				found++
			}
		}
		return found == n
	})
	return pids, starts
}
