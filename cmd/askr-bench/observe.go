package main

// The observe scenario: what the access log and a Prometheus scrape of the admin socket cost
// hello world's requests/s (issue 15: under 3 % each).

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// goalObservePct: the access log, and /metrics scraped every second, each cost less than this
// share of hello world's requests/s.
const goalObservePct = 3

// The variants of the observe scenario: the same askrd and configuration (with an admin socket),
// plus an access log to a file, or plus a scrape of the admin socket's /metrics every second.
const (
	obsOff    = "off"
	obsLog    = "access log"
	obsScrape = "/metrics scraped"
)

// observe measures hello world with each variant, in rounds whose order rotates; each variant's
// row is its median round.
func (b *bench) observe() error {
	names := []string{obsOff, obsLog, obsScrape}
	rounds := map[string][]trial{}
	scrapes := map[string]*scrapeResult{}
	var logLines []string
	for r := 1; r <= b.cfg.obsRounds; r++ {
		for i := range names {
			name := names[(i+r-1)%len(names)]
			n := fmt.Sprintf("observe-%s-r%d", letters(name), r)
			dir := filepath.Join(b.tmp, n)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			conf := fmt.Sprintf("[admin]\nsocket = %q\n", filepath.Join(dir, "admin.sock"))
			alog := filepath.Join(dir, "access.log")
			if name == obsLog {
				conf = fmt.Sprintf("[server]\naccess_log = %q\n\n", alog) + conf
			}
			if err := os.WriteFile(filepath.Join(dir, "askr.toml"), []byte(conf), 0o644); err != nil {
				return err
			}
			s, err := b.startAskrd(n, askrdOpts{root: filepath.Join(b.repo, "examples/hello/public"),
				script: filepath.Join(b.repo, "examples/hello-worker.php"), flags: []string{"--config", filepath.Join(dir, "askr.toml")}})
			if err != nil {
				return err
			}
			if _, err := check(s.url+"/", n+" / askrd"); err != nil {
				return err
			}
			var sc *scraper
			if name == obsScrape {
				sc = startScraper(filepath.Join(dir, "admin.sock"), time.Second)
			}
			run, notes, err := b.measure(s, s.url+"/", b.defaultLoad())
			if sc != nil {
				scrapes[n] = sc.stop()
				logf("%s: %s", n, scrapes[n])
			}
			if err != nil {
				return err
			}
			if name == obsLog {
				logLines = append(logLines, b.logLinesNote(n, alog, run))
			}
			b.res.obsNotes = append(b.res.obsNotes, notes...)
			b.res.foreign = append(b.res.foreign, foreign{n + " / askrd", run.Foreign})
			rounds[name] = append(rounds[name], run)
			b.stopAll()
		}
	}
	unmeasured := map[string]bool{}
	for _, r := range scrapes {
		if r.ok == 0 {
			unmeasured[obsScrape] = true
		}
	}
	b.res.obsRows, b.res.obsNotes = obsSummary(names, rounds, unmeasured, append(b.res.obsNotes, logLines...))
	b.res.obsNotes = append(b.res.obsNotes, scrapeNotes(scrapes)...)
	return nil
}

// logLinesNote says how many lines the access log of a measured server holds against the requests
// wrk counted (the warm-up's and the check's are in it too).
func (b *bench) logLinesNote(name, path string, run trial) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("- **%s**: the access log could not be read: %v", name, err)
	}
	lines := bytes.Count(data, []byte("\n"))
	ok := int64(lines) >= run.Requests
	logf("%s: access log %d lines (%d bytes) for %d measured requests", name, lines, len(data), run.Requests)
	return fmt.Sprintf("- **%s**: the access log holds %d lines (%.1f MiB) for the %d requests of the measured run plus the warm-up's: %s", name, lines, float64(len(data))/(1<<20), run.Requests, met(ok))
}

// obsSummary is the observe table (each variant's median round, the rps of every round) and the
// overhead of each variant against off; a variant in unmeasured (a scrape that got no answer)
// measured nothing more than off, which its note says instead of a goal.
func obsSummary(names []string, rounds map[string][]trial, unmeasured map[string]bool, notes []string) (rows, out []string) {
	rows, median := roundRows(names, rounds)
	off, ok := median[obsOff]
	if ok {
		for _, name := range names[1:] {
			v, ok := median[name]
			if !ok {
				continue
			}
			cost := (1 - v.RPS/off.RPS) * 100
			if unmeasured[name] {
				out = append(out, fmt.Sprintf("- %s: **not measured**, the endpoint did not answer (see below); the run differs from off by %.1f %% of requests/s, which is noise", name, cost))
				continue
			}
			out = append(out, fmt.Sprintf("- %s costs %.1f %% of the requests/s without it (goal: under %d %%): %s", name, cost, goalObservePct, met(cost < goalObservePct)))
		}
	}
	return rows, append(out, notes...)
}

// scrapeNotes says what the scrapes of each scraped run got; a missing endpoint is said, not
// hidden.
func scrapeNotes(scrapes map[string]*scrapeResult) []string {
	var notes []string
	for _, name := range slices.Sorted(maps.Keys(scrapes)) {
		notes = append(notes, fmt.Sprintf("- **%s**: %s", name, scrapes[name]))
	}
	return notes
}

// scraper GETs /metrics over a Unix socket at a fixed interval, as Prometheus would.
type scraper struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
	res    scrapeResult
}

// scrapeResult is what the scrapes of one run got.
type scrapeResult struct {
	ok, failed int
	bytes      int64
	firstErr   string // the first failure, or ""
}

func (r *scrapeResult) String() string {
	if r.ok == 0 {
		return fmt.Sprintf("**the admin socket's /metrics did not answer** (%d scrapes, first failure: %s): this run measured no scrape", r.failed, r.firstErr)
	}
	s := fmt.Sprintf("/metrics answered %d scrapes (%d bytes each on average)", r.ok, r.bytes/int64(r.ok))
	if r.failed > 0 {
		s += fmt.Sprintf(", %d failed (first: %s)", r.failed, r.firstErr)
	}
	return s
}

// startScraper scrapes sock once, then every interval until stop.
func startScraper(sock string, every time.Duration) *scraper {
	ctx, cancel := context.WithCancel(context.Background())
	sc := &scraper{cancel: cancel}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	sc.scrape(ctx, c) // the first before the load: whether the endpoint is there is known at once
	sc.done.Go(func() {
		defer c.CloseIdleConnections()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			sc.scrape(ctx, c)
		}
	})
	return sc
}

func (sc *scraper) scrape(ctx context.Context, c *http.Client) {
	fail := func(msg string) {
		sc.res.failed++
		if sc.res.firstErr == "" {
			sc.res.firstErr = msg
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://admin/metrics", nil)
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			fail(err.Error())
		}
		return
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	switch {
	case err != nil:
		fail(err.Error())
	case resp.StatusCode != http.StatusOK:
		fail(fmt.Sprintf("GET /metrics answered %s", resp.Status))
	default:
		sc.res.ok++
		sc.res.bytes += n
	}
}

// stop ends the scrapes and returns what they got.
func (sc *scraper) stop() *scrapeResult {
	sc.cancel()
	sc.done.Wait()
	return &sc.res
}

func (b *bench) obsReport(w *strings.Builder) {
	c, r := b.cfg, &b.res
	if len(r.obsRows)+len(r.obsNotes) == 0 {
		return
	}
	section(w, "## The access log and /metrics (askrd only, hello world)",
		fmt.Sprintf("askrd + examples/hello-worker.php, `--workers %d`, `wrk -t%d -c%d -d%s` on GET / after a %s warm-up, %d rounds with the order rotated; each row is that variant's median round. Every variant has an admin socket (`[admin] socket`); off: nothing else; access log: `[server] access_log` to a file (combined format); /metrics scraped: GET /metrics on the admin socket every second during the warm-up and the run, as Prometheus would. Goal (issue 15): each costs under %d %% of off's requests/s. The per-request record behind the access log and the metrics (httpfront's wrapper, metrics.Observe) is always on, so off includes it; its own cost is in the Go benchmarks BenchmarkObserve of internal/httpfront and internal/metrics.",
			c.workers, c.threads, c.conns, wrkDur(c.duration), wrkDur(c.warmup), c.obsRounds, goalObservePct),
		"| variant | rps | p50 | p99 | errors | rps of each round |", "|---|---:|---:|---:|---:|---|", r.obsRows, r.obsNotes)
}
