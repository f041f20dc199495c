package pool

import (
	"context"
	"testing"
	"time"
)

// BenchmarkCall measures the pool's own cost of one request: lending an idle process, giving it
// back, the books. The function given to Call does nothing. plain: no Visit, no option; visit: a
// Visit; options: a Visit, request_timeout, SlowAfter and max_rss (a fake statm read) on.
func BenchmarkCall(b *testing.B) {
	for _, bc := range []struct {
		name  string
		opt   Options
		visit bool
	}{
		{"plain", Options{Workers: 1}, false},
		{"visit", Options{Workers: 1}, true},
		{"options", Options{Workers: 1, RequestTimeout: time.Minute, SlowAfter: time.Minute, MaxRSS: 1 << 40}, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			mem := &fakeMemory{rss: 50 * mb}
			p := startPool(b, bc.opt, &convStarter{}, mem.opener)
			waitReady(b, p)
			call := func(Process) Outcome { return Outcome{} }
			b.ReportAllocs()
			for b.Loop() {
				var v *Visit
				if bc.visit {
					v = &Visit{Method: "GET", URI: "/"}
				}
				if err := p.Call(context.Background(), v, call); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
