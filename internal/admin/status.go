package admin

import (
	"slices"
	"sync"
	"time"

	"github.com/askr-php/askr/internal/certificate"
	"github.com/askr-php/askr/internal/pool"
	"github.com/askr-php/askr/internal/proc"
	"github.com/askr-php/askr/internal/sidecar"
)

// Status is GET /status. Memory is in bytes, durations in seconds.
type Status struct {
	Mode              string            `json:"mode"` // "worker", "cow" or "per-request"
	Version           string            `json:"version"`
	Generation        int64             `json:"generation"`
	UptimeSeconds     float64           `json:"uptime_seconds"`
	Workers           Workers           `json:"workers"`
	Queue             Queue             `json:"queue"`
	Accepted          uint64            `json:"accepted"`            // requests given to the pool
	MaxWorkersReached uint64            `json:"max_workers_reached"` // requests that found no idle worker and waited
	Slow              uint64            `json:"slow"`                // requests that ran past request_slowlog_timeout
	Served            uint64            `json:"served"`              // requests answered by a worker
	TemplatePID       int               `json:"template_pid"`        // the CoW template; 0 in the other modes
	Rollout           Rollout           `json:"rollout"`             // the last reload or refork
	Exits             map[string]uint64 `json:"exits"`               // processes ended, by reason
	Memory            Memory            `json:"memory"`              // the workers' together
	TemplateMemory    *Memory           `json:"template_memory,omitempty"`
	// Sidecars are the [[sidecar]], [queue] and [scheduler] processes, one entry per slot.
	Sidecars []sidecar.Status `json:"sidecars,omitempty"`
	// Certificates are the certificates askrd serves HTTPS with.
	Certificates []certificate.Status `json:"certificates,omitempty"`
	// Partial is set when the pool did not list its workers in time (its owner loop is busy):
	// the workers and memory shown are the last known.
	Partial bool `json:"partial,omitempty"`
}

// Rollout is the last reload or refork: State is "idle" (none yet), "rolling" (its canary is
// judged, or old workers are being replaced), "ok", "inconclusive" (rolled on with too few canary
// requests to judge) or "aborted" (rolled back, or the new template or canary failed: Detail says
// why).
type Rollout struct {
	State   string     `json:"state"`
	Cause   string     `json:"cause,omitempty"` // "reload" or "refork"
	From    int64      `json:"from,omitempty"`  // generations
	To      int64      `json:"to,omitempty"`
	Canary  int        `json:"canary,omitempty"` // the canary's pid
	Detail  string     `json:"detail,omitempty"`
	Started *time.Time `json:"started,omitempty"`
	Ended   *time.Time `json:"ended,omitempty"`
}

func rollout(r pool.Rollout) Rollout {
	out := Rollout{State: r.State, Cause: r.Cause, From: r.From, To: r.To, Canary: r.Canary, Detail: r.Detail}
	if out.State == "" {
		out.State = pool.RolloutIdle
	}
	if !r.Started.IsZero() {
		out.Started = &r.Started
	}
	if !r.Ended.IsZero() {
		out.Ended = &r.Ended
	}
	return out
}

// Workers counts the workers; with ?full, List has each.
type Workers struct {
	Total  int      `json:"total"`
	Idle   int      `json:"idle"`
	Busy   int      `json:"busy"`
	Target int      `json:"target"` // the workers the pool keeps now (between workers_min and workers_max when it scales)
	List   []Worker `json:"list,omitempty"`
}

// Queue is the requests waiting for a worker.
type Queue struct {
	Length    int `json:"length"`
	HighWater int `json:"high_water"` // the most that waited at once
	Bound     int `json:"bound"`      // queue_size
}

// Memory is from /proc/PID/smaps_rollup, in bytes.
type Memory struct {
	RSS     int64 `json:"rss"`
	PSS     int64 `json:"pss"`
	Private int64 `json:"private"` // Private_Clean + Private_Dirty
	Shared  int64 `json:"shared"`  // Shared_Clean + Shared_Dirty
}

// Worker is one worker process in /status?full.
type Worker struct {
	PID                int      `json:"pid"`
	State              string   `json:"state"` // "idle", "busy" or "recycling"
	Generation         int64    `json:"generation"`
	Requests           int64    `json:"requests"`
	Current            *Current `json:"current"` // null while idle
	LastRequestSeconds float64  `json:"last_request_seconds"`
	CPUSeconds         float64  `json:"cpu_seconds"`
	PeakMemory         uint64   `json:"peak_memory"` // PHP's memory_get_peak_usage() after its last request
	RSS                int64    `json:"rss"`
	PSS                int64    `json:"pss"`
	PrivateDirty       int64    `json:"private_dirty"`
	Private            int64    `json:"private"`
	Shared             int64    `json:"shared"`
	Started            string   `json:"started"` // RFC 3339
}

// Current is the request a busy worker has.
type Current struct {
	Method  string  `json:"method"`
	URI     string  `json:"uri"`
	Seconds float64 `json:"seconds"`
}

// status builds the status; full adds every worker.
func (s *Server) status(full bool) Status {
	st := s.src.Stats()
	now := time.Now()
	infos, partial := s.snaps.get(s.opt.WorkersTimeout)
	out := Status{
		Mode: s.opt.Mode, Version: s.opt.Version, Generation: st.Generation,
		UptimeSeconds: seconds(now.Sub(s.opt.Started)),
		Workers:       Workers{Total: st.Ready, Busy: st.Busy, Idle: max(st.Ready-st.Busy, 0), Target: st.Target},
		Queue:         Queue{Length: st.Waiting, HighWater: st.WaitingMax, Bound: st.QueueSize},
		Accepted:      st.Accepted, MaxWorkersReached: st.MaxWorkersReached, Slow: st.Slow, Served: st.Served,
		TemplatePID: s.src.TemplatePID(), Exits: map[string]uint64{}, Partial: partial, Rollout: rollout(st.Rollout),
	}
	for _, r := range pool.ExitReasons() {
		out.Exits[r.String()] = st.Exits[r]
	}
	for _, w := range infos {
		out.Generation = max(out.Generation, w.Generation)
		m, _ := proc.ReadMemory(w.PID) // zero if it has just exited
		out.Memory = out.Memory.add(m)
		if full {
			out.Workers.List = append(out.Workers.List, worker(w, m, now))
		}
	}
	if pid := out.TemplatePID; pid > 0 {
		if m, err := proc.ReadMemory(pid); err == nil {
			tm := Memory{}.add(m)
			out.TemplateMemory = &tm
		}
	}
	if s.opt.Certificates != nil {
		out.Certificates = s.opt.Certificates()
	}
	if s.opt.Sidecars != nil {
		out.Sidecars = s.opt.Sidecars()
	}
	return out
}

func (m Memory) add(p proc.Memory) Memory {
	return Memory{RSS: m.RSS + p.Rss, PSS: m.PSS + p.Pss, Private: m.Private + p.Private(), Shared: m.Shared + p.Shared}
}

// worker describes w, whose memory is m, at now.
func worker(w pool.WorkerInfo, m proc.Memory, now time.Time) Worker {
	out := Worker{
		PID: w.PID, State: "idle", Generation: w.Generation, Requests: w.Served,
		LastRequestSeconds: seconds(w.Last), PeakMemory: w.Peak,
		RSS: m.Rss, PSS: m.Pss, PrivateDirty: m.PrivateDirty, Private: m.Private(), Shared: m.Shared,
	}
	switch {
	case w.Recycling:
		out.State = "recycling"
	case w.Busy:
		out.State = "busy"
	}
	if v := w.Current; v != nil {
		out.Current = &Current{Method: v.Method, URI: v.URI}
		if !v.Start.IsZero() {
			out.Current.Seconds = seconds(now.Sub(v.Start))
		}
	}
	if st, err := proc.ReadStat(w.PID); err == nil {
		out.CPUSeconds = st.CPUSeconds()
	}
	if !w.Started.IsZero() {
		out.Started = w.Started.UTC().Format(time.RFC3339)
	}
	return out
}

// seconds is d in seconds, to the millisecond.
func seconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

// snapshots lists the workers through the Source with a bounded wait: one call at a time runs
// (a wedged owner loop holds one goroutine, not one per request), and a request that cannot wait
// for it gets the last list.
type snapshots struct {
	src Source

	mu      sync.Mutex
	last    []pool.WorkerInfo
	pending chan struct{} // closed when the call in progress has stored its list; nil if none
}

// get returns the workers, or the last list known and true if listing them takes over timeout.
func (s *snapshots) get(timeout time.Duration) ([]pool.WorkerInfo, bool) {
	s.mu.Lock()
	done := s.pending
	if done == nil {
		done = make(chan struct{})
		s.pending = done
		go func() {
			infos := s.src.Workers()
			slices.SortFunc(infos, func(a, b pool.WorkerInfo) int { return a.PID - b.PID })
			s.mu.Lock()
			s.last, s.pending = infos, nil
			s.mu.Unlock()
			close(done)
		}()
	}
	s.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.last, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, false
}
