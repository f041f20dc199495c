package main

// The cow-refork scenario (issue 16): the memory of a CoW pool after a load, and the Blade page's
// latency, with `[worker] refork_after` and without.

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/askr-php/askr/internal/proc"
)

// reforkResult is one variant of the cow-refork scenario.
type reforkResult struct {
	reforked   bool   // the template pid changed and the old template exited
	templates  string // "pid" or "old → new"
	mem        memResult
	load       loadResult
	blade      trial // the wrk run on GET / after the memory was read
	settleTook time.Duration
	notes      []string
}

func (b *bench) cowRefork() error {
	if b.cowSkip("cow-refork") {
		return nil
	}
	c := b.cfg
	variants := []string{"off", "on"}
	rounds := map[string][]reforkResult{}
	var notes []string
	for r := 1; r <= c.reforkRounds; r++ {
		for i := range variants {
			v := variants[(i+r-1)%len(variants)]
			res, err := b.reforkVariant(fmt.Sprintf("refork-%s-r%d", v, r), v == "on")
			if err != nil {
				return err
			}
			rounds[v] = append(rounds[v], res)
			notes = append(notes, res.notes...)
		}
	}
	off, on := medianRefork(rounds["off"]), medianRefork(rounds["on"])
	b.res.reforkRows = []string{reforkRow("without refork", off, rounds["off"]), reforkRow(fmt.Sprintf("refork_after = [%d]", c.reforkAfter), on, rounds["on"])}
	b.res.reforkNotes = append(reforkNotes(off, on, c.reforkAfter), notes...)
	return nil
}

// medianRefork is the round whose Blade p50 is the median (the lower middle one of an even count).
func medianRefork(rounds []reforkResult) reforkResult {
	if len(rounds) == 0 {
		return reforkResult{}
	}
	s := slices.Clone(rounds)
	slices.SortStableFunc(s, func(a, b reforkResult) int { return cmp.Compare(a.blade.P50, b.blade.P50) })
	return s[(len(s)-1)/2]
}

// reforkVariant starts askrd --cow (refork: with refork_after = [-refork-after]), sends it
// -refork-requests GETs of the Blade page, waits for a refork to settle, reads the memory of its
// php-cgi processes, then measures the page's latency with wrk.
func (b *bench) reforkVariant(name string, refork bool) (reforkResult, error) {
	c := b.cfg
	var r reforkResult
	more := ""
	if refork {
		more = fmt.Sprintf("[worker]\nrefork_after = [%d]\n", c.reforkAfter)
	}
	conf, sock, err := b.deployConf(name, more)
	if err != nil {
		return r, err
	}
	s, err := b.startLaravel(name, "cow", "--workers", fmt.Sprint(c.memWorkers), "--config", conf)
	if err != nil {
		return r, err
	}
	defer b.stopAll()
	url, cookie, err := returningVisitor(name, s)
	if err != nil {
		return r, err
	}
	ac := adminClient(sock)
	defer ac.CloseIdleConnections()
	st0, err := readStatus(ac)
	if err != nil {
		return r, fmt.Errorf("%s: the admin socket %s: %w", name, sock, err)
	}
	logf("%s: %d GETs of / (%d connections, at most %v)", name, c.reforkRequests, c.memConns, c.memMax)
	before := snapshot(pids(s.procs()))
	if r.load, err = load(url, int64(c.reforkRequests), c.memConns, "Cookie: "+cookie, c.memMax); err != nil {
		return r, err
	}
	r.templates = fmt.Sprint(st0.TemplatePID)
	if refork {
		st, took := waitRefork(ac, st0.TemplatePID, 30*time.Second)
		r.settleTook = took
		r.reforked = st.TemplatePID > 0 && st.TemplatePID != st0.TemplatePID
		r.templates = fmt.Sprintf("%d → %d", st0.TemplatePID, st.TemplatePID)
		if why := reforkPending(st, st0.TemplatePID, proc.Alive(st0.TemplatePID)); why != "" {
			logf("%s: WARNING: 30 s after the load %s", name, why)
			r.notes = append(r.notes, fmt.Sprintf("- **%s**: 30 s after the load %s (template %s, rollout %q, worker generations %v); the PSS is of the processes then.", name, why, r.templates, st.rolloutState(), generations(st)))
		}
	}
	b.cowForeign(name, foreignPct(before, snapshot(pids(s.procs()))))
	if err := alive(s); err != nil {
		return r, err
	}
	if r.mem, err = memory(s.askrd.Pid()); err != nil {
		return r, fmt.Errorf("%s: %w", name, err)
	}
	logf("%s: %d requests in %.2fs (%d non-2xx/3xx, %d errors); php-cgi PSS %s in %d + %d processes", name, r.load.requests, r.load.seconds, r.load.non2xx, r.load.errors, mib(r.mem.total.pss), r.mem.templates, r.mem.workers)
	if r.load.requests < int64(c.reforkRequests) || r.load.non2xx+r.load.errors > 0 {
		r.notes = append(r.notes, fmt.Sprintf("- **%s**: the load got %d good answers of %d wanted (%d non-2xx/3xx, %d errors, %.2fs).", name, r.load.ok, c.reforkRequests, r.load.non2xx, r.load.errors, r.load.seconds))
	}
	blade, notes, err := b.measure(s, url, b.defaultLoad("-H", "Cookie: "+cookie))
	if err != nil {
		return r, err
	}
	r.blade = blade
	b.cowForeign(name+" / wrk", blade.Foreign)
	r.notes = append(r.notes, notes...)
	return r, nil
}

// waitRefork polls /status?full until a refork from template oldT has settled (reforkPending);
// it returns the last status and how long that took (notSeen if it did not within max).
func waitRefork(ac *http.Client, oldT int, max time.Duration) (adminStatus, time.Duration) {
	t0 := time.Now()
	var last adminStatus
	for ; time.Since(t0) < max; time.Sleep(50 * time.Millisecond) {
		st, err := readStatus(ac)
		if err != nil || st.Partial {
			continue
		}
		last = st
		if reforkPending(st, oldT, proc.Alive(oldT)) == "" {
			return st, time.Since(t0)
		}
	}
	return last, notSeen
}

// reforkPending says what of a refork from template oldT st does not show yet ("" if nothing): a
// new template, every worker of the newest generation, a rollout no longer rolling, and the old
// template exited (oldAlive: it still runs).
func reforkPending(st adminStatus, oldT int, oldAlive bool) string {
	switch {
	case st.TemplatePID <= 0 || st.TemplatePID == oldT:
		return "**no refork had happened** (the template is still the first)"
	case len(st.oldWorkers(st.maxGeneration()-1)) > 0 || st.rolloutState() == "rolling":
		return "**the refork's rollout had not finished**"
	case oldAlive:
		return fmt.Sprintf("**the old template %d had not exited**", oldT)
	}
	return ""
}

// generations lists the generation of each worker /status listed.
func generations(st adminStatus) []int64 {
	var out []int64
	for _, w := range st.Workers.List {
		out = append(out, w.Generation)
	}
	return out
}

// reforkRow is one variant's line of the refork table: its median round, and the Blade p50 and
// total PSS of every round.
func reforkRow(label string, r reforkResult, rounds []reforkResult) string {
	per := 0.0
	if r.mem.workers > 0 {
		per = float64(r.mem.workersMem.pss) / float64(r.mem.workers) / 1024
	}
	var each []string
	for _, x := range rounds {
		each = append(each, fmtMS(x.blade.P50)+" / "+mib(x.mem.total.pss))
	}
	return tableRow(label, r.templates, fmt.Sprintf("%d + %d", r.mem.templates, r.mem.workers), "**"+mib(r.mem.total.pss)+"**", mib(r.mem.template.pss),
		fmt.Sprintf("%.1f MiB", per), mib(r.mem.total.private), "**"+fmtMS(r.blade.P50)+"**", fmtMS(r.blade.P99), fmt0(r.blade.RPS), r.blade.errText(), strings.Join(each, ", "))
}

// reforkNotes compare the variants' memory and latency. There is no goal: refork is off by
// default, and issue 16 asks for a measurement before recommending it.
func reforkNotes(off, on reforkResult, n int) []string {
	pss := "n/a"
	if off.mem.total.pss > 0 {
		pss = fmt0(100 * float64(on.mem.total.pss) / float64(off.mem.total.pss))
	}
	none := ""
	if !on.reforked {
		none = "**No refork happened** (below), so this compares two runs without one: "
	}
	notes := []string{
		"- " + none + fmt.Sprintf("With refork_after = [%d], total PSS is **%s %%** of the PSS without refork (%s vs %s); the Blade page's p50 is **%sx** (%s vs %s), requests/s %sx.",
			n, pss, mib(on.mem.total.pss), mib(off.mem.total.pss), ratio(on.blade.P50, off.blade.P50), fmtMS(on.blade.P50), fmtMS(off.blade.P50), ratio(on.blade.RPS, off.blade.RPS)),
		"- No goal: refork is off by default and is recommended only where this measurement shows a gain (pitchfork reports about 30 % less memory and 9 % lower latency on Shopify's monolith; a small example app has less heap for the first requests to warm).",
	}
	if on.reforked && on.settleTook != notSeen {
		notes = append(notes, fmt.Sprintf("- The refork had settled %s after the load (a new template, every worker of the new generation, the old template exited).", secs(on.settleTook)))
	}
	return notes
}

func (b *bench) reforkReport(w *strings.Builder) {
	c, r := b.cfg, &b.res
	if len(r.reforkRows) == 0 {
		return
	}
	section(w, fmt.Sprintf("### Refork (`--cow --workers %d`, %d requests, refork_after = [%d], %d rounds)", c.memWorkers, c.reforkRequests, c.reforkAfter, c.reforkRounds),
		fmt.Sprintf("In each round, with and without refork in turn (the order alternates), a fresh askrd gets %d GETs of the Laravel \"/\" page (Blade, returning visitor's session) over %d keep-alive connections; with refork, then until /status?full shows a new template, the old one exited and every worker of the new generation; then the PSS of every php-cgi process below askrd (templates + workers, /proc/PID/smaps_rollup), then `wrk -t%d -c%d -d%s --latency` on the same page after a %s warm-up for its latency; each row is the variant's median round by Blade p50. refork_after = [%d]: about %d requests reach each worker, so a worker reaches %d early in the load, after the first requests have compiled the Blade view and built the services they use, and the next generation serves the rest.",
			c.reforkRequests, c.memConns, c.threads, c.conns, wrkDur(c.duration), wrkDur(c.warmup), c.reforkAfter, c.reforkRequests/max(c.memWorkers, 1), c.reforkAfter),
		"| variant | template pid | php-cgi (templates + workers) | total PSS | template PSS | PSS per worker | private | Blade p50 | Blade p99 | rps | errors | p50 / PSS of each round |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
		r.reforkRows, r.reforkNotes)
}
