package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/proc"
)

// TestEfficiency: efficiency = rps ÷ (cores / in-process time), in percent; the limit is cores /
// time.
func TestEfficiency(t *testing.T) {
	for _, c := range []struct {
		rps, us float64
		cores   int
		want    float64
	}{
		{3000, 130, 2, 19.5}, // the figures: limit 15385 rps
		{7692.3, 130, 2, 50}, // half the limit
		{1000, 1000, 1, 100}, // one core, 1 ms per request: 1000 rps is the limit
		{5000, 100, 4, 12.5}, // limit 40000
		{3000, 0, 2, 0},      // no in-process figure
		{3000, 130, 0, 0},    // no cores
	} {
		if got := efficiency(c.rps, c.us, c.cores); math.Abs(got-c.want) > 0.01 {
			t.Errorf("efficiency(%v, %v, %d) = %v; want %v", c.rps, c.us, c.cores, got, c.want)
		}
	}
	if got := limitRPS(130, 2); math.Abs(got-15384.6) > 0.1 {
		t.Errorf("limitRPS(130, 2) = %v; want 15384.6", got)
	}
	if got := limitRPS(0, 2); got != 0 {
		t.Errorf("limitRPS(0, 2) = %v; want 0", got)
	}
}

// TestCPUSplit: ticks (10 ms) of askrd and its workers and wrk's rusage become µs per request.
func TestCPUSplit(t *testing.T) {
	got, ok := cpuSplit{front: 150, php: 310, load: 500 * time.Millisecond, requests: 10000}.perRequest()
	want := cpuPer{front: 150, php: 310, load: 50}
	if !ok || got != want || got.total() != 510 {
		t.Errorf("perRequest() = %+v, %v (total %v); want %+v, true (total 510)", got, ok, got.total(), want)
	}
	if _, ok := (cpuSplit{front: 1, requests: 0}).perRequest(); ok {
		t.Errorf("perRequest() of a run without requests ok = true; want false")
	}
	if got := cpuRows([]cpuEntry{{"hello", labelAskrd, want}, {"hello", labelFPM, cpuPer{front: 61.04, php: 4.26, load: 20}}}); strings.Join(got, "\n") !=
		"| hello | askrd | 150 | 310 | 50 | 510 |\n| hello | nginx + php-fpm | 61 | 4.3 | 20 | 85 |" {
		t.Errorf("cpuRows() =\n%s", strings.Join(got, "\n"))
	}
}

// TestProcessTicks: askrd's own CPU time apart from its workers' (and the workers it reaped);
// php-fpm's and nginx's whole trees; other processes not counted.
func TestProcessTicks(t *testing.T) {
	p := func(pid, ppid int, u, s, cu, cs uint64) process {
		return process{pid: pid, ppid: ppid, stat: proc.Stat{PID: pid, PPID: ppid, UTime: u, STime: s, CUTime: cu, CSTime: cs}}
	}
	all := map[int]process{
		1:  p(1, 0, 1000, 1000, 5000, 5000), // init: not below the server
		10: p(10, 1, 50, 30, 20, 10),        // askrd, which reaped a worker (30 ticks)
		11: p(11, 10, 70, 10, 0, 0),         // worker
		12: p(12, 10, 60, 5, 0, 0),          // worker
		13: p(13, 12, 4, 1, 0, 0),           // a worker's child
		20: p(20, 1, 7, 3, 0, 0),            // another process
	}
	if own, below := ownAndBelow(all, 10); own != 80 || below != 30+80+65+5 {
		t.Errorf("ownAndBelow(askrd) = %d, %d; want 80, 180", own, below)
	}
	if own, below := ownAndBelow(all, 99); own != 0 || below != 0 {
		t.Errorf("ownAndBelow(gone) = %d, %d; want 0, 0", own, below)
	}
	if got := subtreeTicks(all, 12); got != 65+5 {
		t.Errorf("subtreeTicks(12) = %d; want 70", got)
	}
}

// TestParseInproc reads inprocess.php's line after php-cgi's headers.
func TestParseInproc(t *testing.T) {
	out := "Content-type: text/html; charset=UTF-8\n\n" +
		`{"path":"\/","requests":1130,"mean_us":664.7,"median_us":676.1,"batches_us":[676.1,795,654.6],"wall_mean_us":700.2,"opcache":true,"opcache_cached":true,"cached_scripts":394,"cookies":["XSRF-TOKEN","askr_laravel_session"],"session":"qdLt","session_kept":true}` + "\n"
	r, err := parseInproc(out)
	if err != nil || r.Path != "/" || r.Requests != 1130 || r.MedianUS != 676.1 || len(r.BatchesUS) != 3 || r.WallMeanUS != 700.2 ||
		!r.Opcache || !r.OpcacheCached || len(r.Cookies) != 2 || r.Session == nil || *r.Session != "qdLt" || !r.SessionKept {
		t.Errorf("parseInproc() = %+v, %v; want the line's figures", r, err)
	}
	for _, bad := range []string{"Content-type: text/html\n\nPHP Fatal error: …\n", `{"requests":0,"median_us":0}`, `{"requests":`} {
		if _, err := parseInproc(bad); err == nil {
			t.Errorf("parseInproc(%q) error = nil; want an error", bad)
		}
	}
}

// TestLimitReport renders the section of issue 19 from fixed figures: the in-process table with
// both servers' efficiency, the CPU table, and every goal's line.
func TestLimitReport(t *testing.T) {
	cfg, err := parseFlags("/repo", nil)
	if err != nil {
		t.Fatalf("parseFlags(none) error = %v", err)
	}
	b := &bench{cfg: cfg, res: results{ran: map[string]row{}}}
	b.addRow("hello", labelAskrd, row{RPS: 20000, P50: 1.5, P99: 3.5})
	b.addRow("hello", "askrd b91dc02", row{RPS: 15000, P50: 2, P99: 4})
	b.addRow("hello", labelFPM, row{RPS: 11000, P50: 2.8, P99: 4})
	b.addRow("laravel-json", labelAskrd, row{RPS: 6000, P50: 5, P99: 9})
	b.addRow("laravel-json", labelFPM, row{RPS: 1500, P50: 20, P99: 30})
	b.addRow("laravel", labelAskrd, row{RPS: 2000, P50: 15, P99: 40})
	b.addRow("laravel", labelFPM, row{RPS: 400, P50: 80, P99: 35})
	b.res.beforeLabel = "askrd b91dc02"
	b.res.inproc = map[string]inproc{
		"laravel-json": {MedianUS: 130, BatchesUS: []float64{128.4, 130, 135}, WallMeanUS: 131.2},
		"laravel":      {MedianUS: 800, BatchesUS: []float64{800}, WallMeanUS: 812},
	}
	for _, r := range []struct {
		scenario, server string
		split            cpuSplit
	}{
		{"hello", labelAskrd, cpuSplit{front: 90, php: 60, load: time.Second, requests: 20000}},
		{"hello", "askrd b91dc02", cpuSplit{front: 150, php: 60, load: time.Second, requests: 15000}},
		{"hello", labelFPM, cpuSplit{front: 50, php: 70, load: time.Second, requests: 11000}},
		{"laravel", labelAskrd, cpuSplit{front: 0, php: 0, requests: 0}}, // no requests: no row
	} {
		b.addCPU(r.scenario, r.server, trial{CPU: r.split})
	}
	var w strings.Builder
	b.limitReport(&w, 2)
	want := "\n## Close to the limit: efficiency and CPU per request\n" +
		"\n### In-process limit of the Laravel routes\n\n" +
		"cmd/askr-bench/inprocess.php boots the Laravel example once in one php-cgi (Debian's cgi php.ini, opcache on and serving the app, checked with opcache_get_status(); run from examples/laravel as askrd runs its workers) and times Kernel::handle() + terminate() of the route over and over, nothing around it: a warm-up, then 5 batches of 1s; the first request's cookies go with every later one (a returning visitor: GET / reads and writes one session, as in the load). Time per request = that process's CPU time (getrusage) per request in the median batch. Limit = 2 cores ÷ that time; efficiency = requests/s of the main table ÷ limit.\n\n" +
		"| scenario | route | in process, µs/request | each batch | wall µs/request | limit rps | askrd efficiency | php-fpm efficiency |\n" +
		"|---|---|---:|---|---:|---:|---:|---:|\n" +
		"| laravel-json | GET /api/json | 130 | 128 130 135 | 131 | 15385 | 39 % | 10 % |\n" +
		"| laravel | GET / | 800 | 800 | 812 | 2500 | 80 % | 16 % |\n\n" +
		"\n### CPU per request\n\n" + cpuIntro + "\n\n" +
		"| scenario | server | askrd / nginx | PHP workers / php-fpm | wrk | total |\n" +
		"|---|---|---:|---:|---:|---:|\n" +
		"| hello | askrd | 45 | 30 | 50 | 125 |\n" +
		"| hello | askrd b91dc02 | 100 | 40 | 67 | 207 |\n" +
		"| hello | nginx + php-fpm | 45 | 64 | 91 | 200 |\n\n" +
		"\n### Goals (issue 19)\n\n" +
		"- hello: askrd's requests/s at least 2x php-fpm's (goal): 1.82x: **not met**\n" +
		"- laravel-json (JSON route, no session): askrd's efficiency at least 50 % (goal): 39 %: **not met**\n" +
		"- laravel (Blade + session): askrd's efficiency at least 85 % (goal): 80 %: **not met**\n" +
		"- hello: askrd's own CPU per request at most 50 % of askrd b91dc02's (goal): 45 µs vs 100 µs, 45 %: met\n" +
		"- p99 latency of askrd no worse than php-fpm's on every route (goal): hello 3.50 ms vs 4.00 ms, laravel-json 9.00 ms vs 30.0 ms, laravel 40.0 ms vs 35.0 ms: **not met**\n"
	if got := w.String(); got != want {
		diffLines(t, got, want)
	}
}

// diffLines reports the lines where got and want differ.
func diffLines(t *testing.T, got, want string) {
	t.Helper()
	gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(gl), len(wl)) {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Errorf("line %d:\n got %q\nwant %q", i+1, g, w)
		}
	}
}

// TestBeforeSkipped: a baseline commit that cannot be built (no go, say) is a note in the report,
// not an error, and no goal line compares with it; the header names what was measured.
func TestBeforeSkipped(t *testing.T) {
	cfg, err := parseFlags("/repo", []string{"-before", "abc1234"})
	if err != nil {
		t.Fatalf("parseFlags(-before abc1234) error = %v", err)
	}
	b := &bench{cfg: cfg, res: results{ran: map[string]row{}}}
	if err := b.helloBefore("", "go not found"); err != nil {
		t.Fatalf("helloBefore(go not found) error = %v; want nil", err)
	}
	b.addRow("hello", labelAskrd, row{RPS: 20000, P99: 3})
	b.addRow("hello", labelFPM, row{RPS: 9000, P99: 3})
	b.addRow("laravel-json", labelAskrd, row{RPS: 6000, P99: 9})
	b.addCPU("hello", labelAskrd, trial{CPU: cpuSplit{front: 90, requests: 20000}})
	got := b.report(100, time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC), sysInfo{cpus: 2})
	for _, want := range []string{
		"\n- laravel-json: GET /api/json of the Laravel example (api middleware group: no session, no cookies; a closure returning an array as JSON)\n",
		"\n- **hello / askrd abc1234**: skipped, it could not be built: go not found\n",
		"\n- hello: askrd's requests/s at least 2x php-fpm's (goal): 2.22x: met\n",
		"\n- p99 latency of askrd no worse than php-fpm's on every route (goal): hello 3.00 ms vs 3.00 ms: met\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	for _, not := range []string{"hello / askrd abc1234: the askrd of commit", "CPU per request at most", "In-process limit"} {
		if strings.Contains(got, not) {
			t.Errorf("report has %q, which this run did not measure:\n%s", not, got)
		}
	}
}

// TestBuildBeforeBadCommit: a commit git does not know gives a reason (for the note), no tree.
func TestBuildBeforeBadCommit(t *testing.T) {
	repo, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{cfg: config{before: "no-such-commit-askr-bench"}, repo: repo, tmp: t.TempDir()}
	if tree, why := b.buildBefore(); tree != "" || why == "" {
		t.Errorf("buildBefore(no-such-commit) = %q, %q; want no tree and a reason", tree, why)
	}
}
