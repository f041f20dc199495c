package pool

import (
	"strings"
	"testing"
	"time"
)

// A canary whose requests outlast the window has answered none when it is judged: the request it
// has then counts, and one that has run past canary_max_latency_factor times the old workers'
// mean rolls it back (not "inconclusive", which would commit it).
func TestCanaryStuckInItsRequestRollsBack(t *testing.T) {
	s := newFakeStager(func([]byte) []byte { return okResponse("old") }, func([]byte) []byte {
		time.Sleep(time.Second) // the new code is stuck (its request ends after the window)
		return okResponse("new")
	})
	c := canaryOpts
	c.MaxLatencyFactor = 3
	p := startPool(t, Options{Workers: 2, Canary: c}, s)
	waitReady(t, p)
	err, failed, _ := reloadUnderLoad(t, p)
	if err == nil || !strings.Contains(err.Error(), "rolled back") || !strings.Contains(err.Error(), "answered none") ||
		!strings.Contains(err.Error(), "canary_max_latency_factor 3") {
		t.Fatalf("Reload() = %v; want a rollback naming the request the canary still had", err)
	}
	if st := p.Stats(); failed != 0 || st.Generation != 0 || st.Rollout.State != RolloutAborted || s.commits.Load() != 0 {
		t.Errorf("%d failed, generation %d, Rollout %+v, %d commits; want 0, 0, aborted, 0", failed, st.Generation, st.Rollout, s.commits.Load())
	}
	waitCond(t, "the canary retired after its request", func() bool { return len(p.Workers()) == 2 })
}
