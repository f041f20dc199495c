package metrics

import (
	"bytes"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/askr-php/askr/internal/httpfront"
	"github.com/askr-php/askr/internal/pool"
	"github.com/askr-php/askr/internal/sidecar"
)

// fakePool is a Pool whose Stats and Workers are what the test set.
type fakePool struct {
	mu      sync.Mutex
	stats   pool.Stats
	workers []pool.WorkerInfo
}

func (f *fakePool) Stats() pool.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func (f *fakePool) Workers() []pool.WorkerInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]pool.WorkerInfo(nil), f.workers...)
}

// startProcess starts a process that sleeps until the test ends, and returns its pid.
func startProcess(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// deadPID returns the pid of a process that has exited and been waited for.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// scrape gets the metrics from h over HTTP, checks them with promtool and parses them with
// Prometheus's own parser.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type = %q; want Prometheus's text format", ct)
	}
	promtoolCheck(t, body)
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("expfmt parse: %v\n%s", err, body)
	}
	return fams
}

// promtoolCheck runs `promtool check metrics` on a scrape: it must find no problem. Without
// promtool (Debian's prometheus package) the test skips, or fails under CI=true.
func promtoolCheck(t *testing.T, body []byte) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found (Debian package prometheus; make deps installs it)")
		}
		t.Skip("promtool not found (Debian package prometheus)")
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// value returns the value of the series of family name with the given labels (name=value pairs),
// and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.Label {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func want(t *testing.T, fams map[string]*dto.MetricFamily, w float64, name string, labels ...string) {
	t.Helper()
	got, ok := value(fams, name, labels...)
	if !ok {
		t.Errorf("%s%v: no such series", name, labels)
	} else if got != w {
		t.Errorf("%s%v = %v; want %v", name, labels, got, w)
	}
}

// The counters and histograms fed by Observe match the requests observed, and the scrape is
// valid for promtool and expfmt.
func TestScrapeCountsRequests(t *testing.T) {
	m := New(Options{Mode: "worker"})
	statuses := map[int]int{100: 1, 200: 40, 204: 3, 302: 5, 404: 7, 502: 2, 503: 4}
	var total, php, in, out int
	var sum time.Duration
	for status, n := range statuses {
		for i := range n {
			r := &httpfront.Record{Status: status, Duration: time.Duration(i+1) * time.Millisecond,
				BytesIn: int64(i), BytesOut: int64(10 * i), PHP: status != 302}
			if r.PHP {
				r.Visit = pool.Visit{QueueWait: time.Millisecond, Upstream: 2 * time.Millisecond}
				php++
			}
			m.Observe(r)
			total++
			sum += r.Duration
			in += i
			out += 10 * i
		}
	}
	fams := scrape(t, m.Handler())
	classes := map[string]int{}
	for status, n := range statuses {
		classes[strconv.Itoa(status/100)+"xx"] += n
	}
	for _, c := range []string{"1xx", "2xx", "3xx", "4xx", "5xx"} {
		want(t, fams, float64(classes[c]), "askr_http_requests_total", "mode", "worker", "status_class", c)
	}
	want(t, fams, float64(total), "askr_http_request_duration_seconds", "mode", "worker")
	h := fams["askr_http_request_duration_seconds"].Metric[0].Histogram
	if got := h.GetSampleSum(); math.Abs(got-sum.Seconds()) > 1e-9 {
		t.Errorf("request duration sum = %v; want %v", got, sum.Seconds())
	}
	want(t, fams, float64(in), "askr_http_request_bytes_total")
	want(t, fams, float64(out), "askr_http_response_bytes_total")
	want(t, fams, float64(php), "askr_php_queue_wait_seconds")
	want(t, fams, float64(php), "askr_php_duration_seconds")
	if f := fams["askr_php_duration_seconds"]; f != nil {
		if got := f.Metric[0].Histogram.GetSampleSum(); math.Abs(got-0.002*float64(php)) > 1e-9 {
			t.Errorf("PHP duration sum = %v; want %v", got, 0.002*float64(php))
		}
	}
	// Go's runtime and the process.
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	// Without a pool: no pool metrics, and no series for an odd status yet.
	if fams["askr_php_queue_length"] != nil {
		t.Error("askr_php_queue_length before Watch")
	}
	if _, ok := value(fams, "askr_http_requests_total", "status_class", "other"); ok {
		t.Error("a series for status_class=other before such a status")
	}
	m.Observe(&httpfront.Record{Status: 999})
	want(t, scrape(t, m.Handler()), 1, "askr_http_requests_total", "mode", "worker", "status_class", "other")
}

// The pool's counters and gauges are read at scrape time, and the memory of its live processes
// (and the template's) from /proc: the dead one has no series.
func TestScrapeReadsPool(t *testing.T) {
	live1, live2, dead := os.Getpid(), startProcess(t), deadPID(t)
	st := pool.Stats{Ready: 3, Busy: 1, Waiting: 4, WaitingMax: 9, Accepted: 1234, MaxWorkersReached: 17, Slow: 5, Generation: 2,
		Target: 6, ScaledUp: 7, ScaledDown: 3, Rollout: pool.Rollout{State: pool.RolloutAborted, Cause: "reload"}}
	for _, r := range pool.ExitReasons() {
		st.Exits[r] = uint64(10 + int(r))
	}
	fp := &fakePool{stats: st, workers: []pool.WorkerInfo{{PID: live1, Generation: 2}, {PID: live2, Generation: 3}, {PID: dead, Generation: 3}}}
	m := New(Options{Mode: "cow"})
	template := startProcess(t)
	m.Watch(fp, func() int { return template })
	fams := scrape(t, m.Handler())

	want(t, fams, 4, "askr_php_queue_length")
	want(t, fams, 9, "askr_php_queue_high_water")
	want(t, fams, 2, "askr_php_workers", "state", "idle")
	want(t, fams, 1, "askr_php_workers", "state", "busy")
	want(t, fams, 6, "askr_php_workers_target")
	want(t, fams, 7, "askr_php_workers_scaled_total", "direction", "up")
	want(t, fams, 3, "askr_php_workers_scaled_total", "direction", "down")
	want(t, fams, 1234, "askr_php_requests_accepted_total")
	want(t, fams, 17, "askr_php_max_workers_reached_total")
	want(t, fams, 5, "askr_php_slow_requests_total")
	for _, r := range pool.ExitReasons() {
		want(t, fams, float64(10+int(r)), "askr_php_worker_exits_total", "reason", r.String())
	}
	want(t, fams, 3, "askr_template_generation") // the newest worker's, above the pool's count
	want(t, fams, 1, "askr_rollout_state", "cause", "reload", "state", "aborted")
	want(t, fams, 0, "askr_rollout_state", "cause", "reload", "state", "ok")

	// Per process: the live ones only; the totals are their sums.
	pids := map[string]bool{}
	sums := map[string]float64{}
	for _, mt := range fams["askr_php_worker_memory_bytes"].GetMetric() {
		var pid, kind string
		for _, l := range mt.Label {
			switch l.GetName() {
			case "pid":
				pid = l.GetValue()
			case "kind":
				kind = l.GetValue()
			}
		}
		pids[pid] = true
		sums[kind] += mt.Gauge.GetValue()
		if kind == "rss" && mt.Gauge.GetValue() <= 0 {
			t.Errorf("pid %s rss = %v; want > 0", pid, mt.Gauge.GetValue())
		}
	}
	if len(pids) != 2 || !pids[strconv.Itoa(live1)] || !pids[strconv.Itoa(live2)] {
		t.Errorf("askr_php_worker_memory_bytes pids = %v; want %d and %d (not the dead %d)", pids, live1, live2, dead)
	}
	if n := len(fams["askr_php_worker_memory_bytes"].GetMetric()); n != 6 {
		t.Errorf("%d askr_php_worker_memory_bytes series; want 2 pids × 3 kinds", n)
	}
	for _, kind := range []string{"rss", "pss", "private_dirty"} {
		want(t, fams, sums[kind], "askr_php_memory_bytes", "kind", kind)
		if v, ok := value(fams, "askr_template_memory_bytes", "kind", kind); !ok || (kind == "rss" && v <= 0) {
			t.Errorf("askr_template_memory_bytes{kind=%q} = %v, %v; want the sleeping process's", kind, v, ok)
		}
	}

	// Without a template: no template series.
	m.Watch(fp, func() int { return 0 })
	if fams := scrape(t, m.Handler()); fams["askr_template_memory_bytes"] != nil {
		t.Error("askr_template_memory_bytes without a template")
	}
}

// The hooks feed their histograms.
func TestHooks(t *testing.T) {
	m := New(Options{Mode: "cow"})
	m.Booted(30 * time.Millisecond)
	m.Booted(40 * time.Millisecond)
	m.Forked(2 * time.Millisecond)
	m.TemplateBooted(1500 * time.Millisecond)
	fams := scrape(t, m.Handler())
	want(t, fams, 2, "askr_php_boot_duration_seconds")
	want(t, fams, 1, "askr_cow_fork_duration_seconds")
	want(t, fams, 1, "askr_cow_template_boot_duration_seconds")
	if got := fams["askr_cow_template_boot_duration_seconds"].Metric[0].Histogram.GetSampleSum(); got != 1.5 {
		t.Errorf("template boot sum = %v; want 1.5", got)
	}
}

// Observe allocates nothing.
func TestObserveDoesNotAllocate(t *testing.T) {
	m := New(Options{Mode: "worker"})
	r := &httpfront.Record{Status: 200, Duration: time.Millisecond, BytesIn: 10, BytesOut: 100, PHP: true,
		Visit: pool.Visit{QueueWait: time.Microsecond, Upstream: time.Millisecond}}
	if n := testing.AllocsPerRun(1000, func() { m.Observe(r) }); n != 0 {
		t.Errorf("Observe: %v allocations; want 0", n)
	}
}

// Observe, the scrape and the history's tick run at once (for the race detector), and no request
// is lost between seconds.
func TestConcurrentObserveScrapeTick(t *testing.T) {
	m := New(Options{Mode: "worker"})
	m.Watch(&fakePool{workers: []pool.WorkerInfo{{PID: os.Getpid()}}}, nil)
	const goroutines, each = 4, 2000
	start := time.Unix(1_000_000, 0)
	m.tick(start)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for i := range each {
				m.Observe(&httpfront.Record{Status: 200, Duration: time.Duration(i) * time.Microsecond})
			}
		})
	}
	stop := make(chan struct{})
	var ticker sync.WaitGroup
	ticker.Go(func() {
		for s := 1; ; s++ {
			select {
			case <-stop:
				return
			default:
			}
			m.tick(start.Add(time.Duration(s) * time.Second))
			m.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
		}
	})
	wg.Wait()
	close(stop)
	ticker.Wait()
	m.tick(start.Add(time.Hour)) // the last second: after every Observe
	var n uint64
	for _, p := range m.History().(History).Points {
		n += p.n
	}
	if n != goroutines*each {
		t.Errorf("history counted %d requests; want %d", n, goroutines*each)
	}
}

func BenchmarkObserve(b *testing.B) {
	m := New(Options{Mode: "worker"})
	r := &httpfront.Record{Status: 200, Duration: 150 * time.Microsecond, BytesIn: 10, BytesOut: 100, PHP: true,
		Visit: pool.Visit{QueueWait: time.Microsecond, Upstream: 100 * time.Microsecond}}
	b.ReportAllocs()
	for b.Loop() {
		m.Observe(r)
	}
}

func BenchmarkObserveParallel(b *testing.B) {
	m := New(Options{Mode: "worker"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := &httpfront.Record{Status: 200, Duration: 150 * time.Microsecond, BytesIn: 10, BytesOut: 100, PHP: true,
			Visit: pool.Visit{QueueWait: time.Microsecond, Upstream: 100 * time.Microsecond}}
		for pb.Next() {
			m.Observe(r)
		}
	})
}

// BenchmarkScrape is one scrape with four live workers (their smaps_rollup read each time), the
// cost a once-a-second scrape adds to askrd.
func BenchmarkScrape(b *testing.B) {
	var ws []pool.WorkerInfo
	for range 4 {
		cmd := exec.Command("sleep", "300")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		ws = append(ws, pool.WorkerInfo{PID: cmd.Process.Pid})
	}
	m := New(Options{Mode: "worker"})
	m.Watch(&fakePool{workers: ws}, nil)
	h := m.Handler()
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// The sidecar, queue and scheduler slots are read at scrape time: up while a process runs, the
// restarts, and the scheduler's skipped boundaries.
func TestScrapeReadsSidecars(t *testing.T) {
	m := New(Options{Mode: "worker"})
	m.Watch(&fakePool{}, nil)
	m.WatchSidecars(func() []sidecar.Status {
		return []sidecar.Status{
			{Name: "node", Kind: sidecar.KindCommand, PID: 10, State: sidecar.StateRunning, Restarts: 4},
			{Name: "queue", Kind: sidecar.KindQueue, Index: 1, State: sidecar.StateBackoff, Restarts: 2},
			{Name: "scheduler", Kind: sidecar.KindScheduler, State: sidecar.StateWaiting, Restarts: 59, Skipped: 3},
		}
	})
	fams := scrape(t, m.Handler())
	want(t, fams, 1, "askr_sidecar_up", "name", "node", "kind", "sidecar", "index", "0")
	want(t, fams, 4, "askr_sidecar_restarts_total", "name", "node", "kind", "sidecar", "index", "0")
	want(t, fams, 0, "askr_sidecar_up", "name", "queue", "kind", "queue", "index", "1")
	want(t, fams, 2, "askr_sidecar_restarts_total", "name", "queue", "kind", "queue", "index", "1")
	want(t, fams, 0, "askr_sidecar_up", "name", "scheduler", "kind", "scheduler", "index", "0")
	want(t, fams, 3, "askr_scheduler_skipped_total", "name", "scheduler")
}
