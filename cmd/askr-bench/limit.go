package main

// Issue 19, close to the limit: the laravel-json scenario, the in-process limit of each Laravel
// route (inprocess.php), efficiency, and the goals' lines.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/askr-php/askr/internal/harness"
)

// Issue 19's goals.
const (
	goalHelloX       = 2.0 // hello: askrd's requests/s at least this many times php-fpm's
	goalJSONEffPct   = 50  // laravel-json: efficiency at least this
	goalBladeEffPct  = 85  // laravel (Blade + session): efficiency at least this
	goalCPUBeforePct = 50  // hello: askrd's CPU per request at most this share of commit -before's
)

// limitRoutes are the Laravel routes whose in-process limit is measured: the main table's
// scenario, its path.
var limitRoutes = []struct{ scenario, path string }{{"laravel-json", "/api/json"}, {"laravel", "/"}}

// inproc is what inprocess.php prints: CPU µs per request of the route run in one process.
type inproc struct {
	Path          string    `json:"path"`
	Requests      int64     `json:"requests"`
	MeanUS        float64   `json:"mean_us"`
	MedianUS      float64   `json:"median_us"`
	BatchesUS     []float64 `json:"batches_us"`
	WallMeanUS    float64   `json:"wall_mean_us"`
	Opcache       bool      `json:"opcache"`
	OpcacheCached bool      `json:"opcache_cached"`
	Cookies       []string  `json:"cookies"`
	Session       *string   `json:"session"`
	SessionKept   bool      `json:"session_kept"`
}

// parseInproc reads inprocess.php's JSON line out of php-cgi's output (its headers come first).
func parseInproc(out string) (inproc, error) {
	var r inproc
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "{") {
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				return r, err
			}
			if r.Requests <= 0 || r.MedianUS <= 0 {
				return r, fmt.Errorf("no requests timed")
			}
			return r, nil
		}
	}
	return r, fmt.Errorf("no JSON line")
}

// efficiency is rps ÷ (cores / us): the share, in percent, of the requests/s that cores running
// nothing but the app in process (us µs per request) would reach.
func efficiency(rps, us float64, cores int) float64 {
	if us <= 0 || cores <= 0 {
		return 0
	}
	return 100 * rps * us / 1e6 / float64(cores)
}

// limitRPS is cores / us: the requests/s of the in-process limit.
func limitRPS(us float64, cores int) float64 {
	if us <= 0 {
		return 0
	}
	return float64(cores) * 1e6 / us
}

func (b *bench) laravelJSON() error {
	if m := b.haveLaravel(); m != "" {
		logf("SKIPPING laravel-json: %s not found", m)
		b.res.notes = append(b.res.notes, fmt.Sprintf("- **laravel-json**: skipped, %s not found in this checkout.", m))
		return nil
	}
	public := filepath.Join(b.cfg.laravelBase, "public")
	s, err := b.startAskrd("laravel-json", askrdOpts{root: public, script: b.cfg.laravelWkr, env: b.laravelEnv()})
	if err != nil {
		return err
	}
	if err := b.measureRoute("laravel-json", s, "/api/json"); err != nil {
		return err
	}
	b.stopAll()
	if s, err = b.startFPM("laravel-json", harness.NginxFPMOptions{Root: public, Routing: harness.FrontController, Env: b.laravelEnv()}, ""); err != nil {
		return err
	}
	if err := b.measureRoute("laravel-json", s, "/api/json"); err != nil {
		return err
	}
	b.stopAll()
	b.addRatio("laravel-json", false)
	return b.inProcess("laravel-json", "/api/json")
}

// measureRoute measures GET path of s (no cookies) for the main table and the CPU table.
func (b *bench) measureRoute(scenario string, s *server, path string) error {
	if _, err := check(s.url+path, scenario+" / "+s.label); err != nil {
		return err
	}
	r, err := b.measureMain(s, s.url+path, b.defaultLoad())
	if err == nil {
		b.addRow(scenario, s.label, r.row())
		b.addCPU(scenario, s.label, r)
	}
	return err
}

// inProcess runs inprocess.php on the Laravel example's path with php-cgi (Debian's cgi php.ini,
// opcache on, run from the app's base as askrd runs its workers) while no server runs, and keeps
// its figures for scenario.
func (b *bench) inProcess(scenario, path string) error {
	script := filepath.Join(b.repo, "cmd", "askr-bench", "inprocess.php")
	c := b.cfg
	logf("%s: in process, GET %s: %d batches of %s after a warm-up as long", scenario, path, c.inprocBatches, c.inprocBatch)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(c.inprocBatches+1)*c.inprocBatch+time.Minute)
	defer cancel()
	cmd := execCommandContext(ctx, "php-cgi", "-C", "-d", "output_buffering=0", "-d", "max_execution_time=0", "-d", "log_errors=1", "-d", "html_errors=0", script)
	cmd.Dir = c.laravelBase
	cmd.Env = append(os.Environ(), "ASKR_APP_BASE="+c.laravelBase, "ASKR_INPROCESS_PATH="+path,
		fmt.Sprintf("ASKR_INPROCESS_BATCHES=%d", c.inprocBatches), fmt.Sprintf("ASKR_INPROCESS_BATCH_MS=%d", c.inprocBatch.Milliseconds()))
	before := snapshot(nil)
	out, err := cmd.CombinedOutput()
	after := snapshot(nil)
	os.WriteFile(filepath.Join(b.out, "inprocess-"+scenario+".txt"), out, 0o644)
	if err != nil {
		return fmt.Errorf("%s: in process: php-cgi %s: %v\n%s", scenario, script, err, tail(string(out), 20))
	}
	r, err := parseInproc(string(out))
	if err != nil {
		return fmt.Errorf("%s: in process: %v in php-cgi's output:\n%s", scenario, err, tail(string(out), 20))
	}
	if !r.Opcache || !r.OpcacheCached {
		return fmt.Errorf("%s: in process: opcache is not serving the app (enabled %v, Laravel's files cached %v)", scenario, r.Opcache, r.OpcacheCached)
	}
	if len(r.Cookies) > 0 && (r.Session == nil || !r.SessionKept) {
		b.res.notes = append(b.res.notes, fmt.Sprintf("- **%s / in process**: the visitor's session was not kept across requests (cookies %s): the in-process figure is not that of a returning visitor.", scenario, strings.Join(r.Cookies, ", ")))
	}
	if b.res.inproc == nil {
		b.res.inproc = map[string]inproc{}
	}
	b.res.inproc[scenario] = r
	b.res.foreign = append(b.res.foreign, foreign{scenario + " / in process", foreignPct(before, after)})
	logf("%s: in process: %s µs CPU per request (median batch; mean %s, each %v; wall %s), %d requests",
		scenario, fmtUS(r.MedianUS), fmtUS(r.MeanUS), r.BatchesUS, fmtUS(r.WallMeanUS), r.Requests)
	return nil
}

// limitRows is the in-process table: per route, its time, the limit and both servers' efficiency.
func limitRows(r *results, cores int) []string {
	var rows []string
	for _, lr := range limitRoutes {
		ip, ok := r.inproc[lr.scenario]
		if !ok {
			continue
		}
		eff := func(server string) string {
			if row, ok := r.ran[lr.scenario+"/"+server]; ok {
				return fmt.Sprintf("%.0f %%", efficiency(row.RPS, ip.MedianUS, cores))
			}
			return "n/a"
		}
		var each []string
		for _, us := range ip.BatchesUS {
			each = append(each, fmtUS(us))
		}
		rows = append(rows, tableRow(lr.scenario, "GET "+lr.path, fmtUS(ip.MedianUS), strings.Join(each, " "), fmtUS(ip.WallMeanUS),
			fmt0(limitRPS(ip.MedianUS, cores)), eff(labelAskrd), eff(labelFPM)))
	}
	return rows
}

// goalLines are issue 19's goals, met or not, for what this run measured.
func goalLines(r *results, cores int, beforeLabel string) []string {
	var out []string
	a, okA := r.ran["hello/"+labelAskrd]
	f, okF := r.ran["hello/"+labelFPM]
	if okA && okF {
		x := 0.0
		if f.RPS > 0 {
			x = a.RPS / f.RPS
		}
		out = append(out, fmt.Sprintf("- hello: askrd's requests/s at least %.0fx php-fpm's (goal): %.2fx: %s", goalHelloX, x, met(x >= goalHelloX)))
	}
	for _, g := range []struct {
		scenario, what string
		goal           float64
	}{{"laravel-json", "laravel-json (JSON route, no session)", goalJSONEffPct}, {"laravel", "laravel (Blade + session)", goalBladeEffPct}} {
		ip, okI := r.inproc[g.scenario]
		row, okR := r.ran[g.scenario+"/"+labelAskrd]
		if okI && okR {
			e := efficiency(row.RPS, ip.MedianUS, cores)
			out = append(out, fmt.Sprintf("- %s: askrd's efficiency at least %.0f %% (goal): %.0f %%: %s", g.what, g.goal, e, met(e >= g.goal)))
		}
	}
	now, okN := r.cpuOf("hello", labelAskrd)
	then, okB := r.cpuOf("hello", beforeLabel)
	if okN && okB && beforeLabel != "" {
		p := 0.0
		if then.front > 0 {
			p = 100 * now.front / then.front
		}
		out = append(out, fmt.Sprintf("- hello: askrd's own CPU per request at most %d %% of %s's (goal): %s µs vs %s µs, %.0f %%: %s",
			goalCPUBeforePct, beforeLabel, fmtUS(now.front), fmtUS(then.front), p, met(then.front > 0 && p <= goalCPUBeforePct)))
	}
	var p99s []string
	ok := true
	for _, s := range []string{"hello", "laravel-json", "laravel"} {
		a, okA := r.ran[s+"/"+labelAskrd]
		f, okF := r.ran[s+"/"+labelFPM]
		if okA && okF {
			p99s = append(p99s, fmt.Sprintf("%s %s vs %s", s, fmtMS(a.P99), fmtMS(f.P99)))
			ok = ok && a.P99 <= f.P99
		}
	}
	if len(p99s) > 0 {
		out = append(out, fmt.Sprintf("- p99 latency of askrd no worse than php-fpm's on every route (goal): %s: %s", strings.Join(p99s, ", "), met(ok)))
	}
	return out
}

// limitReport is the section of issue 19: the in-process limits with efficiency, the CPU table,
// askrd's CPU per request against commit -before's, and the goals.
func (b *bench) limitReport(w *strings.Builder, cores int) {
	c, r := b.cfg, &b.res
	rows := limitRows(r, cores)
	goals := goalLines(r, cores, r.beforeLabel)
	if len(rows)+len(r.cpu)+len(goals)+len(r.beforeNotes) == 0 {
		return
	}
	w.WriteString("\n## Close to the limit: efficiency and CPU per request\n")
	if len(rows) > 0 {
		section(w, "### In-process limit of the Laravel routes",
			fmt.Sprintf("cmd/askr-bench/inprocess.php boots the Laravel example once in one php-cgi (Debian's cgi php.ini, opcache on and serving the app, checked with opcache_get_status(); run from examples/laravel as askrd runs its workers) and times Kernel::handle() + terminate() of the route over and over, nothing around it: a warm-up, then %d batches of %s; the first request's cookies go with every later one (a returning visitor: GET / reads and writes one session, as in the load). Time per request = that process's CPU time (getrusage) per request in the median batch. Limit = %d cores ÷ that time; efficiency = requests/s of the main table ÷ limit.",
				c.inprocBatches, c.inprocBatch, cores),
			"| scenario | route | in process, µs/request | each batch | wall µs/request | limit rps | askrd efficiency | php-fpm efficiency |",
			"|---|---|---:|---|---:|---:|---:|---:|", rows, nil)
	}
	b.cpuReport(w)
	lines(w, r.beforeNotes)
	if len(goals) > 0 {
		w.WriteString("\n### Goals (issue 19)\n\n")
		lines(w, goals)
	}
}
