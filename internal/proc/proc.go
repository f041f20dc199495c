// Package proc reads what Linux's /proc shows of a process (its stat line, its children, its
// memory from smaps_rollup) and words how a process ended. It is the one copy of these for askrd,
// its tests and the bench. It only reads and describes: it never signals, waits for or starts a
// process.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// Stat is what askr uses of /proc/PID/stat.
type Stat struct {
	PID   int
	Comm  string // the command name, as the kernel keeps it (at most 15 bytes; may hold spaces and parens)
	State byte   // 'R', 'S', 'D', 'Z', 'T', …
	PPID  int
	UTime uint64 // CPU time in user mode, in clock ticks (USER_HZ, 100 on Linux)
	STime uint64 // CPU time in kernel mode, in clock ticks
	// CUTime and CSTime are the user and kernel CPU time of the children it has waited for.
	CUTime, CSTime uint64
	// StartTime is when the process started, in clock ticks after boot: with the pid, it names a
	// process that a later one reusing the pid cannot pass for.
	StartTime uint64
}

// ClockTicks is USER_HZ, the unit of Stat's CPU times: 100 on every Linux architecture askr runs on.
const ClockTicks = 100

// CPUSeconds is the CPU time the process has used, user and kernel, in seconds (its children's
// not counted).
func (s Stat) CPUSeconds() float64 { return float64(s.UTime+s.STime) / ClockTicks }

// ReadStat reads /proc/PID/stat. A process that is gone gives an error that is os.ErrNotExist.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	return parseStat(b)
}

// errStat is a stat line that does not have the shape the kernel gives it.
var errStat = errors.New("malformed /proc/PID/stat")

// parseStat parses a stat line: "pid (comm) state ppid …". The command name may contain anything,
// spaces and ") (" included, but not be cut short: the fields start after the last ')'.
func parseStat(b []byte) (Stat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Stat{}, errStat
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return Stat{}, fmt.Errorf("%w: pid: %v", errStat, err)
	}
	// After comm: state(3) ppid(4) pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
	// utime(14) stime(15) cutime cstime priority nice num_threads itrealvalue starttime(22) …;
	// f[0] is field 3.
	f := bytes.Fields(b[end+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, errStat
	}
	s := Stat{PID: pid, Comm: string(b[open+1 : end]), State: f[0][0]}
	if s.PPID, err = strconv.Atoi(string(f[1])); err != nil {
		return Stat{}, fmt.Errorf("%w: ppid: %v", errStat, err)
	}
	if s.UTime, err = strconv.ParseUint(string(f[11]), 10, 64); err != nil {
		return Stat{}, fmt.Errorf("%w: utime: %v", errStat, err)
	}
	if s.STime, err = strconv.ParseUint(string(f[12]), 10, 64); err != nil {
		return Stat{}, fmt.Errorf("%w: stime: %v", errStat, err)
	}
	if s.CUTime, err = strconv.ParseUint(string(f[13]), 10, 64); err != nil {
		return Stat{}, fmt.Errorf("%w: cutime: %v", errStat, err)
	}
	if s.CSTime, err = strconv.ParseUint(string(f[14]), 10, 64); err != nil {
		return Stat{}, fmt.Errorf("%w: cstime: %v", errStat, err)
	}
	if s.StartTime, err = strconv.ParseUint(string(f[19]), 10, 64); err != nil {
		return Stat{}, fmt.Errorf("%w: starttime: %v", errStat, err)
	}
	return s, nil
}

// State returns pid's state letter, or 0 if there is no such process.
func State(pid int) byte {
	s, err := ReadStat(pid)
	if err != nil {
		return 0
	}
	return s.State
}

// Comm returns pid's command name, or "" if there is no such process.
func Comm(pid int) string {
	s, _ := ReadStat(pid)
	return s.Comm
}

// Parent returns pid's parent pid, or -1 if there is no such process.
func Parent(pid int) int {
	s, err := ReadStat(pid)
	if err != nil {
		return -1
	}
	return s.PPID
}

// Alive reports whether pid runs: it exists and is neither a zombie nor dead.
func Alive(pid int) bool {
	s := State(pid)
	return s != 0 && s != 'Z' && s != 'X'
}

// Children lists pid's children, from /proc/PID/task/*/children (every thread's: a child belongs
// to the thread that started it).
func Children(pid int) []int {
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	tasks, _ := os.ReadDir(dir)
	var out []int
	for _, task := range tasks {
		b, err := os.ReadFile(dir + task.Name() + "/children")
		if err != nil {
			continue // the thread has exited meanwhile
		}
		for _, f := range bytes.Fields(b) {
			if c, err := strconv.Atoi(string(f)); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// Descendants lists pid's descendants that run (see Alive): its children, theirs, and so on,
// parents before their children.
func Descendants(pid int) []int {
	var out []int
	next := Children(pid)
	for len(next) > 0 {
		p := next[0]
		next = next[1:]
		if !Alive(p) {
			continue
		}
		out = append(out, p)
		next = append(next, Children(p)...)
	}
	return out
}
