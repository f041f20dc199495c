package main

// CPU per request, split by who spent it (issue 19): the server's front (askrd itself, or nginx),
// its PHP (askrd's php-cgi workers, or php-fpm) and the load generator (wrk), over one measured run.

import (
	"fmt"
	"strings"
	"time"
)

// cpuSplit is the CPU time one measured run took: front and php in clock ticks from /proc
// (utime + stime deltas), load from wrk's rusage.
type cpuSplit struct {
	front, php int64
	load       time.Duration
	requests   int64 // wrk's count of the run
}

// serverTicks is the CPU time s's processes used so far, in clock ticks: front is askrd itself (or
// nginx, master and workers), php its workers below it with those it reaped (or php-fpm, master and
// children).
func serverTicks(all map[int]process, s *server) (front, php int64) {
	if s.askrd != nil {
		return ownAndBelow(all, s.askrd.Pid())
	}
	return subtreeTicks(all, s.fpm.Nginx.Pid()), subtreeTicks(all, s.fpm.FPM.Pid())
}

// ownAndBelow is the CPU time of root itself, and of its live descendants with what root and they
// reaped, in clock ticks.
func ownAndBelow(all map[int]process, root int) (own, below int64) {
	r, ok := all[root]
	if !ok {
		return 0, 0
	}
	own = r.ticks(false)
	below = r.ticks(true) - own
	for _, p := range descendants(all, root) {
		below += p.ticks(true)
	}
	return own, below
}

// subtreeTicks is the CPU time of root and its live descendants, with what they reaped.
func subtreeTicks(all map[int]process, root int) int64 {
	var t int64
	if p, ok := all[root]; ok {
		t = p.ticks(true)
	}
	for _, p := range descendants(all, root) {
		t += p.ticks(true)
	}
	return t
}

// cpuPer is a run's CPU per request, in µs: front, PHP, load generator.
type cpuPer struct{ front, php, load float64 }

func (c cpuSplit) perRequest() (cpuPer, bool) {
	if c.requests <= 0 {
		return cpuPer{}, false
	}
	tick := float64(clockTick / time.Microsecond)
	n := float64(c.requests)
	return cpuPer{front: float64(c.front) * tick / n, php: float64(c.php) * tick / n, load: float64(c.load/time.Microsecond) / n}, true
}

func (c cpuPer) total() float64 { return c.front + c.php + c.load }

// cpuEntry is one row of the CPU table.
type cpuEntry struct {
	scenario, server string
	per              cpuPer
}

// addCPU puts a run's CPU per request in the CPU table (a run without requests has none).
func (b *bench) addCPU(scenario, server string, r trial) {
	if per, ok := r.CPU.perRequest(); ok {
		b.res.cpu = append(b.res.cpu, cpuEntry{scenario, server, per})
	}
}

// cpuOf is the CPU per request of scenario/server, if measured.
func (r *results) cpuOf(scenario, server string) (cpuPer, bool) {
	for _, e := range r.cpu {
		if e.scenario == scenario && e.server == server {
			return e.per, true
		}
	}
	return cpuPer{}, false
}

// fmtUS is a CPU time per request in µs: one decimal under 10, none above.
func fmtUS(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// cpuRows is the CPU table.
func cpuRows(entries []cpuEntry) []string {
	var rows []string
	for _, e := range entries {
		rows = append(rows, tableRow(e.scenario, e.server, fmtUS(e.per.front), fmtUS(e.per.php), fmtUS(e.per.load), fmtUS(e.per.total())))
	}
	return rows
}

// cpuIntro is the CPU table's text.
const cpuIntro = "CPU time per request of each measured run of the main table, in µs: the server's front (askrd itself; nginx, master and workers), its PHP (the php-cgi workers below askrd, with any it reaped; php-fpm, master and children), and the load generator (wrk, from its rusage). Server figures are utime + stime deltas from /proc/PID/stat over the run (10 ms ticks), divided by the requests wrk counted."

func (b *bench) cpuReport(w *strings.Builder) {
	if len(b.res.cpu) == 0 {
		return
	}
	section(w, "### CPU per request", cpuIntro,
		"| scenario | server | askrd / nginx | PHP workers / php-fpm | wrk | total |", "|---|---|---:|---:|---:|---:|", cpuRows(b.res.cpu), nil)
}
