package main

// What the bench reads from /proc: the process tree below a server, its CPU time and memory, and
// the machine's CPU counters. A process's stat line and smaps_rollup are read by internal/proc.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/askr-php/askr/internal/proc"
)

// clockTick is the kernel's USER_HZ: /proc's CPU times count in these.
const clockTick = 10 * time.Millisecond

// process is one process as the bench sees it.
type process struct {
	pid, ppid int
	comm      string
	stat      proc.Stat
}

// procs reads pid, parent, command name and stat fields of every process.
func procs() map[int]process {
	out := map[int]process{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if p, err := readStat(pid); err == nil {
			out[p.pid] = p
		}
	}
	return out
}

func readStat(pid int) (process, error) {
	st, err := proc.ReadStat(pid)
	if err != nil {
		return process{}, err // gone meanwhile
	}
	return process{pid: st.PID, ppid: st.PPID, comm: st.Comm, stat: st}, nil
}

// ticks is the process's CPU time in clock ticks: utime + stime, and with children also cutime +
// cstime (the children it has reaped, e.g. workers that exited under --max-requests 1).
func (p process) ticks(children bool) int64 {
	t := p.stat.UTime + p.stat.STime
	if children {
		t += p.stat.CUTime + p.stat.CSTime
	}
	return int64(t)
}

// descendants returns the processes below root (not root itself), parents before children.
func descendants(all map[int]process, root int) []process {
	children := map[int][]int{}
	for _, p := range all {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var out []process
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
func tree(roots []int) []process {
	all := procs()
	var out []process
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
	m, err := proc.ReadMemory(pid)
	if err != nil {
		return rollup{}, err
	}
	return rollup{rss: m.Rss >> 10, pss: m.Pss >> 10, private: m.Private() >> 10}, nil
}

// cpuMS is the user + system CPU time of pid, in ms.
func cpuMS(pid int) (float64, error) {
	p, err := readStat(pid)
	if err != nil {
		return 0, err
	}
	return float64(p.ticks(false) * int64(clockTick/time.Millisecond)), nil
}
