package pool

import (
	"fmt"
	"time"

	"github.com/askr-php/askr/internal/proc"
)

// Memory recycling (max_rss, max_private_memory): after each request a process answered, the pool
// reads its memory, and a process over a limit is retired after a request (it has answered; it is
// never killed in one) and replaced.
//
// RSS comes from /proc/PID/statm through a descriptor kept open (proc.Statm: about 1 µs a read),
// on the request's goroutine after every request: a process over max_rss is retired as that
// request gives it back. Private_Dirty comes from /proc/PID/smaps_rollup, which walks the
// process's page tables: about 1 ms for a 50 MB php-cgi, 5 ms for a CoW worker that maps a 200 MB
// template. So it is read off the request's path, on a goroutine of its own, and only when it can
// matter: never while RSS is at most the limit (private dirty pages are resident, so Private_Dirty
// ≤ RSS: the common case in worker mode); else when RSS has grown by a sixteenth of the limit
// since the last full read, or a second has passed since it (a CoW worker that writes to pages it
// shares with its template makes them private without growing its RSS). A process costs at most
// about one full read a second, plus one per growth step; one over max_private_memory is retired
// after the request it has then (at once if idle), so at most one request late.

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
// whether it is over max_rss, with an INFO line; it starts a read of Private_Dirty for
// max_private_memory when one is due (checkPrivate). A process whose memory cannot be read (it has
// just exited) is not over: its exit speaks for it.
func (p *Pool) overMemory(w *worker, now time.Time) bool {
	if w.mem == nil || w.marked.Load() > 0 {
		return false // marked: retired after this request anyway
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
	if !w.reading.CompareAndSwap(false, true) {
		return false // the last one is still reading
	}
	c.at, c.rss = now, rss
	go p.checkPrivate(w, rss)
	return false
}

// checkPrivate reads a process's Private_Dirty and has it retired if it is over
// max_private_memory, with an INFO line: it is marked at once, so that the request that has it now
// retires it if the owner has not, and it is read no more.
func (p *Pool) checkPrivate(w *worker, rss uint64) {
	defer w.reading.Store(false)
	private, err := w.mem.PrivateDirty()
	if limit := p.opt.MaxPrivate; err == nil && private > limit && w.marked.CompareAndSwap(0, int32(ExitMemory)+1) {
		p.log.Info("worker over max_private_memory; replacing it after its current request", "pid", w.pid,
			"private_dirty", mib(private), "max_private_memory", mib(limit), "rss", mib(rss))
		p.retireLater(w, ExitMemory)
	}
}

// mib words a size in bytes for a log line.
func mib(b uint64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }
