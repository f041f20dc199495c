package pool

import (
	"fmt"
	"time"

	"github.com/askr-php/askr/internal/proc"
)

// Memory recycling (max_rss, max_private_memory): after each request a process answered, the pool
// reads its memory, and a process over a limit is retired as the request gives it back (it has
// answered; it is never killed in one) and replaced.
//
// RSS comes from /proc/PID/statm through a descriptor kept open (proc.Statm: about 1 µs a read),
// after every request. Private_Dirty comes from /proc/PID/smaps_rollup, which walks the process's
// page tables: about 1 ms for a 50 MB php-cgi, more for a larger one. So it is read only when it
// can matter and not after every request: never while RSS is at most the limit (private dirty
// pages are resident, so Private_Dirty ≤ RSS: the common case in worker mode); else when RSS has
// grown by a sixteenth of the limit since the last full read, or a second has passed since it (a
// CoW worker that writes to pages it shares with its template makes them private without growing
// its RSS). A process then costs at most about one full read a second, plus one per growth step.

// memProbe reads one process's memory.
type memProbe interface {
	RSS() (uint64, error)          // resident set size, cheap
	PrivateDirty() (uint64, error) // Private_Dirty, costly
	Close() error
}

// memCheck is what the pool remembers of a process's last full read (Private_Dirty).
type memCheck struct {
	at  time.Time // when; zero before the first
	rss uint64    // RSS then
}

// fullReadEvery bounds how long Private_Dirty may go unread while RSS is over max_private_memory.
const fullReadEvery = time.Second

// procMemory is the memProbe of a real process.
type procMemory struct {
	*proc.Statm
	pid int
}

func (m procMemory) PrivateDirty() (uint64, error) {
	mem, err := proc.ReadMemory(m.pid)
	return uint64(max(mem.PrivateDirty, 0)), err
}

// openMemory opens the memory of process pid for reading.
func openMemory(pid int) (memProbe, error) {
	s, err := proc.OpenStatm(pid)
	if err != nil {
		return nil, err
	}
	return procMemory{s, pid}, nil
}

// limitsMemory reports whether the pool reads its processes' memory (max_rss, max_private_memory).
func (p *Pool) limitsMemory() bool { return p.opt.MaxRSS > 0 || p.opt.MaxPrivate > 0 }

// overMemory reads the memory of a process that has just answered a request (at now) and reports
// whether it is over max_rss or max_private_memory, with an INFO line saying which. A process
// whose memory cannot be read (it has just exited) is not over: its exit speaks for it.
func (p *Pool) overMemory(w *worker, now time.Time) bool {
	if w.mem == nil {
		return false
	}
	rss, err := w.mem.RSS()
	if err != nil {
		return false
	}
	if limit := p.opt.MaxRSS; limit > 0 && rss > limit {
		p.log.Info("worker over max_rss; replacing it after this request", "pid", w.pid, "rss", mib(rss), "max_rss", mib(limit))
		return true
	}
	limit := p.opt.MaxPrivate
	if limit == 0 || rss <= limit {
		return false
	}
	c := &w.memCheck
	if !c.at.IsZero() && rss < c.rss+limit/16 && now.Sub(c.at) < fullReadEvery {
		return false
	}
	private, err := w.mem.PrivateDirty()
	c.at, c.rss = now, rss
	if err != nil || private <= limit {
		return false
	}
	p.log.Info("worker over max_private_memory; replacing it after this request", "pid", w.pid,
		"private_dirty", mib(private), "max_private_memory", mib(limit), "rss", mib(rss))
	return true
}

// mib words a size in bytes for a log line.
func mib(b uint64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }
