package main

// What the bench reads from /proc: the process tree below a server, its CPU time and memory, and
// the machine's CPU counters. (Item 4 of issue 14 gathers /proc parsing in one package; these move
// there when it exists.)

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the kernel's USER_HZ: /proc's CPU times count in these.
const clockTick = 10 * time.Millisecond

type proc struct {
	pid, ppid int
	comm      string
	stat      []string // the fields after "(comm)", from the state on
}

// procs reads pid, parent, command name and stat fields of every process.
func procs() map[int]proc {
	out := map[int]proc{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if p, err := readStat(d + "/stat"); err == nil {
			out[p.pid] = p
		}
	}
	return out
}

func readStat(path string) (proc, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return proc{}, err // gone meanwhile
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return proc{}, fmt.Errorf("%s: no (comm)", path)
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 15 {
		return proc{}, fmt.Errorf("%s: short", path)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(s[:open]))
	ppid, _ := strconv.Atoi(f[1])
	return proc{pid: pid, ppid: ppid, comm: s[open+1 : end], stat: f}, nil
}

// ticks is the process's CPU time in clock ticks: utime + stime, and with children also cutime +
// cstime (the children it has reaped, e.g. workers that exited under --max-requests 1).
func (p proc) ticks(children bool) int64 {
	n := 2
	if children {
		n = 4
	}
	var t int64
	for i := range n {
		v, _ := strconv.ParseInt(p.stat[11+i], 10, 64)
		t += v
	}
	return t
}

// descendants returns the processes below root (not root itself), parents before children.
func descendants(all map[int]proc, root int) []proc {
	children := map[int][]int{}
	for _, p := range all {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var out []proc
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		kids := children[pid]
		slices.Sort(kids)
		for _, k := range kids {
			out = append(out, all[k])
			queue = append(queue, k)
		}
	}
	return out
}

// tree is the roots and all their live descendants.
func tree(roots []int) []proc {
	all := procs()
	var out []proc
	for _, r := range roots {
		if p, ok := all[r]; ok {
			out = append(out, p)
		}
		out = append(out, descendants(all, r)...)
	}
	return out
}

// treeTicks is the CPU time the roots and their live descendants used so far, with what they reaped.
func treeTicks(roots []int) int64 {
	var t int64
	for _, p := range tree(roots) {
		t += p.ticks(true)
	}
	return t
}

// treeRSSMiB is the resident memory of the roots and their descendants, in MiB, rounded.
func treeRSSMiB(roots []int) string {
	var kib int64
	page := int64(os.Getpagesize() / 1024)
	for _, p := range tree(roots) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", p.pid))
		if f := strings.Fields(string(b)); err == nil && len(f) > 1 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			kib += n * page
		}
	}
	return fmt0(float64(kib) / 1024)
}

// machineTicks is the busy and total CPU ticks of all CPUs since boot (steal counts as busy).
func machineTicks() (busy, total int64) {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal …
	v := func(i int) int64 {
		if i >= len(f) {
			return 0
		}
		n, _ := strconv.ParseInt(f[i], 10, 64)
		return n
	}
	busy = v(1) + v(2) + v(3) + v(6) + v(7) + v(8)
	return busy, busy + v(4) + v(5)
}

// idlePct is how idle all CPUs were over the next second, in percent.
func idlePct() int {
	b0, t0 := machineTicks()
	time.Sleep(time.Second)
	b1, t1 := machineTicks()
	if t1 <= t0 {
		return 100
	}
	return int(round0(100 * float64((t1-t0)-(b1-b0)) / float64(t1-t0)))
}

// round0 rounds v to a whole number as the report prints it (fmt0).
func round0(v float64) float64 { f, _ := strconv.ParseFloat(fmt0(v), 64); return f }

// selfTicks is the CPU time of this program and of the children it has waited for (wrk).
func selfTicks() int64 {
	var t int64
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			t += (ru.Utime.Nano() + ru.Stime.Nano()) / int64(clockTick)
		}
	}
	return t
}

// cpuSnapshot is the CPU ticks of the machine, of the servers measured (with their helpers, e.g.
// mariadbd) and of the load generator (this program and wrk) at one moment.
type cpuSnapshot struct{ busy, total, servers, load int64 }

func snapshot(servers []int) cpuSnapshot {
	b, t := machineTicks()
	return cpuSnapshot{busy: b, total: t, servers: treeTicks(servers), load: selfTicks()}
}

// foreignPct is the share of the machine's CPU capacity that other processes used between two
// snapshots, in percent.
func foreignPct(a, b cpuSnapshot) int {
	total := b.total - a.total
	other := (b.busy - a.busy) - (b.servers - a.servers) - (b.load - a.load)
	if total <= 0 || other <= 0 {
		return 0
	}
	return int(round0(100 * float64(other) / float64(total)))
}

// rollup is a process's memory from /proc/PID/smaps_rollup, in KiB.
type rollup struct{ rss, pss, private int64 }

func (r *rollup) add(o rollup) { r.rss += o.rss; r.pss += o.pss; r.private += o.private }

func readRollup(pid int) (rollup, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return rollup{}, err
	}
	var r rollup
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			r.rss = v
		case "Pss:":
			r.pss = v
		case "Private_Clean:", "Private_Dirty:":
			r.private += v
		}
	}
	return r, nil
}

// cpuMS is the user + system CPU time of pid, in ms.
func cpuMS(pid int) (float64, error) {
	p, err := readStat(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return float64(p.ticks(false) * int64(clockTick/time.Millisecond)), nil
}
