package integration

import (
	"strings"
	"testing"
	"time"
)

// A burst of requests that wait for a worker makes the pool grow from workers = 1 toward
// workers_max = 4, never past it; once the burst is over the pool shrinks back to workers_min = 1
// (scale_down_after = 1s). The admin /status, the metrics and the log show it. In CoW mode
// (ASKR_TEST_COW=1) the added workers are forks of the template.
func TestAutoscaleBurst(t *testing.T) {
	s := startAskrd(t, opts{config: "[server]\nworkers = 1\nworkers_min = 1\nworkers_max = 4\nscale_down_after = \"1s\"\n" +
		"queue_size = 64\nqueue_timeout = 30\n"})
	if st := s.adminStatus(); st.Workers.Total != 1 || st.Workers.Target != 1 {
		t.Fatalf("before the burst: %d workers, target %d; want 1, 1", st.Workers.Total, st.Workers.Target)
	}

	// 12 clients, each at most 40 requests of 200 ms (bounded: the load stops once seen).
	load := s.startLoad("/sleep?s=0.2", 12, 40)
	most, mostTarget := 0, 0
	grown := poll(30*time.Second, func() bool {
		st := s.adminStatus()
		most, mostTarget = max(most, st.Workers.Total), max(mostTarget, st.Workers.Target)
		if st.Workers.Total > 4 || st.Workers.Target > 4 {
			t.Errorf("during the burst: %d workers, target %d; want at most 4 (workers_max)", st.Workers.Total, st.Workers.Target)
		}
		return st.Workers.Total == 4 && st.Workers.Target == 4
	})
	metrics := s.adminDo("GET", "/metrics").body
	load.Stop()
	if !grown {
		t.Fatalf("the pool did not grow to 4 workers during the burst: at most %d workers, target %d", most, mostTarget)
	}
	if n := load.failed.Load(); n > 0 || load.ok.Load() == 0 {
		t.Errorf("burst: %d requests answered 200, %d failed; want none failed", load.ok.Load(), n)
	}
	for _, want := range []string{"askr_php_workers_target 4\n", "askr_php_workers_scaled_total{direction=\"up\"} 3\n"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics during the burst has no %q", want)
		}
	}
	if n := strings.Count(s.logs.String(), "scaled up"); n != 3 {
		t.Errorf("log has %d \"scaled up\" lines; want 3 (1 → 4)", n)
	}

	// Idle: back to workers_min.
	var st = s.adminStatus()
	if !poll(20*time.Second, func() bool {
		st = s.adminStatus()
		return st.Workers.Total == 1 && st.Workers.Target == 1
	}) {
		t.Fatalf("after the burst: %d workers, target %d; want back to 1 (workers_min) within 20s", st.Workers.Total, st.Workers.Target)
	}
	if st.Exits["scale_down"] != 3 || st.Exits["crash"] != 0 {
		t.Errorf("exits after scaling down = %v; want scale_down 3, no crash", st.Exits)
	}
	if n := strings.Count(s.logs.String(), "scaled down"); n != 3 {
		t.Errorf("log has %d \"scaled down\" lines; want 3 (4 → 1)", n)
	}
	if r := s.get("/sleep?s=0"); r.status != 200 {
		t.Errorf("GET /sleep?s=0 after scaling down = %d %q; want 200", r.status, r.body)
	}
}
