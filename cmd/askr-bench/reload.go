package main

// The cow-reload scenario (issue 16): requests/s, p99 and failed requests while `askrd reload`
// replaces a CoW pool's template and workers under load, against the steady state before it, and
// how long the old generation takes to go.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/askr-php/askr/internal/proc"
)

// goalReloadFailed: a reload under load fails no request (issue 16).
const goalReloadFailed = 0

// reloadRun is one `askrd reload` under load. Times are since the reload began; notSeen when the
// bench did not see it within -reload-max.
type reloadRun struct {
	from         time.Duration // when it began, since the load began
	cmdTook      time.Duration // until `askrd reload` returned
	cmdErr       string        // its exit status and output when it failed
	oldGone      time.Duration // until no worker of the old generation was left
	templateGone time.Duration // until the old template had exited
	watched      time.Duration // until the bench stopped watching
	fromGen      int64
	toGen        int64
	rollout      string // /status's rollout state at the end ("" if none)
	stats        windowStats
}

const notSeen = time.Duration(-1)

// deployConf writes an askr.toml with an admin socket (and more, e.g. a [worker] table) to
// tmp/name and returns its path and the socket's.
func (b *bench) deployConf(name, more string) (conf, sock string, err error) {
	dir := filepath.Join(b.tmp, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	sock = filepath.Join(dir, "admin.sock")
	conf = filepath.Join(dir, "askr.toml")
	text := fmt.Sprintf("[admin]\nsocket = %q\n\n%s", sock, more)
	return conf, sock, os.WriteFile(conf, []byte(text), 0o644)
}

func (b *bench) cowReload() error {
	if b.cowSkip("cow-reload") {
		return nil
	}
	c := b.cfg
	name := "reload-cow"
	conf, sock, err := b.deployConf(name, "")
	if err != nil {
		return err
	}
	s, err := b.startLaravel(name, "cow", "--workers", fmt.Sprint(c.reloadWorkers), "--config", conf)
	if err != nil {
		return err
	}
	url, cookie, err := returningVisitor(name, s)
	if err != nil {
		return err
	}
	ac := adminClient(sock)
	defer ac.CloseIdleConnections()
	if _, err := readStatus(ac); err != nil {
		return fmt.Errorf("%s: the admin socket %s: %w", name, sock, err)
	}
	maxDur := c.warmup + c.reloadSteady + time.Duration(c.reloadN)*(c.reloadMax+c.reloadSettle) + c.reloadSettle
	logf("%s: %d connections on GET / for %s warm-up + %s steady, then %d x askrd reload (each followed by %s)", name, c.reloadConns, wrkDur(c.warmup), wrkDur(c.reloadSteady), c.reloadN, wrkDur(c.reloadSettle))
	before := snapshot(pids(s.procs()))
	l, err := startTimedLoad(url, "Cookie: "+cookie, c.reloadConns, maxDur)
	if err != nil {
		return err
	}
	time.Sleep(c.warmup + c.reloadSteady)
	var runs []reloadRun
	for i := 1; i <= c.reloadN; i++ {
		r := b.reloadOnce(ac, sock, l.since())
		logf("%s: reload %d: askrd reload returned after %s%s; last old worker gone after %s, old template exited after %s; generation %d -> %d; rollout %q",
			name, i, secs(r.cmdTook), errSuffix(r.cmdErr), secs(r.oldGone), secs(r.templateGone), r.fromGen, r.toGen, r.rollout)
		runs = append(runs, r)
		if r.cmdErr != "" {
			break // the next would fail the same way
		}
		time.Sleep(c.reloadSettle)
	}
	samples := l.end()
	b.cowForeign(name, foreignPct(before, snapshot(pids(s.procs()))))
	if err := alive(s); err != nil {
		return err
	}
	steady := window(samples, c.warmup, c.warmup+c.reloadSteady)
	for i := range runs {
		runs[i].stats = window(samples, runs[i].from, runs[i].from+runs[i].window())
	}
	b.res.reloadRows, b.res.reloadNotes = reloadSummary(steady, c.reloadSteady, runs, len(samples), failedIn(samples))
	b.res.reloadNotes = append(b.res.reloadNotes, problemNotes(s)...)
	return nil
}

// window is the reload's measured window: until the last old worker was gone, or when that was
// not seen until askrd reload returned, or until the bench stopped watching.
func (r reloadRun) window() time.Duration {
	switch {
	case r.oldGone != notSeen:
		return r.oldGone
	case r.cmdTook != notSeen:
		return r.cmdTook
	}
	return r.watched
}

// reloadOnce runs `askrd reload` on the admin socket and polls /status?full until the workers of
// the generation before it and its template have gone (or -reload-max has passed).
func (b *bench) reloadOnce(ac *http.Client, sock string, from time.Duration) reloadRun {
	r := reloadRun{from: from, cmdTook: notSeen, oldGone: notSeen, templateGone: notSeen}
	st0, err := readStatus(ac)
	if err != nil {
		r.cmdErr = "GET /status?full before the reload: " + err.Error()
		return r
	}
	r.fromGen, r.toGen = st0.maxGeneration(), st0.maxGeneration()
	oldT, oldPids := st0.TemplatePID, st0.oldWorkers(r.fromGen)
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.reloadMax)
	defer cancel()
	type cmdResult struct {
		took time.Duration
		err  string
	}
	done := make(chan cmdResult, 1)
	go func() {
		out, err := exec.CommandContext(ctx, b.cfg.askrd, "reload", "--socket", sock).CombinedOutput()
		res := cmdResult{took: time.Since(t0)}
		if err != nil {
			res.err = fmt.Sprintf("%v: %s", err, strings.TrimSpace(string(out)))
		}
		done <- res
	}()
	for cmdDone := false; time.Since(t0) < b.cfg.reloadMax; time.Sleep(20 * time.Millisecond) {
		select {
		case res := <-done:
			cmdDone, r.cmdTook, r.cmdErr = true, res.took, res.err
		default:
		}
		st, err := readStatus(ac)
		if err != nil || st.Partial {
			continue
		}
		r.toGen, r.rollout = st.maxGeneration(), st.rolloutState()
		if r.oldGone == notSeen && len(st.Workers.List) > 0 && len(st.oldWorkers(r.fromGen)) == 0 && !slices.ContainsFunc(oldPids, proc.Alive) {
			r.oldGone = time.Since(t0)
		}
		if r.templateGone == notSeen && oldT > 0 && st.TemplatePID != oldT && !proc.Alive(oldT) {
			r.templateGone = time.Since(t0)
		}
		finished := r.oldGone != notSeen && (r.templateGone != notSeen || oldT == 0)
		if cmdDone && (finished || r.cmdErr != "") {
			break
		}
	}
	r.watched = time.Since(t0)
	return r
}

// reloadSummary is the cow-reload table (the steady state, then each reload's window) and its
// notes: the reloads' requests/s and p99 against the steady state's, and the failed requests of
// the whole run (total requests, failed ones) against the goal.
func reloadSummary(steady windowStats, steadyLen time.Duration, runs []reloadRun, total, failed int) (rows, notes []string) {
	rows = append(rows, tableRow("steady state", secs(steadyLen), fmt0(steady.rps), fmtMS(steady.p50), fmtMS(steady.p99), fmt.Sprint(steady.failed), "-", "-", "-"))
	var rps, p99 []float64
	for i, r := range runs {
		label := fmt.Sprintf("reload %d (generation %d → %d)", i+1, r.fromGen, r.toGen)
		if r.cmdErr != "" {
			notes = append(notes, fmt.Sprintf("- **reload %d**: `askrd reload` failed (%s): not measured.", i+1, r.cmdErr))
			rows = append(rows, tableRow(label, "-", "-", "-", "-", fmt.Sprint(r.stats.failed), "failed", secs(r.oldGone), secs(r.templateGone)))
			continue
		}
		rows = append(rows, tableRow(label, secs(r.window()), fmt0(r.stats.rps), fmtMS(r.stats.p50), fmtMS(r.stats.p99), fmt.Sprint(r.stats.failed),
			secs(r.cmdTook), secs(r.oldGone), secs(r.templateGone)))
		rps, p99 = append(rps, r.stats.rps), append(p99, r.stats.p99)
		if r.rollout != "" && r.rollout != "ok" {
			notes = append(notes, fmt.Sprintf("- **reload %d**: /status's rollout ended %q, not \"ok\".", i+1, r.rollout))
		}
		if r.oldGone == notSeen || r.templateGone == notSeen {
			notes = append(notes, fmt.Sprintf("- **reload %d**: the old generation had not gone when the bench stopped watching (workers: %s, template: %s; rollout %q).", i+1, secs(r.oldGone), secs(r.templateGone), r.rollout))
		}
	}
	if len(rps) > 0 {
		notes = append(notes, fmt.Sprintf("- During the reloads: **%s %%** of the steady state's requests/s (mean over the reloads), p99 **%sx** the steady state's (the worst reload's).",
			fmt0(100*mean(rps)/steady.rps), ratio(slices.Max(p99), steady.p99)))
	}
	notes = append(notes, fmt.Sprintf("- Goal: %d failed requests over the whole run (%d requests, warm-up, steady state, reloads and the pauses after them): %s (%d failed, %d of %d reloads measured).",
		goalReloadFailed, total, met(failed == goalReloadFailed && len(rps) == len(runs) && len(runs) > 0), failed, len(rps), len(runs)))
	return rows, notes
}

// secs formats a duration in seconds with 2 decimals; notSeen is "not seen".
func secs(d time.Duration) string {
	if d == notSeen {
		return "not seen"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " (failed: " + e + ")"
}

func (b *bench) reloadReport(w *strings.Builder) {
	c, r := b.cfg, &b.res
	if len(r.reloadRows) == 0 {
		return
	}
	section(w, fmt.Sprintf("### Reload under load (`--cow --workers %d`, reloads: %d)", c.reloadWorkers, c.reloadN),
		fmt.Sprintf("%d keep-alive connections send GET / (Blade, returning visitor's session) back to back: a %s warm-up, %s of steady state, then `askrd reload --socket …` (through the admin socket; the code on disk unchanged, so the new template boots the same files; `[reload] canary` off, the default: the canary must boot and answer, then the old workers are replaced one at a time), %d times, each followed by %s of load. A reload's window runs from `askrd reload` until /status?full (polled every 20 ms) lists no worker of the generation before it and none of its pids runs; the old template's exit is timed the same way. A window's figures are those of the requests sent in it (requests/s: their count over its length). Failed: a non-2xx/3xx answer or no answer (cmd/askr-bench reload.go).",
			c.reloadConns, wrkDur(c.warmup), wrkDur(c.reloadSteady), c.reloadN, wrkDur(c.reloadSettle)),
		"| window | length | rps | p50 | p99 | failed | `askrd reload` returned | last old worker gone | old template exited |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
		r.reloadRows, r.reloadNotes)
}
