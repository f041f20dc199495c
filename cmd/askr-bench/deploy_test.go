package main

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWindow cuts a window out of a timed load: only the requests sent in [from, to) count, rps
// is over the window's length, failed ones are counted and kept in the latencies.
func TestWindow(t *testing.T) {
	s := time.Second
	ms := time.Millisecond
	samples := []sample{
		{at: 0, took: 100 * ms},
		{at: s, took: 1 * ms}, {at: s + 100*ms, took: 2 * ms}, {at: s + 200*ms, took: 3 * ms, failed: true}, {at: 2*s + 900*ms, took: 4 * ms},
		{at: 3 * s, took: 500 * ms, failed: true},
	}
	got := window(samples, s, 3*s)
	if got.requests != 4 || got.failed != 1 || got.rps != 2 || got.p50 != 2 || got.p99 != 4 {
		t.Errorf("window(1s, 3s) = %+v; want 4 requests, 1 failed, 2 rps, p50 2 ms, p99 4 ms", got)
	}
	if got := window(samples, 5*s, 6*s); got.requests != 0 || got.rps != 0 || !math.IsNaN(got.p50) {
		t.Errorf("window(5s, 6s) = %+v; want no requests, 0 rps, p50 NaN", got)
	}
	if got := window(samples, s, s); got.rps != 0 {
		t.Errorf("window(1s, 1s).rps = %v; want 0 (an empty window)", got.rps)
	}
	if n := failedIn(samples); n != 2 {
		t.Errorf("failedIn = %d; want 2", n)
	}
}

// TestAdminStatus reads /status?full as askrd writes it, with and without issue 16's rollout.
func TestAdminStatus(t *testing.T) {
	body := `{"mode":"cow","generation":2,"template_pid":300,"workers":{"total":3,"idle":3,"busy":0,"list":[
		{"pid":301,"generation":1,"requests":9},{"pid":302,"generation":2,"requests":1},{"pid":303,"generation":3,"requests":0}]},
		"rollout":{"state":"rolling","cause":"reload","from":2,"to":3}}`
	var st adminStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("Unmarshal(status) error = %v", err)
	}
	if st.TemplatePID != 300 || st.maxGeneration() != 3 || st.rolloutState() != "rolling" {
		t.Errorf("status = template %d, newest generation %d, rollout %q; want 300, 3, rolling", st.TemplatePID, st.maxGeneration(), st.rolloutState())
	}
	if got := st.oldWorkers(2); !slices.Equal(got, []int{301, 302}) {
		t.Errorf("oldWorkers(2) = %v; want [301 302]", got)
	}
	if got := generations(st); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Errorf("generations = %v; want [1 2 3]", got)
	}
	var old adminStatus
	if err := json.Unmarshal([]byte(`{"generation":1,"workers":{"total":0}}`), &old); err != nil || old.rolloutState() != "" || old.maxGeneration() != 1 {
		t.Errorf("status without rollout and workers = %+v, %v; want rollout \"\", generation 1", old, err)
	}
}

// TestReloadSummary: the steady row, a row per reload, the throughput and p99 during the reloads
// against the steady state, and the failed-requests goal (not met when a reload failed).
func TestReloadSummary(t *testing.T) {
	steady := windowStats{requests: 1000, rps: 100, p50: 10, p99: 20}
	runs := []reloadRun{
		{fromGen: 1, toGen: 2, cmdTook: 1500 * time.Millisecond, oldGone: 2 * time.Second, templateGone: 2100 * time.Millisecond, stats: windowStats{rps: 80, p50: 12, p99: 40}},
		{fromGen: 2, toGen: 3, cmdTook: time.Second, oldGone: 3 * time.Second, templateGone: notSeen, rollout: "inconclusive", stats: windowStats{rps: 60, p50: 15, p99: 50, failed: 1}},
	}
	rows, notes := reloadSummary(steady, 10*time.Second, runs, 5000, 1)
	wantRows := []string{
		"| steady state | 10.00 s | 100 | 10.0 ms | 20.0 ms | 0 | - | - | - |",
		"| reload 1 (generation 1 → 2) | 2.00 s | 80 | 12.0 ms | 40.0 ms | 0 | 1.50 s | 2.00 s | 2.10 s |",
		"| reload 2 (generation 2 → 3) | 3.00 s | 60 | 15.0 ms | 50.0 ms | 1 | 1.00 s | 3.00 s | not seen |",
	}
	if !slices.Equal(rows, wantRows) {
		t.Errorf("reloadSummary rows =\n%s\nwant\n%s", strings.Join(rows, "\n"), strings.Join(wantRows, "\n"))
	}
	wantNotes := []string{
		"- **reload 2**: /status's rollout ended \"inconclusive\", not \"ok\".",
		"- **reload 2**: the old generation had not gone when the bench stopped watching (workers: 3.00 s, template: not seen; rollout \"inconclusive\").",
		"- During the reloads: **70 %** of the steady state's requests/s (mean over the reloads), p99 **2.50x** the steady state's (the worst reload's).",
		"- Goal: 0 failed requests over the whole run (5000 requests, warm-up, steady state, reloads and the pauses after them): **not met** (1 failed, 2 of 2 reloads measured).",
	}
	if !slices.Equal(notes, wantNotes) {
		t.Errorf("reloadSummary notes =\n%s\nwant\n%s", strings.Join(notes, "\n"), strings.Join(wantNotes, "\n"))
	}
	failed := []reloadRun{{fromGen: 1, toGen: 1, cmdErr: "exit status 1: askrd reload: reload is not available in CoW mode", oldGone: notSeen, templateGone: notSeen}}
	rows, notes = reloadSummary(steady, 10*time.Second, failed, 3000, 0)
	if len(rows) != 2 || !strings.Contains(rows[1], "| failed |") || !strings.Contains(notes[0], "`askrd reload` failed (exit status 1") ||
		!strings.Contains(notes[len(notes)-1], "**not met** (0 failed, 0 of 1 reloads measured)") {
		t.Errorf("reloadSummary(a failed reload) = %q, %q; want the failure said and the goal not met", rows, notes)
	}
	_, notes = reloadSummary(steady, 10*time.Second, runs[:1], 5000, 0)
	if !strings.HasSuffix(notes[len(notes)-1], ": met (0 failed, 1 of 1 reloads measured).") {
		t.Errorf("reloadSummary(one good reload, none failed) goal = %q; want met", notes[len(notes)-1])
	}
}

// TestReforkTable: a variant's row and the comparison of the two, without a goal.
func TestReforkTable(t *testing.T) {
	off := reforkResult{templates: "100", mem: memResult{templates: 1, workers: 9, total: rollup{pss: 65536, private: 36864}, template: rollup{pss: 24576}, workersMem: rollup{pss: 40960}},
		blade: trial{wrkResult: wrkResult{RPS: 1500, P50: 20, P99: 30}}}
	on := reforkResult{reforked: true, templates: "100 → 205", settleTook: 1200 * time.Millisecond, mem: memResult{templates: 1, workers: 9, total: rollup{pss: 49152}},
		blade: trial{wrkResult: wrkResult{RPS: 1600, P50: 18, P99: 28}}}
	if got, want := reforkRow("without refork", off, []reforkResult{off, on}), "| without refork | 100 | 1 + 9 | **64.0 MiB** | 24.0 MiB | 4.4 MiB | 36.0 MiB | **20.0 ms** | 30.0 ms | 1500 | 0 | 20.0 ms / 64.0 MiB, 18.0 ms / 48.0 MiB |"; got != want {
		t.Errorf("reforkRow =\n%s\nwant\n%s", got, want)
	}
	notes := reforkNotes(off, on, 100)
	if len(notes) != 3 || notes[0] != "- With refork_after = [100], total PSS is **75 %** of the PSS without refork (48.0 MiB vs 64.0 MiB); the Blade page's p50 is **0.90x** (18.0 ms vs 20.0 ms), requests/s 1.07x." ||
		!strings.HasPrefix(notes[1], "- No goal") || !strings.Contains(notes[2], "settled 1.20 s after the load") {
		t.Errorf("reforkNotes =\n%s", strings.Join(notes, "\n"))
	}
	if notes := reforkNotes(reforkResult{}, reforkResult{}, 100); len(notes) != 2 || !strings.HasPrefix(notes[0], "- **No refork happened**") || !strings.Contains(notes[0], "**n/a %**") {
		t.Errorf("reforkNotes(nothing measured) = %q; want no refork said, n/a and no settle note", notes)
	}
}

// TestReforkPending names what a refork has not done yet, in order.
func TestReforkPending(t *testing.T) {
	status := func(tmpl int, rollout string, gens ...int64) adminStatus {
		var st adminStatus
		st.TemplatePID, st.Rollout = tmpl, map[string]any{"state": rollout}
		for i, g := range gens {
			st.Workers.List = append(st.Workers.List, statusWorker{PID: 1000 + i, Generation: g})
		}
		return st
	}
	for _, c := range []struct {
		st       adminStatus
		oldAlive bool
		want     string
	}{
		{status(100, "idle", 1, 1), true, "no refork had happened"},
		{status(200, "rolling", 1, 2), true, "rollout had not finished"},
		{status(200, "rolling", 2, 2), true, "rollout had not finished"},
		{status(200, "ok", 2, 2), true, "the old template 100 had not exited"},
		{status(200, "ok", 2, 2), false, ""},
	} {
		got := reforkPending(c.st, 100, c.oldAlive)
		if c.want == "" && got != "" || !strings.Contains(got, c.want) {
			t.Errorf("reforkPending(template %d, %q, %v, old alive %v) = %q; want %q", c.st.TemplatePID, c.st.rolloutState(), generations(c.st), c.oldAlive, got, c.want)
		}
	}
}

// TestMedianRefork picks the round with the median Blade p50, the lower middle one of an even
// count, and nothing of none.
func TestMedianRefork(t *testing.T) {
	round := func(p50 float64) reforkResult { return reforkResult{blade: trial{wrkResult: wrkResult{P50: p50}}} }
	for _, c := range []struct {
		p50s []float64
		want float64
	}{{[]float64{30, 10, 20}, 20}, {[]float64{40, 10}, 10}, {[]float64{7}, 7}, {nil, 0}} {
		var rs []reforkResult
		for _, p := range c.p50s {
			rs = append(rs, round(p))
		}
		if got := medianRefork(rs).blade.P50; got != c.want {
			t.Errorf("medianRefork(p50s %v) = the round with p50 %v; want %v", c.p50s, got, c.want)
		}
	}
}

func TestSecs(t *testing.T) {
	if got := secs(1234 * time.Millisecond); got != "1.23 s" {
		t.Errorf("secs(1.234s) = %q; want 1.23 s", got)
	}
	if got := secs(notSeen); got != "not seen" {
		t.Errorf("secs(notSeen) = %q; want not seen", got)
	}
}
