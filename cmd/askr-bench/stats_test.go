package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

const wrkOK = `Running 10s test @ http://127.0.0.1:21405/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    13.51ms   20.47ms 140.79ms   92.40%
    Req/Sec     1.91k     1.09k    5.57k    73.68%
  Latency Distribution
     50%  812.00us
     75%   12.43ms
     90%   25.46ms
     99%    1.02s
  147457 requests in 10.00s, 1.27MB read
Requests/sec:  14745.50
Transfer/sec:    623.78KB
`

const wrkErrors = `Running 10s test @ http://127.0.0.1:1/
  Latency Distribution
     50%  152.00ms
     99%    1.50m
  512 requests in 10.01s, 26.10MB read
  Socket errors: connect 0, read 2, write 1, timeout 5
  Non-2xx or 3xx responses: 7
Requests/sec:     51.15
`

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name, out string
		want      wrkResult
	}{
		{"clean", wrkOK, wrkResult{RPS: 14745.5, P50: 0.812, P99: 1020, Requests: 147457, Read: 1.27 * (1 << 20)}},
		{"errors", wrkErrors, wrkResult{RPS: 51.15, P50: 152, P99: 90000, Non2xx: 7, Sock: 8, Requests: 512, Read: 26.10 * (1 << 20)}},
		{"empty", "", wrkResult{}},
	}
	for _, tt := range tests {
		got := parseWrk(tt.out)
		if math.Abs(got.P50-tt.want.P50) > 1e-9 || math.Abs(got.P99-tt.want.P99) > 1e-9 {
			t.Errorf("parseWrk(%s) latencies = %v, %v; want %v, %v", tt.name, got.P50, got.P99, tt.want.P50, tt.want.P99)
		}
		got.P50, got.P99, tt.want.P50, tt.want.P99 = 0, 0, 0, 0
		if got != tt.want {
			t.Errorf("parseWrk(%s) = %+v; want %+v", tt.name, got, tt.want)
		}
	}
}

func TestWrkBytes(t *testing.T) {
	for in, want := range map[string]float64{"512.00B": 512, "623.78KB": 623.78 * 1024, "1.27MB": 1.27 * (1 << 20), "2.00GB": 2 << 30, "": 0} {
		if got := wrkBytes(in); math.Abs(got-want) > 1e-6 {
			t.Errorf("wrkBytes(%q) = %v; want %v", in, got, want)
		}
	}
}

func TestFormats(t *testing.T) {
	tests := []struct{ got, want string }{
		{fmtMS(2.104), "2.10 ms"},
		{fmtMS(9.999), "10.00 ms"},
		{fmtMS(19.54), "19.5 ms"},
		{fmtMS(99.94), "99.9 ms"},
		{fmtMS(152.4), "152 ms"},
		{fmt0(14745.5), "14746"},
		{fmt0(1605.2), "1605"},
		{ratio(14745, 11280), "1.31"},
		{ratio(1, 0), "n/a"},
		{ratio(math.NaN(), 2), "n/a"},
		{costPct(1446, 1465), "1.3"},
		{costPct(1358, 1446), "6.1"},
		{mib(62976), "61.5 MiB"},
		{wrkDur(10 * time.Second), "10s"},
		{wrkDur(2 * time.Minute), "2m"},
		{wrkDur(90 * time.Second), "90s"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q; want %q", i, tt.got, tt.want)
		}
	}
}

func TestPct(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tests := []struct {
		p    float64
		want float64
	}{{0, 1}, {50, 5}, {99, 10}, {100, 10}, {10, 1}, {11, 2}}
	for _, tt := range tests {
		if got := pct(v, tt.p); got != tt.want {
			t.Errorf("pct(1..10, %v) = %v; want %v", tt.p, got, tt.want)
		}
	}
	if got := pct(nil, 50); !math.IsNaN(got) {
		t.Errorf("pct(nil, 50) = %v; want NaN", got)
	}
	if got := mean([]float64{1, 2, 6}); got != 3 {
		t.Errorf("mean(1, 2, 6) = %v; want 3", got)
	}
}

func TestMedianRun(t *testing.T) {
	r := func(name string, rps float64) trial { return trial{Name: name, wrkResult: wrkResult{RPS: rps}} }
	tests := []struct {
		name string
		runs []trial
		want string
	}{
		{"one", []trial{r("r1", 5)}, "r1"},
		{"odd", []trial{r("r1", 11460), r("r2", 11535), r("r3", 11595)}, "r2"},
		{"unsorted", []trial{r("r1", 1520), r("r2", 1465), r("r3", 1239)}, "r2"},
		{"even: the lower", []trial{r("r1", 4), r("r2", 1), r("r3", 3), r("r4", 2)}, "r4"},
		{"ties keep the order", []trial{r("r1", 7), r("r2", 7), r("r3", 7)}, "r2"},
	}
	for _, tt := range tests {
		if got := medianRun(tt.runs).Name; got != tt.want {
			t.Errorf("medianRun(%s) = %s; want %s", tt.name, got, tt.want)
		}
	}
}

func TestRoundsSummary(t *testing.T) {
	r := func(rps, p50 float64, foreign, non2xx int, exited bool) trial {
		return trial{wrkResult: wrkResult{RPS: rps, P50: p50, Non2xx: non2xx}, Foreign: foreign, Exited: exited, RSS: "86"}
	}
	tests := []struct {
		name     string
		rounds   []trial
		wantRow  row
		wantList string
	}{
		{"undisturbed", []trial{r(53, 1, 0, 0, false), r(51, 2, 0, 0, false), r(47, 3, 0, 0, false)},
			row{RPS: 51, P50: 2, RSS: "86", Errs: "0"}, "53, 51, 47"},
		{"a disturbed round is left out", []trial{r(100, 1, 0, 0, false), r(10, 2, 12, 0, false), r(90, 3, 0, 0, false)},
			row{RPS: 90, P50: 3, RSS: "86", Errs: "0"}, "100, 10 (disturbed: 12%, left out), 90"},
		{"all disturbed: all count", []trial{r(100, 1, 20, 0, false), r(10, 2, 12, 0, false), r(90, 3, 11, 0, false)},
			row{RPS: 90, P50: 3, RSS: "86", Errs: "0"}, "100 (disturbed: 20%), 10 (disturbed: 12%), 90 (disturbed: 11%)"},
		{"errors summed over all rounds", []trial{r(5, 1, 0, 2, false), r(6, 1, 0, 3, true)},
			row{RPS: 5, P50: 1, RSS: "86", Errs: "5; server exited during a run"}, "5, 6"},
	}
	for _, tt := range tests {
		gotRow, gotList := roundsSummary(tt.rounds)
		if gotRow != tt.wantRow || gotList != tt.wantList {
			t.Errorf("roundsSummary(%s) = %+v, %q; want %+v, %q", tt.name, gotRow, gotList, tt.wantRow, tt.wantList)
		}
	}
}

func TestErrText(t *testing.T) {
	tests := []struct {
		r    trial
		want string
	}{
		{trial{}, "0"},
		{trial{wrkResult: wrkResult{Non2xx: 3, Sock: 2}}, "5 (3 non-2xx/3xx, 2 socket)"},
		{trial{Exited: true}, "0; server exited during the run"},
	}
	for _, tt := range tests {
		if got := tt.r.errText(); got != tt.want {
			t.Errorf("errText(%+v) = %q; want %q", tt.r, got, tt.want)
		}
	}
}

func TestRatioNote(t *testing.T) {
	a := row{RPS: 11535, P50: 2.62, P99: 5.78, RSS: "86", Errs: "0"}
	f := row{RPS: 10319, P50: 3.00, P99: 4.68, RSS: "84", Errs: "0"}
	slow := row{RPS: 51, P50: 152, P99: 231, RSS: "126", Errs: "0"}
	fast := row{RPS: 53, P50: 148, P99: 197, RSS: "128", Errs: "0"}
	withErrs := a
	withErrs.Errs = "3"
	tests := []struct {
		name string
		s    string
		a, f row
		goal bool
		want string
	}{
		{"no goal", "hello", a, f, false,
			"- **hello** askr/php-fpm: throughput 1.12x, p50 latency 0.87x, p99 latency 1.24x (RSS after the run: askrd + workers 86 MiB, nginx + php-fpm 84 MiB)"},
		{"goal met", "classic-hello", a, f, true,
			"- **classic-hello** askr/php-fpm: throughput 1.12x, p50 latency 0.87x, p99 latency 1.24x (RSS after the run: askrd + workers 86 MiB, nginx + php-fpm 84 MiB); goal: at least equal to php-fpm (throughput >= 1.00x, no errors): met"},
		{"goal not met", "classic-wordpress", slow, fast, true,
			"- **classic-wordpress** askr/php-fpm: throughput 0.96x, p50 latency 1.03x, p99 latency 1.17x (RSS after the run: askrd + workers 126 MiB, nginx + php-fpm 128 MiB); goal: at least equal to php-fpm (throughput >= 1.00x, no errors): **not met**"},
		{"errors fail the goal", "x", withErrs, f, true,
			"- **x** askr/php-fpm: throughput 1.12x, p50 latency 0.87x, p99 latency 1.24x (RSS after the run: askrd + workers 86 MiB, nginx + php-fpm 84 MiB); goal: at least equal to php-fpm (throughput >= 1.00x, no errors): **not met** (errors: askrd 3, php-fpm 0)"},
		{"no baseline", "x", a, row{RSS: "1", Errs: "0"}, false,
			"- **x** askr/php-fpm: throughput n/a, p50 latency n/a, p99 latency n/a (RSS after the run: askrd + workers 86 MiB, nginx + php-fpm 1 MiB)"},
	}
	for _, tt := range tests {
		if got := ratioNote(tt.s, tt.a, tt.f, tt.goal); got != tt.want {
			t.Errorf("ratioNote(%s) =\n%s\nwant\n%s", tt.name, got, tt.want)
		}
	}
}

func TestTableRows(t *testing.T) {
	tests := []struct{ got, want string }{
		{scenarioRow("hello", labelAskrd, row{RPS: 14745.4, P50: 2.1, P99: 3.76, Errs: "0"}), "| hello | askrd | 14745 | 2.10 ms | 3.76 ms | 0 |"},
		{scenarioRow("laravel", labelFPM, row{RPS: 440, P50: 70.8, P99: 93.5, Errs: "2 (2 non-2xx/3xx, 0 socket)"}),
			"| laravel | nginx + php-fpm | 440 | 70.8 ms | 93.5 ms | 2 (2 non-2xx/3xx, 0 socket) |"},
		{slowRow("cow", slowResult{base: pingStats{p50: 0.41, p99: 0.77}, slow: pingStats{p50: 0.39, p99: 0.85, max: 2.96}, readers: 8, heads: 8}, 4),
			"| askrd --cow | 0.41 ms | 0.77 ms | 0.39 ms | 0.85 ms | 2.96 ms | 8/8 | 0 | 4% | met |"},
		{slowRow("per-request", slowResult{slow: pingStats{p99: 51, failed: 0}, readers: 8, heads: 7}, 0),
			"| askrd per-request mode | 0.00 ms | 0.00 ms | 0.00 ms | 51.0 ms | 0.00 ms | 7/8 | 0 | 0% | **not met** |"},
		{slowRow("normal", slowResult{slow: pingStats{p99: math.NaN(), failed: 200}, readers: 8}, 0),
			"| askrd (worker mode) | 0.00 ms | 0.00 ms | 0.00 ms | NaN ms | 0.00 ms | 0/8 | 200 | 0% | **not met** |"},
		{memRow("cow", memResult{templates: 1, workers: 8, total: rollup{rss: 295322, pss: 62976, private: 34304},
			template: rollup{pss: 23757}, workersMem: rollup{pss: 35226}, askrdRSS: 15155}, loadResult{requests: 8000, seconds: 6.213}),
			"| askrd --cow (CoW template) | 1 + 8 | **61.5 MiB** | 23.2 MiB | 4.3 MiB | 288.4 MiB | 33.5 MiB | 14.8 MiB | 8000 in 6.21 s |"},
		{memRow("normal", memResult{workers: 8, total: rollup{pss: 219443}}, loadResult{requests: 8000, seconds: 7.04}),
			"| askrd (normal worker mode) | 0 + 8 | **214.3 MiB** | - | 0.0 MiB | 0.0 MiB | 0.0 MiB | 0.0 MiB | 8000 in 7.04 s |"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d:\n got %s\nwant %s", i, tt.got, tt.want)
		}
	}
}

func TestLWSummary(t *testing.T) {
	r := func(rps float64) trial { return trial{wrkResult: wrkResult{RPS: rps, P50: 21.2, P99: 31.4}} }
	rows, notes := lwSummary([]string{"before", "generic", "paranoid"}, map[string][]trial{
		"before":   {r(1520), r(1465), r(1239)},
		"generic":  {r(1598), r(1446), r(1445)},
		"paranoid": {r(1358), r(1459), r(1320)},
	})
	want := []string{
		"| before | 1465 | 21.2 ms | 31.4 ms | 0 | 1520 1465 1239 |",
		"| generic | 1446 | 21.2 ms | 31.4 ms | 0 | 1598 1446 1445 |",
		"| paranoid | 1358 | 21.2 ms | 31.4 ms | 0 | 1358 1459 1320 |",
		"- the generic worker's resets cost 1.3 % of the requests/s of the example's earlier worker (goal: under 5 %): met",
		"- the state-bleed detector (`--paranoid`) costs 6.1 % of the generic worker's requests/s",
	}
	if got := append(rows, notes...); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lwSummary =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	_, notes = lwSummary([]string{"before", "generic", "paranoid"}, map[string][]trial{"before": {r(100)}, "generic": {r(90)}})
	if len(notes) != 1 || !strings.HasSuffix(notes[0], "10.0 % of the requests/s of the example's earlier worker (goal: under 5 %): **not met**") {
		t.Errorf("lwSummary(10%% slower, no paranoid) notes = %q; want only the reset cost, not met", notes)
	}
}

func TestRespawnNotes(t *testing.T) {
	res := map[string]respawnResult{"cowfork": {p50: 6.03, p99: 8.31}, "cow": {p50: 4.02, p99: 6}, "normal": {p50: 147.7, p99: 174.1}}
	got := respawnNotes(res, 30, map[string]int{"cowfork": 28, "cow": 27, "normal": 29}, false)
	want := []string{
		"- A new fork is **24.49x** faster than a cold boot at p50 and **20.95x** at p99; the spare's hand-over 36.74x at p50 (it only moves the fork off the request's path: the spare is forked again after it).",
		"- Goals (worker exit → a newly forked worker serving, `cow_spare = false`): p50 <= 10 ms: met (6.03 ms); >= 20x faster than normal mode's cold respawn at p50: met (24.49x).",
		"- p99 is the nearest-rank percentile of 30 samples, i.e. the slowest respawn when there are fewer than 100. All samples (ms) are in bench/out/respawn-cowfork.txt, respawn-cow.txt and respawn-normal.txt.",
		"- Some requests reached a dead worker and got a **502** (`worker died during the request`: 28 with a new fork, 27 with the spare, 29 in normal mode); the poller goes straight on, so they are part of the latency.",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("respawnNotes =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The goals are the new fork's: a fast spare does not meet them.
	res = map[string]respawnResult{"cowfork": {p50: 12, p99: 20}, "cow": {p50: 3, p99: 4}, "normal": {p50: 120, p99: 200}}
	got = respawnNotes(res, 5, map[string]int{}, false)
	if !strings.Contains(got[1], "p50 <= 10 ms: **not met** (12.0 ms); >= 20x faster than normal mode's cold respawn at p50: **not met** (10.00x)") ||
		!strings.HasPrefix(got[3], "- No request failed") {
		t.Errorf("respawnNotes(slow fork, fast spare, no 502) = %q; want both goals not met and no failed request", got)
	}
	got = respawnNotes(map[string]respawnResult{"cowfork": {p50: math.NaN()}, "normal": {p50: math.NaN()}}, 5, nil, false)
	if !strings.Contains(got[1], "**not met** (NaN ms)") || !strings.Contains(got[1], "**not met** (n/ax)") {
		t.Errorf("respawnNotes(no samples) = %q; want both goals not met (n/a)", got[1])
	}
	// An askrd that keeps a spare with cow_spare = false measured no new fork: no verdict.
	got = respawnNotes(map[string]respawnResult{"cowfork": {p50: 5}, "normal": {p50: 150}}, 5, nil, true)
	if !strings.Contains(got[1], "**not measured**") || strings.Contains(got[1], "met (") {
		t.Errorf("respawnNotes(spare kept) = %q; want the goals not measured", got[1])
	}
}

func TestForeignLine(t *testing.T) {
	tests := []struct {
		list []foreign
		want string
	}{
		{[]foreign{{"hello / askrd", 0}, {"hello / nginx + php-fpm", 3}}, "- X: hello / askrd 0%; hello / nginx + php-fpm 3%"},
		{[]foreign{{"respawn-cow", 9}, {"memory-cow", 10}}, "- X: respawn-cow 9%; memory-cow 10% -- **10% or more: those numbers are disturbed; rerun on an idle machine**"},
	}
	for _, tt := range tests {
		if got := foreignLine("X", tt.list); got != tt.want {
			t.Errorf("foreignLine(%v) = %q; want %q", tt.list, got, tt.want)
		}
	}
}

func TestProblemLines(t *testing.T) {
	log := "time=1 level=INFO msg=ready\ntime=2 level=WARN msg=\"paranoid mode on: …\"\ntime=3 level=ERROR msg=\"worker failed\"\ntime=4 level=WARN msg=slow\n"
	got := problemLines(log, askrdProblem)
	if len(got) != 2 || !strings.Contains(got[0], "worker failed") || !strings.Contains(got[1], "msg=slow") {
		t.Errorf("problemLines(askrd log) = %q; want the ERROR and the second WARN, not paranoid mode's", got)
	}
	if got := problemLines("2026/12/06 [notice] 1#1: start\n2026/12/06 [warn] 1#1: x\n", nginxProblem); len(got) != 1 {
		t.Errorf("problemLines(nginx log) = %q; want the [warn] line", got)
	}
}
