// Package metrics owns askrd's Prometheus metrics (docs/metrics.md lists them) and the short
// history the admin dashboard draws. It has a registry of its own (never the global one): what
// every request adds (Observe, on the request's path, so it takes no lock and allocates nothing),
// what the pool and the template report through hooks (Booted, Exited, Forked, TemplateBooted),
// and what is read from the pool and /proc when Prometheus scrapes (collector.go). Run records a
// point of history every second (history.go). It serves nothing itself: Handler is mounted by
// whoever owns the admin listener, and it never changes the pool.
package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/askr-php/askr/internal/certificate"
	"github.com/askr-php/askr/internal/httpfront"
	"github.com/askr-php/askr/internal/pool"
	"github.com/askr-php/askr/internal/sidecar"
)

// Pool is what the metrics read of the worker pool, at scrape time and once a second; *pool.Pool
// has it.
type Pool interface {
	Stats() pool.Stats
	Workers() []pool.WorkerInfo
}

// Options configures the metrics.
type Options struct {
	Mode string // "worker", "cow" or "per-request": the mode label of the request metrics
}

// Metrics is askrd's metrics and history. Its methods are safe for concurrent use.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler
	mode    string

	// What Observe adds to, resolved once: a lookup by label values per request would cost a
	// map access and a string hash.
	requests          [6]prometheus.Counter // by status class: [1] 1xx … [5] 5xx ([0] unused)
	requestVec        *prometheus.CounterVec
	duration          prometheus.Observer
	bytesIn, bytesOut prometheus.Counter
	queueWait         prometheus.Observer
	upstream          prometheus.Observer

	boot, fork, templateBoot prometheus.Histogram

	hist     durations                                   // Observe's request durations at a finer grain, for the history's quantiles
	source   atomic.Value                                // of source: the pool (and the template) once Watch has been called
	sidecars atomic.Pointer[func() []sidecar.Status]     // once WatchSidecars has been called
	certs    atomic.Pointer[func() []certificate.Status] // once WatchCertificates has been called

	mu      sync.Mutex // guards what follows (the history; never taken on a request's path)
	history *history
}

// source is what Watch was given.
type source struct {
	pool         Pool
	templatePID  func() int
	sidecars     func() []sidecar.Status
	certificates func() []certificate.Status
}

// Buckets of the histograms, in seconds. A hello-world request takes ~100 µs, a PHP process boots
// in tens of milliseconds and a large app's template in seconds.
var (
	requestBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	bootBuckets    = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	forkBuckets    = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5}
)

// statusClasses are the values of the status_class label, by status/100 (0: outside 100–599).
var statusClasses = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

// New returns the metrics of an askrd running in opt.Mode, with Go's runtime and process
// collectors. Call Watch to add the pool's, and Run to record the history.
func New(opt Options) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), mode: opt.Mode, history: newHistory()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := factory{m.reg}

	requests := f.counterVec("askr_http_requests_total", "HTTP requests answered, by status class.", "mode", "status_class")
	for i := 1; i < len(statusClasses); i++ {
		m.requests[i] = requests.WithLabelValues(opt.Mode, statusClasses[i])
	}
	m.requestVec = requests // for a status outside 100–599, whose series appears only once one is answered
	m.duration = f.histogramVec("askr_http_request_duration_seconds", "Time from a request's arrival to the end of its response.", requestBuckets, "mode").WithLabelValues(opt.Mode)
	m.bytesIn = f.counter("askr_http_request_bytes_total", "Request body bytes read.")
	m.bytesOut = f.counter("askr_http_response_bytes_total", "Response body bytes written.")
	m.queueWait = f.histogram("askr_php_queue_wait_seconds", "Time PHP requests waited for an idle PHP process.", requestBuckets)
	m.upstream = f.histogram("askr_php_duration_seconds", "Time PHP requests spent in a PHP process (the upstream time).", requestBuckets)
	m.boot = f.histogram("askr_php_boot_duration_seconds", "Time from a PHP process's start to its hello (in CoW mode, a fork's to its hello).", bootBuckets)
	m.fork = f.histogram("askr_cow_fork_duration_seconds", "CoW mode: time from asking the template for a fork to the forked worker's admission (connected and verified).", forkBuckets)
	m.templateBoot = f.histogram("askr_cow_template_boot_duration_seconds", "CoW mode: time a template took to boot the app (to askr_cow_ready()).", bootBuckets)
	m.reg.MustRegister(collector{m})
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, EnableOpenMetrics: true,
		MaxRequestsInFlight: 2, Timeout: 10 * time.Second})
	return m
}

// factory makes metrics registered with reg.
type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

// Watch makes the metrics read p (and, if templatePID is not nil, the CoW template whose pid it
// returns; 0 while there is none) at scrape time and once a second. Until it is called they have
// no pool metrics.
func (m *Metrics) Watch(p Pool, templatePID func() int) {
	m.source.Store(source{pool: p, templatePID: templatePID})
}

// WatchSidecars makes the metrics read the sidecar, queue and scheduler slots list gives at scrape
// time.
func (m *Metrics) WatchSidecars(list func() []sidecar.Status) { m.sidecars.Store(&list) }

// WatchCertificates makes the metrics read the certificates list gives at scrape time.
func (m *Metrics) WatchCertificates(list func() []certificate.Status) { m.certs.Store(&list) }

func (m *Metrics) watched() source {
	s, _ := m.source.Load().(source)
	if f := m.sidecars.Load(); f != nil {
		s.sidecars = *f
	}
	if f := m.certs.Load(); f != nil {
		s.certificates = *f
	}
	return s
}

// Observe counts one answered request (httpfront.Options.Observe). It runs on every request's
// path: a few atomic additions, no lock, no allocation.
func (m *Metrics) Observe(r *httpfront.Record) {
	m.class(r.Status).Inc()
	secs := r.Duration.Seconds()
	m.duration.Observe(secs)
	m.hist.add(r.Duration)
	if r.BytesIn > 0 {
		m.bytesIn.Add(float64(r.BytesIn))
	}
	if r.BytesOut > 0 {
		m.bytesOut.Add(float64(r.BytesOut))
	}
	if r.PHP {
		m.queueWait.Observe(r.Visit.QueueWait.Seconds())
		m.upstream.Observe(r.Visit.Upstream.Seconds())
	}
}

// class returns the request counter of status's class.
func (m *Metrics) class(status int) prometheus.Counter {
	if c := status / 100; status >= 100 && c < len(statusClasses) {
		return m.requests[c]
	}
	return m.requestVec.WithLabelValues(m.mode, statusClasses[0]) // rare: a status PHP made up
}

// Booted records how long a PHP process took to boot (pool.Options.Booted).
func (m *Metrics) Booted(d time.Duration) { m.boot.Observe(d.Seconds()) }

// Forked records how long a CoW fork took, from the request to the worker's hello
// (template.Options.Forked).
func (m *Metrics) Forked(d time.Duration) { m.fork.Observe(d.Seconds()) }

// TemplateBooted records how long a CoW template took to boot (template.Options.TemplateBooted).
func (m *Metrics) TemplateBooted(d time.Duration) { m.templateBoot.Observe(d.Seconds()) }

// Exited records that the pool's process pid ended, and why, for the history's recent exits
// (pool.Options.Exited). The exit counters are the pool's own (pool.Stats.Exits).
func (m *Metrics) Exited(pid int, reason pool.ExitReason) {
	m.mu.Lock()
	m.history.exited(time.Now(), pid, reason)
	m.mu.Unlock()
}

// Handler serves the metrics in Prometheus's text format (or OpenMetrics, if the scraper asks for
// it); its own errors count in promhttp_metric_handler_errors_total.
func (m *Metrics) Handler() http.Handler { return m.handler }
