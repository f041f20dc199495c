package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/askr-php/askr/internal/pool"
	"github.com/askr-php/askr/internal/proc"
	"github.com/askr-php/askr/internal/sidecar"
)

// What the collector reads at scrape time: the pool's counters and gauges, and the memory of its
// live processes (and of the CoW template) from /proc/PID/smaps_rollup. The per-process series
// are those of the processes alive at the scrape, so they stay as many as the workers.
var (
	descQueueLength = prometheus.NewDesc("askr_php_queue_length", "Requests waiting for an idle PHP process now.", nil, nil)
	descQueueHigh   = prometheus.NewDesc("askr_php_queue_high_water", "The most requests that waited for a PHP process at once.", nil, nil)
	descWorkers     = prometheus.NewDesc("askr_php_workers", "PHP processes that have booted and not exited, by state.", []string{"state"}, nil)
	descTarget      = prometheus.NewDesc("askr_php_workers_target", "PHP processes the pool keeps now: workers, or between workers_min and workers_max when it scales.", nil, nil)
	descScaled      = prometheus.NewDesc("askr_php_workers_scaled_total", "Times the pool's target went up (requests waited) or down (a worker went unused for scale_down_after), by direction.", []string{"direction"}, nil)
	descAccepted    = prometheus.NewDesc("askr_php_requests_accepted_total", "Requests handed to the pool of PHP processes.", nil, nil)
	descMaxReached  = prometheus.NewDesc("askr_php_max_workers_reached_total", "Requests that found no idle PHP process and had to wait.", nil, nil)
	descSlow        = prometheus.NewDesc("askr_php_slow_requests_total", "Requests that ran past request_slowlog_timeout.", nil, nil)
	descExits       = prometheus.NewDesc("askr_php_worker_exits_total", "PHP processes that ended, by reason.", []string{"reason"}, nil)
	descRollout     = prometheus.NewDesc("askr_rollout_state", "The last reload or refork: 1 for its state (idle, rolling, ok, inconclusive, aborted) and cause (reload, refork; none while idle), 0 for the other states.", []string{"cause", "state"}, nil)
	descGeneration  = prometheus.NewDesc("askr_template_generation", "The newest generation of PHP processes: in CoW mode the template's (a new template is a new generation), otherwise raised by each reload.", nil, nil)
	descWorkerMem   = prometheus.NewDesc("askr_php_worker_memory_bytes", "Memory of each live PHP process, from /proc/PID/smaps_rollup: rss, pss (shared pages divided among their sharers) and private_dirty.", []string{"pid", "kind"}, nil)
	descMem         = prometheus.NewDesc("askr_php_memory_bytes", "Memory of all live PHP processes together (the sum of askr_php_worker_memory_bytes).", []string{"kind"}, nil)
	descSidecarUp   = prometheus.NewDesc("askr_sidecar_up", "Each [[sidecar]], [queue] and [scheduler] process slot: 1 while its process runs, 0 otherwise (backing off, stopped, a scheduler between runs).", []string{"name", "kind", "index"}, nil)
	descSidecarRuns = prometheus.NewDesc("askr_sidecar_restarts_total", "Starts of each sidecar, queue worker and scheduler slot after its first (a scheduler: its runs).", []string{"name", "kind", "index"}, nil)
	descSkipped     = prometheus.NewDesc("askr_scheduler_skipped_total", "Scheduler boundaries skipped because the previous run was still going.", []string{"name"}, nil)
	descCertExpiry  = prometheus.NewDesc("askr_tls_certificate_expiry_timestamp_seconds", "When each certificate askrd serves HTTPS with expires (NotAfter, Unix time), by source (files, self-signed, acme) and its first name; absent while none has been obtained.", []string{"source", "name"}, nil)
	descTemplateMem = prometheus.NewDesc("askr_template_memory_bytes", "CoW mode: memory of the template process, from /proc/PID/smaps_rollup.", []string{"kind"}, nil)
)

var rolloutStates = []string{pool.RolloutIdle, pool.RolloutRolling, pool.RolloutOK, pool.RolloutInconclusive, pool.RolloutAborted}

// collector is the part of the metrics read at scrape time.
type collector struct{ m *Metrics }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueueLength, descQueueHigh, descWorkers, descTarget, descScaled, descAccepted,
		descMaxReached, descSlow, descExits, descRollout, descGeneration, descWorkerMem, descMem, descTemplateMem, descSidecarUp, descSidecarRuns, descSkipped, descCertExpiry} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	src := c.m.watched()
	if src.pool == nil {
		return
	}
	st := src.pool.Stats()
	workers := src.pool.Workers()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descQueueLength, float64(st.Waiting))
	gauge(descQueueHigh, float64(st.WaitingMax))
	gauge(descWorkers, float64(max(st.Ready-st.Busy, 0)), "idle")
	gauge(descWorkers, float64(st.Busy), "busy")
	gauge(descTarget, float64(st.Target))
	counter(descScaled, st.ScaledUp, "up")
	counter(descScaled, st.ScaledDown, "down")
	counter(descAccepted, st.Accepted)
	counter(descMaxReached, st.MaxWorkersReached)
	counter(descSlow, st.Slow)
	for _, r := range pool.ExitReasons() {
		counter(descExits, st.Exits[r], r.String())
	}
	gauge(descGeneration, float64(generation(st, workers)))
	cause := st.Rollout.Cause
	if cause == "" {
		cause = "none"
	}
	for _, state := range rolloutStates {
		v := 0.0
		if state == st.Rollout.State || state == pool.RolloutIdle && st.Rollout.State == "" {
			v = 1
		}
		gauge(descRollout, v, cause, state)
	}

	if src.sidecars != nil {
		for _, sc := range src.sidecars() {
			i := strconv.Itoa(sc.Index)
			up := 0.0
			if sc.PID > 0 && sc.State == "running" {
				up = 1
			}
			gauge(descSidecarUp, up, sc.Name, string(sc.Kind), i)
			counter(descSidecarRuns, uint64(sc.Restarts), sc.Name, string(sc.Kind), i)
			if sc.Kind == sidecar.KindScheduler {
				counter(descSkipped, uint64(sc.Skipped), sc.Name)
			}
		}
	}

	if src.certificates != nil {
		for _, ct := range src.certificates() {
			if !ct.NotAfter.IsZero() && len(ct.Names) > 0 {
				gauge(descCertExpiry, float64(ct.NotAfter.Unix()), ct.Source, ct.Names[0])
			}
		}
	}

	var sum proc.Memory
	for _, w := range workers {
		u, err := proc.ReadMemory(w.PID)
		if err != nil {
			continue // it exited since Workers
		}
		sum = sum.Add(u)
		pid := strconv.Itoa(w.PID)
		for _, k := range memoryKinds(u) {
			gauge(descWorkerMem, k.v, pid, k.kind)
		}
	}
	for _, k := range memoryKinds(sum) {
		gauge(descMem, k.v, k.kind)
	}
	if src.templatePID == nil {
		return
	}
	if pid := src.templatePID(); pid > 0 {
		if u, err := proc.ReadMemory(pid); err == nil {
			for _, k := range memoryKinds(u) {
				gauge(descTemplateMem, k.v, k.kind)
			}
		}
	}
}

type memoryKind struct {
	kind string
	v    float64
}

// memoryKinds are the values of the kind label of the memory metrics.
func memoryKinds(u proc.Memory) [3]memoryKind {
	return [3]memoryKind{{"rss", float64(u.Rss)}, {"pss", float64(u.Pss)}, {"private_dirty", float64(u.PrivateDirty)}}
}

// generation is the newest generation of the pool's processes: the pool's count, or, where the
// pool does not keep one (a CoW template's generations), the newest of its processes'.
func generation(st pool.Stats, workers []pool.WorkerInfo) int64 {
	g := st.Generation
	for _, w := range workers {
		g = max(g, w.Generation)
	}
	return g
}
