package metrics

import (
	"context"
	"math"
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/askr-php/askr/internal/pool"
)

// The history the dashboard draws: a point a second for the last ten minutes, and the last
// worker exits. Quantiles over one second come from durations, a histogram of log-linear buckets
// that Observe adds to with one atomic addition: its counts only grow, and each second's are the
// difference from the second before, so no request is lost or counted twice between seconds.

const (
	historyPoints = 600 // ten minutes of points, one a second
	historyExits  = 50
	rpsWindow     = 60 // RequestsPerSecond's average is over this many points

	// subBits sets the grain of durations: each power of two of nanoseconds is cut into
	// 1<<subBits buckets, so a bucket is at most 1/16 of its lower bound wide and its midpoint is
	// within 1/32 (3.2 %) of any duration in it. Below 16 ns every nanosecond has its bucket.
	subBits    = 4
	numBuckets = (64 - subBits + 1) << subBits
)

// durations counts request durations in log-linear buckets of nanoseconds (see subBits).
type durations struct{ counts [numBuckets]atomic.Uint64 }

func (h *durations) add(d time.Duration) { h.counts[bucketOf(uint64(max(d, 0)))].Add(1) }

// snapshot copies the counts into dst.
func (h *durations) snapshot(dst *[numBuckets]uint64) {
	for i := range h.counts {
		dst[i] = h.counts[i].Load()
	}
}

// bucketOf returns the bucket of ns nanoseconds: below 1<<subBits its own; above, the power of
// two it is in and the subBits bits after its leading one.
func bucketOf(ns uint64) int {
	if ns < 1<<subBits {
		return int(ns)
	}
	e := bits.Len64(ns) - subBits - 1 // the bits below the ones kept
	return (e+1)<<subBits | int(ns>>e)&(1<<subBits-1)
}

// bucketMid returns the middle of bucket i, in nanoseconds.
func bucketMid(i int) float64 {
	if i < 1<<subBits {
		return float64(i)
	}
	e := i>>subBits - 1
	lower := uint64(1<<subBits|i&(1<<subBits-1)) << e
	return float64(lower) + float64(uint64(1)<<e)/2
}

// quantile returns the q-quantile (0 < q ≤ 1) of n durations counted in counts, in milliseconds:
// the middle of the bucket holding the ceil(q·n)-th smallest; 0 if n is 0.
func quantile(counts *[numBuckets]uint64, n uint64, q float64) float64 {
	if n == 0 {
		return 0
	}
	rank := max(uint64(math.Ceil(q*float64(n))), 1)
	var seen uint64
	for i, c := range counts {
		if seen += c; seen >= rank {
			return bucketMid(i) / 1e6
		}
	}
	return 0
}

// Point is one second of the history.
type Point struct {
	T     int64   `json:"t"` // the end of the second, Unix seconds
	RPS   float64 `json:"rps"`
	P50   float64 `json:"p50_ms"` // 0 if there was no request
	P99   float64 `json:"p99_ms"`
	Queue int     `json:"queue"` // requests waiting for a PHP process at the end of the second

	n    uint64  // requests in it
	secs float64 // its length
}

// Exit is one worker exit of the history.
type Exit struct {
	T      int64  `json:"t"` // Unix seconds
	PID    int    `json:"pid"`
	Reason string `json:"reason"` // pool.ExitReason's String
}

// History is what History returns, the dashboard's JSON.
type History struct {
	IntervalSeconds int     `json:"interval_seconds"`
	Points          []Point `json:"points"` // oldest first
	Exits           []Exit  `json:"exits"`  // oldest first
}

// history is the recorded points and exits and the counts of the last tick; Metrics.mu guards it.
type history struct {
	points   []Point
	exits    []Exit
	prev     [numBuckets]uint64
	cur      [numBuckets]uint64
	prevTime time.Time
}

func newHistory() *history {
	return &history{points: make([]Point, 0, historyPoints), exits: make([]Exit, 0, historyExits)}
}

// Run records a point of history every second until ctx is done.
func (m *Metrics) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	m.tick(time.Now()) // the start of the first second
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			m.tick(now)
		}
	}
}

// tick ends the second (or so) since the last tick with a point; the first tick only starts one.
func (m *Metrics) tick(now time.Time) {
	queue := 0
	if p := m.watched().pool; p != nil {
		queue = p.Stats().Waiting
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.history
	m.hist.snapshot(&h.cur)
	var n uint64
	for i := range h.cur {
		h.cur[i], h.prev[i] = h.cur[i]-h.prev[i], h.cur[i] // this second's counts; the totals for the next
		n += h.cur[i]
	}
	first := h.prevTime.IsZero()
	secs := now.Sub(h.prevTime).Seconds()
	h.prevTime = now
	if first || secs <= 0 {
		return
	}
	if len(h.points) == historyPoints {
		h.points = append(h.points[:0], h.points[1:]...)
	}
	h.points = append(h.points, Point{T: now.Unix(), RPS: float64(n) / secs, P50: quantile(&h.cur, n, 0.5),
		P99: quantile(&h.cur, n, 0.99), Queue: queue, n: n, secs: secs})
}

// exited adds an exit to the history.
func (h *history) exited(at time.Time, pid int, reason pool.ExitReason) {
	if len(h.exits) == historyExits {
		h.exits = append(h.exits[:0], h.exits[1:]...)
	}
	h.exits = append(h.exits, Exit{T: at.Unix(), PID: pid, Reason: reason.String()})
}

// History returns the last ten minutes of points (one a second) and the last 50 worker exits, as
// a History (the dashboard's JSON: {"interval_seconds":1,"points":[{"t","rps","p50_ms","p99_ms",
// "queue"}],"exits":[{"t","pid","reason"}]}). p50 and p99 are within 3.2 % of the exact quantiles
// of the second's request durations.
func (m *Metrics) History() any {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.history
	return History{IntervalSeconds: 1, Points: append([]Point{}, h.points...), Exits: append([]Exit{}, h.exits...)}
}

// RequestsPerSecond returns the average rate of requests over the last minute of history (over
// the seconds recorded, if fewer); 0 before the first second.
func (m *Metrics) RequestsPerSecond() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.history.points
	ps = ps[max(len(ps)-rpsWindow, 0):]
	var n uint64
	var secs float64
	for _, p := range ps {
		n += p.n
		secs += p.secs
	}
	if secs == 0 {
		return 0
	}
	return float64(n) / secs
}
