package metrics

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/httpfront"
	"github.com/askr-php/askr/internal/pool"
)

// Every duration lies in a bucket whose middle is within 1/32 of it, and buckets are in order.
func TestBucketBound(t *testing.T) {
	check := func(ns uint64) {
		i := bucketOf(ns)
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d; want in [0, %d)", ns, i, numBuckets)
		}
		if mid := bucketMid(i); math.Abs(mid-float64(ns)) > float64(ns)/32 {
			t.Fatalf("bucketOf(%d) = %d, middle %v: off by more than 1/32", ns, i, mid)
		}
	}
	for ns := range uint64(100_000) {
		check(ns)
		if ns > 0 && bucketOf(ns) < bucketOf(ns-1) {
			t.Fatalf("bucketOf(%d) < bucketOf(%d)", ns, ns-1)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		check(r.Uint64() >> r.IntN(64))
	}
	check(math.MaxUint64)
	check(math.MaxInt64)
}

// observeAll observes one request of each duration.
func observeAll(m *Metrics, ds []time.Duration) {
	for _, d := range ds {
		m.Observe(&httpfront.Record{Status: 200, Duration: d})
	}
}

// A point a second: the requests of that second only, their p50 and p99 within the bound, the
// queue at its end; then the JSON the dashboard reads.
func TestHistoryPoints(t *testing.T) {
	fp := &fakePool{stats: pool.Stats{Waiting: 3}}
	m := New(Options{Mode: "worker"})
	m.Watch(fp, nil)
	start := time.Unix(1_700_000_000, 0)
	observeAll(m, []time.Duration{time.Hour}) // before the first tick: not in any point
	m.tick(start)

	// Second 1: 1000 requests of 1 ms … 1000 ms.
	var ds []time.Duration
	for i := 1; i <= 1000; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	rand.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
	observeAll(m, ds)
	m.tick(start.Add(time.Second))
	// Second 2 (2 s long): none. Second 3: 4 requests of 7 ms.
	fp.mu.Lock()
	fp.stats.Waiting = 0
	fp.mu.Unlock()
	m.tick(start.Add(3 * time.Second))
	observeAll(m, []time.Duration{7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond})
	m.tick(start.Add(4 * time.Second))

	h := m.History().(History)
	if len(h.Points) != 3 {
		t.Fatalf("%d points; want 3: %+v", len(h.Points), h.Points)
	}
	p := h.Points[0]
	if p.T != start.Unix()+1 || p.RPS != 1000 || p.Queue != 3 {
		t.Errorf("point 1 = %+v; want t=%d rps=1000 queue=3", p, start.Unix()+1)
	}
	near := func(what string, got, want float64) {
		if math.Abs(got-want) > want/32 {
			t.Errorf("%s = %v; want %v ± 1/32", what, got, want)
		}
	}
	near("p50", p.P50, 500)
	near("p99", p.P99, 990)
	if p := h.Points[1]; p.RPS != 0 || p.P50 != 0 || p.P99 != 0 || p.Queue != 0 || p.T != start.Unix()+3 {
		t.Errorf("point 2 = %+v; want an empty second", p)
	}
	p = h.Points[2]
	if p.RPS != 4 {
		t.Errorf("point 3 rps = %v; want 4", p.RPS)
	}
	near("p50 of 7 ms", p.P50, 7)
	near("p99 of 7 ms", p.P99, 7)
	// 1004 requests in 4 seconds.
	if got := m.RequestsPerSecond(); got != 1004.0/4 {
		t.Errorf("RequestsPerSecond = %v; want %v", got, 1004.0/4)
	}

	b, err := json.Marshal(m.History())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Interval int              `json:"interval_seconds"`
		Points   []map[string]any `json:"points"`
		Exits    []map[string]any `json:"exits"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Interval != 1 || len(doc.Points) != 3 || doc.Exits == nil {
		t.Errorf("History JSON = %s; want interval_seconds 1, 3 points, exits []", b)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range doc.Points[0] {
			if !yield(k) {
				return
			}
		}
	})
	if want := []string{"p50_ms", "p99_ms", "queue", "rps", "t"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("point keys = %v; want %v", keys, want)
	}
}

// The history keeps ten minutes of points, the last minute makes the rate, and the last 50 exits
// are kept with their reasons.
func TestHistoryBounds(t *testing.T) {
	m := New(Options{Mode: "worker"})
	start := time.Unix(1_700_000_000, 0)
	m.tick(start)
	for s := 1; s <= 700; s++ {
		n := 1
		if s > 640 {
			n = 5 // the last minute
		}
		for range n {
			m.Observe(&httpfront.Record{Status: 200, Duration: time.Millisecond})
		}
		m.tick(start.Add(time.Duration(s) * time.Second))
	}
	h := m.History().(History)
	if len(h.Points) != 600 || h.Points[0].T != start.Unix()+101 || h.Points[599].T != start.Unix()+700 {
		t.Errorf("%d points from t=%d to %d; want 600 from %d to %d", len(h.Points), h.Points[0].T, h.Points[len(h.Points)-1].T,
			start.Unix()+101, start.Unix()+700)
	}
	if got := m.RequestsPerSecond(); got != 5 {
		t.Errorf("RequestsPerSecond = %v; want 5 (the last minute's)", got)
	}

	for pid := 1; pid <= 60; pid++ {
		m.Exited(pid, pool.ExitReason(pid%len(pool.ExitReasons())))
	}
	h = m.History().(History)
	if len(h.Exits) != 50 || h.Exits[0].PID != 11 || h.Exits[49].PID != 60 {
		t.Fatalf("exits = %+v; want pids 11 … 60", h.Exits)
	}
	if e := h.Exits[49]; e.Reason != pool.ExitReason(60%len(pool.ExitReasons())).String() || time.Since(time.Unix(e.T, 0)) > time.Minute {
		t.Errorf("last exit = %+v; want reason %v, now", e, pool.ExitReason(60%len(pool.ExitReasons())))
	}
	b, _ := json.Marshal(h.Exits[0])
	if want := `{"t":` + jsonInt(h.Exits[0].T) + `,"pid":11,"reason":"` + h.Exits[0].Reason + `"}`; string(b) != want {
		t.Errorf("exit JSON = %s; want %s", b, want)
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// Run records a point a second and stops with its context.
func TestRun(t *testing.T) {
	m := New(Options{Mode: "worker"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(m.History().(History).Points) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("Run recorded fewer than 2 points in 10 s")
		}
		m.Observe(&httpfront.Record{Status: 200, Duration: time.Millisecond})
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
