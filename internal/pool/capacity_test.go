package pool

import (
	"sync/atomic"
	"testing"
	"time"
)

// lowestReady polls Stats().Ready until stop is closed and returns the lowest it saw.
func lowestReady(p *Pool, stop <-chan struct{}) func() int {
	var low atomic.Int64
	low.Store(int64(p.Stats().Ready))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if n := int64(p.Stats().Ready); n < low.Load() {
				low.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	return func() int { <-done; return int(low.Load()) }
}

// A reload under load keeps capacity: while the old workers are replaced by new ones that take
// 150 ms to boot, the pool never has fewer than workers − 1 ready (the rule), with the
// canary judged and without; the roll still ends with every worker new and no request failed.
func TestReloadKeepsCapacity(t *testing.T) {
	for _, judged := range []bool{true, false} {
		name := "judged"
		if !judged {
			name = "unjudged"
		}
		t.Run(name, func(t *testing.T) {
			work := func(body string) behaviour {
				return func([]byte) []byte { time.Sleep(2 * time.Millisecond); return okResponse(body) }
			}
			s := newFakeStager(work("old"), work("new"))
			s.boot = 150 * time.Millisecond
			c := canaryOpts
			c.Enabled, c.MinRequests = judged, 1
			const workers = 4
			p := startPool(t, Options{Workers: workers, Canary: c}, s)
			waitReady(t, p)
			stop := make(chan struct{})
			wait := load(p, workers, stop)
			waitCond(t, "every worker busy", func() bool { return p.Stats().Busy == workers })
			watched := make(chan struct{})
			low := lowestReady(p, watched)
			if err := p.Reload(); err != nil {
				t.Fatalf("Reload() = %v", err)
			}
			waitCond(t, "the rollout ended, every worker new and ready", func() bool {
				now := pids(p)
				for _, g := range now {
					if g != 1 {
						return false
					}
				}
				return len(now) == workers && p.Stats().Ready == workers && p.Stats().Rollout.State != RolloutRolling
			})
			close(watched)
			close(stop)
			failed, bodies := wait()
			if st := p.Stats().Rollout.State; st != RolloutOK {
				t.Errorf("Rollout.State = %s; want ok", st)
			}
			if n := low(); n < workers-1 {
				t.Errorf("lowest Stats().Ready during the roll = %d; want ≥ %d (workers − 1)", n, workers-1)
			}
			if failed != 0 || bodies["new"] == 0 {
				t.Errorf("%d requests failed, answers %v; want 0, some new", failed, bodies)
			}
		})
	}
}
