package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/askr-php/askr/internal/pool"
	"github.com/askr-php/askr/internal/proc"
)

// reportMemory logs the memory of the PHP processes every interval until ctx is done. template
// returns the CoW template's pid, or 0.
func reportMemory(ctx context.Context, every time.Duration, p *pool.Pool, template func() int, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			log.Info("memory", memorySummary(p, template)...)
		}
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20)) }

// memorySummary sums smaps_rollup over the workers and adds the template's and askrd's own.
func memorySummary(p *pool.Pool, template func() int) []any {
	var sum proc.Memory
	n := 0
	for _, w := range p.Workers() {
		if u, err := proc.ReadMemory(w.PID); err == nil {
			sum = sum.Add(u)
			n++
		}
	}
	attrs := []any{"workers", n, "workers_pss", mib(sum.Pss), "workers_private_dirty", mib(sum.PrivateDirty),
		"workers_shared", mib(sum.Shared), "workers_rss", mib(sum.Rss)}
	if pid := template(); pid > 0 {
		if u, err := proc.ReadMemory(pid); err == nil {
			attrs = append(attrs, "template_pss", mib(u.Pss), "template_rss", mib(u.Rss))
		}
	}
	if u, err := proc.ReadMemory(os.Getpid()); err == nil {
		attrs = append(attrs, "askrd_rss", mib(u.Rss))
	}
	return attrs
}
