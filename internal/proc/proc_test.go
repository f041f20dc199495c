package proc

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// The kernel prints comm as it is: a process may call itself ") (" or "a b) S 1".
	tests := []struct {
		line string
		want Stat
	}{
		{"1234 (php-cgi) S 1200 1234 1234 0 -1 4194560 2021 0 0 0 17 4 6 8 20 0 1 0 5000 300000000 5000 18446744073709551615\n",
			Stat{PID: 1234, Comm: "php-cgi", State: 'S', PPID: 1200, UTime: 17, STime: 4, CUTime: 6, CSTime: 8, StartTime: 5000}},
		{"77 (a) (b) Z 5 77 77 0 -1 4194560 0 0 0 0 3 9 0 0 20 0 1 0 1 0 0 0\n",
			Stat{PID: 77, Comm: "a) (b", State: 'Z', PPID: 5, UTime: 3, STime: 9, StartTime: 1}},
		{"78 (x) S 1 (y) R 99 78 78 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 0 0 0\n",
			Stat{PID: 78, Comm: "x) S 1 (y", State: 'R', PPID: 99, UTime: 1, STime: 2, StartTime: 1}},
		{"79 () T 1 79 79 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0 0",
			Stat{PID: 79, Comm: "", State: 'T', PPID: 1, StartTime: 1}},
	}
	for _, tt := range tests {
		got, err := parseStat([]byte(tt.line))
		if err != nil || got != tt.want {
			t.Errorf("parseStat(%q) = %+v, %v; want %+v", tt.line, got, err, tt.want)
		}
	}
	const rest = " 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"
	for _, bad := range []string{"", "12 php-cgi S 1" + rest, "12 (php-cgi) S 1 2 3", "x (a) S 1" + rest, "12 (a) S pp" + rest,
		"12 (a) SS 1" + rest, "12 (a" + rest, "12 (a) S 1 2 3 4 5 6 7 8 9 10 u 12 13 14 15 16 17 18 19 20",
		"12 (a) S 1 2 3 4 5 6 7 8 9 10 11 s 13 14 15 16 17 18 19 20", "12 (a) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -19 20"} {
		if got, err := parseStat([]byte(bad)); !errors.Is(err, errStat) {
			t.Errorf("parseStat(%q) = %+v, %v; want errStat", bad, got, err)
		}
	}
}

func TestReadStatSelfAndChild(t *testing.T) {
	self, err := ReadStat(os.Getpid())
	if err != nil || self.PID != os.Getpid() || self.PPID != os.Getppid() || self.State != 'R' && self.State != 'S' {
		t.Errorf("ReadStat(self) = %+v, %v; want pid %d ppid %d, running or sleeping", self, err, os.Getpid(), os.Getppid())
	}
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	poll(t, "the child runs sleep", func() bool { s, _ := ReadStat(pid); return s.Comm == "sleep" && s.State == 'S' })
	if st, _ := ReadStat(pid); Comm(pid) != "sleep" || st.StartTime < self.StartTime {
		t.Errorf("child: Comm = %q, StartTime %d; want sleep, not before this process's (%d)", Comm(pid), st.StartTime, self.StartTime)
	}
	if got := Parent(pid); got != os.Getpid() {
		t.Errorf("Parent(child) = %d; want %d", got, os.Getpid())
	}
	if !slices.Contains(Children(os.Getpid()), pid) {
		t.Errorf("Children(self) = %v; want %d among them", Children(os.Getpid()), pid)
	}
	if !slices.Contains(Descendants(os.Getpid()), pid) || !Alive(pid) {
		t.Errorf("Descendants(self) = %v, Alive(%d) = %v; want the child among them, alive", Descendants(os.Getpid()), pid, Alive(pid))
	}

	// Killed and not yet waited for: a zombie, still a child, no longer alive or a descendant.
	cmd.Process.Kill()
	poll(t, "the killed child is a zombie", func() bool { return State(pid) == 'Z' })
	if Alive(pid) || slices.Contains(Descendants(os.Getpid()), pid) || !slices.Contains(Children(os.Getpid()), pid) {
		t.Errorf("zombie %d: Alive = %v, Descendants(self) = %v, Children(self) = %v; want a child only",
			pid, Alive(pid), Descendants(os.Getpid()), Children(os.Getpid()))
	}
	err = cmd.Wait()
	if !Signaled(err) || ExitStatus(err) != "signal: killed" {
		t.Errorf("killed child: Signaled(%v) = %v, ExitStatus = %q; want true, \"signal: killed\"", err, Signaled(err), ExitStatus(err))
	}
	// Reaped: gone.
	if _, err := ReadStat(pid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadStat(reaped child) error = %v; want os.ErrNotExist", err)
	}
	if State(pid) != 0 || Parent(pid) != -1 || Alive(pid) || Comm(pid) != "" {
		t.Errorf("reaped child: State = %q, Parent = %d, Alive = %v, Comm = %q; want 0, -1, false, \"\"", State(pid), Parent(pid), Alive(pid), Comm(pid))
	}
}

func TestExitStatus(t *testing.T) {
	if got := ExitStatus(nil); got != "exit status 0" || Signaled(nil) {
		t.Errorf("ExitStatus(nil) = %q, Signaled = %v; want \"exit status 0\", false", got, Signaled(nil))
	}
	err := exec.Command("sh", "-c", "exit 3").Run()
	if got := ExitStatus(err); got != "exit status 3" || Signaled(err) {
		t.Errorf("exit 3: ExitStatus = %q, Signaled = %v; want \"exit status 3\", false", got, Signaled(err))
	}
	err = exec.Command("sh", "-c", "kill -SEGV $$").Run()
	if got := ExitStatus(err); got != "signal: segmentation fault" || !Signaled(err) {
		t.Errorf("SIGSEGV: ExitStatus = %q, Signaled = %v; want \"signal: segmentation fault\", true", got, Signaled(err))
	}
	if e := errors.New("exit status unknown"); ExitStatus(e) != e.Error() || Signaled(e) {
		t.Errorf("plain error: ExitStatus = %q, Signaled = %v; want its text, false", ExitStatus(e), Signaled(e))
	}
}

func TestParseMemory(t *testing.T) {
	in := []byte(`55d0c5a8b000-7ffd6a5f4000 ---p 00000000 00:00 0                          [rollup]
Rss:               34120 kB
Pss:                5432 kB
Pss_Anon:           1200 kB
Shared_Clean:      28000 kB
Shared_Dirty:        600 kB
Private_Clean:      3000 kB
Private_Dirty:      1520 kB
Swap:                  0 kB
`)
	got, err := parseMemory(in)
	want := Memory{Rss: 34120 << 10, Pss: 5432 << 10, Shared: 28600 << 10, PrivateClean: 3000 << 10, PrivateDirty: 1520 << 10}
	if err != nil || got != want || got.Private() != 4520<<10 {
		t.Errorf("parseMemory = %+v, %v; want %+v", got, err, want)
	}
	if _, err := parseMemory([]byte("nothing here\n")); err == nil {
		t.Errorf("parseMemory of a file without Rss/Pss: no error")
	}
	if _, err := parseMemory([]byte("Rss: lots kB\n")); err == nil {
		t.Errorf("parseMemory of Rss: lots: no error")
	}
	if sum := want.Add(want); sum.Rss != 2*want.Rss || sum.PrivateClean != 2*want.PrivateClean || sum.Shared != 2*want.Shared {
		t.Errorf("Add = %+v; want each field doubled", sum)
	}
}

func TestReadMemorySelf(t *testing.T) {
	m, err := ReadMemory(os.Getpid())
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ReadMemory(self) error = %v", err)
		}
		t.Skipf("no smaps_rollup here: %v", err)
	}
	if m.Rss <= 0 || m.Pss <= 0 || m.Pss > m.Rss || m.Private() > m.Rss {
		t.Errorf("ReadMemory(self) = %+v; want 0 < Pss ≤ Rss, Private ≤ Rss", m)
	}
}

// poll waits up to 10 s for cond.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
	}
}

func TestParseStatmRSS(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"1000 250 100 10 0 300 0\n", 250 * pageSize, true},
		{"1 0 0 0 0 0 0", 0, true},
		{"1000\n", 0, false},
		{"1000 x 1", 0, false},
		{"1000  1", 0, false},
	} {
		got, err := parseStatmRSS([]byte(tc.in))
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("parseStatmRSS(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// Statm reads a live process's RSS again and again through one descriptor, agrees with
// smaps_rollup, and fails once the process it was opened for is gone.
func TestStatmFollowsItsProcess(t *testing.T) {
	s, err := OpenStatm(os.Getpid())
	if err != nil {
		t.Fatalf("OpenStatm(self) error = %v", err)
	}
	defer s.Close()
	before, err := s.RSS()
	if err != nil || before == 0 {
		t.Fatalf("RSS(self) = %d, %v; want > 0", before, err)
	}
	grow, err := syscall.Mmap(-1, 0, 64<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(grow)
	for i := 0; i < len(grow); i += 4096 {
		grow[i] = 1 // fresh pages: resident from now on
	}
	after, err := s.RSS()
	if err != nil || after < before+32<<20 {
		t.Errorf("RSS(self) after touching 64 MiB = %d, %v; want ≥ %d (read anew, not cached)", after, err, before+32<<20)
	}
	if m, err := ReadMemory(os.Getpid()); err == nil && (m.Rss < int64(after)/2 || m.Rss > 2*int64(after)) {
		t.Errorf("statm RSS %d, smaps_rollup Rss %d; want the same order", after, m.Rss)
	}

	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c, err := OpenStatm(cmd.Process.Pid)
	if err != nil {
		t.Fatalf("OpenStatm(child) error = %v", err)
	}
	defer c.Close()
	if n, err := c.RSS(); err != nil || n == 0 {
		t.Errorf("RSS(child) = %d, %v; want > 0", n, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if n, err := c.RSS(); err == nil {
		t.Errorf("RSS(reaped child) = %d, nil; want an error", n)
	}
	if _, err := OpenStatm(cmd.Process.Pid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenStatm(reaped child) error = %v; want os.ErrNotExist", err)
	}
}

func TestCPUSeconds(t *testing.T) {
	if got := (Stat{UTime: 150, STime: 50, CUTime: 999}).CPUSeconds(); got != 2 {
		t.Errorf("CPUSeconds() of utime 150, stime 50 = %v; want 2 (USER_HZ 100, children not counted)", got)
	}
}
