package cli

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/askr-php/askr/internal/config"
	"github.com/askr-php/askr/internal/notify"
	"github.com/askr-php/askr/internal/pool"
)

// life reports askrd's state to systemd while it serves: EXTEND_TIMEOUT_USEC while a slow boot
// progresses, READY=1 once the configured workers serve, a STATUS line, WATCHDOG=1 only while the
// pool is healthy, and the rolling reload on SIGHUP (one at a time with the admin API's, through
// rl). rps gives the STATUS line's requests/s. It returns when ctx is done.
func life(ctx context.Context, p *pool.Pool, sd *notify.Notifier, mode string, c config.Config, reload <-chan struct{}, rl *reloader, rps func() float64, log *slog.Logger) {
	const tick = time.Second
	watchdog := notify.WatchdogInterval()
	var watchdogC, pingC <-chan time.Time
	if watchdog > 0 {
		wt := time.NewTicker(watchdog / 2)
		defer wt.Stop()
		pt := time.NewTicker(max(watchdog/4, 10*time.Millisecond))
		defer pt.Stop()
		watchdogC, pingC = wt.C, pt.C
	}
	var reloads sync.WaitGroup
	defer reloads.Wait()
	status := time.NewTicker(tick)
	defer status.Stop()
	start := time.Now()
	ready := p.Ready()
	lastReady := 0
	extend := time.NewTicker(5 * time.Second)
	defer extend.Stop()
	extendC := extend.C
	healthy := true
	line := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-ready:
			ready, extendC = nil, nil
			log.Info("workers ready", "ready", p.Stats().Ready, "boot", time.Since(start).Round(time.Millisecond))
			sd.Ready()
		case <-extendC:
			// Still booting: ask systemd for more time while workers keep coming up, or while the
			// boot is within boot_timeout.
			if n := p.Stats().Ready; n > lastReady || time.Since(start) < c.Worker.BootTimeout.D() {
				lastReady = n
				sd.ExtendTimeout(15 * time.Second)
			}
		case <-pingC:
			p.Ping()
		case <-watchdogC:
			ok := p.Healthy(watchdog)
			if ok {
				sd.Watchdog()
			}
			if ok != healthy {
				healthy = ok
				if ok {
					log.Info("health check passes again; pinging the watchdog")
				} else {
					log.Error("health check failed: no worker answered within the watchdog interval; not pinging the watchdog")
				}
			}
		case <-status.C:
			gen := int64(0)
			for _, w := range p.Workers() {
				gen = max(gen, w.Generation)
			}
			if l := statusLine(mode, p.Stats(), gen, rps()); l != line {
				line = l
				sd.Status(l)
			}
		case <-reload:
			// On a goroutine of its own: the watchdog and STATUS= go on while the canary boots.
			reloads.Go(func() { rl.tryReload("SIGHUP") }) // it logs a failure
		}
	}
}

// statusLine is systemd's STATUS= line: the mode, the workers, the queue, the requests served, the
// newest generation, and as php-fpm's the requests per second (over the last minute) and the slow
// requests.
func statusLine(mode string, st pool.Stats, gen int64, rps float64) string {
	l := fmt.Sprintf("mode=%s workers=%d busy=%d idle=%d waiting=%d requests=%d generation=%d rps=%.1f slow=%d",
		mode, st.Ready, st.Busy, max(st.Ready-st.Busy, 0), st.Waiting, st.Served, gen, rps, st.Slow)
	if r := st.Rollout; r.State != "" && r.State != pool.RolloutIdle {
		l += fmt.Sprintf(" %s=%s", r.Cause, r.State) // "reload=rolling", "refork=ok", "reload=aborted"
	}
	return l
}

// extendWhileBooting asks systemd for more start-up time every few seconds until done is closed:
// a CoW template boots the whole app before any worker exists.
func extendWhileBooting(sd *notify.Notifier, done <-chan struct{}) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			sd.ExtendTimeout(15 * time.Second)
		}
	}
}
