package main

// The worker-mode scenarios: hello, laravel, laravel-workers (laravel-json: limit.go).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/askr-php/askr/internal/harness"
)

// goalResetCostPct: the generic Laravel worker's resets cost less than this share of requests/s
// (issue 13).
const goalResetCostPct = 5

// helloFPM is the php-fpm twin of examples/hello-worker.php: same headers and text, once per
// request (there is no state across requests, so "served" is always 1).
const helloFPM = `<?php
header('Content-Type: text/plain; charset=utf-8');
echo "Hello from askr worker ", getmypid(), "\n";
echo "method=", $_SERVER['REQUEST_METHOD'], " uri=", $_SERVER['REQUEST_URI'], " served=", 1, "\n";
`

// opcacheProbe prints "on" when opcache is enabled for the request.
const opcacheProbe = `<?php $s = opcache_get_status(false); echo ($s && $s['opcache_enabled']) ? "on" : "off";
`

// needOpcache wants url (an opcacheProbe) to say "on".
func needOpcache(url, label string) error {
	_, body, err := get(url)
	if err != nil || string(body) != "on" {
		return fmt.Errorf("%s: opcache is not enabled (%s answered %.100q, %v)", label, url, body, err)
	}
	return nil
}

func writeFiles(dir string, files map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// hello measures today's askrd, the askrd of commit -before (built first, so that no build runs
// beside a measurement) and nginx + php-fpm, one after the other.
func (b *bench) hello() error {
	docroot := filepath.Join(b.tmp, "hello-public")
	if err := writeFiles(docroot, map[string]string{"index.php": helloFPM, "opcache.php": opcacheProbe}); err != nil {
		return err
	}
	tree, why := b.buildBefore()
	s, err := b.startAskrd("hello", askrdOpts{root: filepath.Join(b.repo, "examples/hello/public"), script: filepath.Join(b.repo, "examples/hello-worker.php")})
	if err != nil {
		return err
	}
	if err := b.measureHello(s); err != nil {
		return err
	}
	b.stopAll()
	if err := b.helloBefore(tree, why); err != nil {
		return err
	}
	b.stopAll()
	if s, err = b.startFPM("hello", harness.NginxFPMOptions{Root: docroot, Routing: harness.FrontController}, ""); err != nil {
		return err
	}
	if err := needOpcache(s.url+"/opcache.php", "hello / "+labelFPM); err != nil {
		return err
	}
	if err := b.measureHello(s); err != nil {
		return err
	}
	b.stopAll()
	b.addRatio("hello", false)
	return nil
}

func (b *bench) measureHello(s *server) error { return b.measureRoute("hello", s, "/") }

// haveLaravel says what of the Laravel example is missing from the checkout ("" if nothing).
func (b *bench) haveLaravel() string {
	var missing []string
	for _, f := range []string{filepath.Join(b.cfg.laravelBase, "public", "index.php"), b.cfg.laravelWkr} {
		if _, err := os.Stat(f); err != nil {
			rel, _ := filepath.Rel(b.repo, f)
			missing = append(missing, rel)
		}
	}
	return strings.Join(missing, " ")
}

func (b *bench) laravelEnv() []string { return []string{"ASKR_APP_BASE=" + b.cfg.laravelBase} }

// "/" runs the web middleware group, which starts a (file) session. wrk sends no cookies of its
// own, so without help every request would write a new session file under
// examples/laravel/storage. Like a returning visitor, every wrk request sends the cookies of one
// first visit instead: one session file per server, read and written on each request.
func (b *bench) laravel() error {
	if m := b.haveLaravel(); m != "" {
		logf("SKIPPING laravel: %s not found", m)
		b.res.notes = append(b.res.notes, fmt.Sprintf("- **laravel**: skipped, %s not found in this checkout.", m))
		return nil
	}
	public := filepath.Join(b.cfg.laravelBase, "public")
	s, err := b.startAskrd("laravel", askrdOpts{root: public, script: b.cfg.laravelWkr, env: b.laravelEnv()})
	if err != nil {
		return err
	}
	if err := b.measureLaravel(s); err != nil {
		return err
	}
	b.stopAll()
	if s, err = b.startFPM("laravel", harness.NginxFPMOptions{Root: public, Routing: harness.FrontController, Env: b.laravelEnv()}, ""); err != nil {
		return err
	}
	if err := b.measureLaravel(s); err != nil {
		return err
	}
	b.stopAll()
	b.addRatio("laravel", false)
	return b.inProcess("laravel", "/")
}

func (b *bench) measureLaravel(s *server) error {
	cookie, err := visitorCookie(s.url + "/")
	if err != nil {
		return err
	}
	if _, err := check(s.url+"/", "laravel / "+s.label, "Cookie", cookie); err != nil {
		return err
	}
	sessions := b.countSessions()
	r, err := b.measureMain(s, s.url+"/", b.defaultLoad("-H", "Cookie: "+cookie))
	if err != nil {
		return err
	}
	b.res.notes = append(b.res.notes, b.sessionNotes(s, sessions)...)
	b.addRow("laravel", s.label, r.row())
	b.addCPU("laravel", s.label, r)
	return nil
}

func (b *bench) countSessions() int {
	files, _ := os.ReadDir(filepath.Join(b.cfg.laravelBase, "storage", "framework", "sessions"))
	n := 0
	for _, f := range files {
		if !f.IsDir() && f.Name() != ".gitignore" {
			n++
		}
	}
	return n
}

// sessionNotes: the load reused the visitor's session, or a note says it did not.
func (b *bench) sessionNotes(s *server, before int) []string {
	created := b.countSessions() - before
	if created <= 0 {
		return nil
	}
	logf("%s / %s: WARNING: %d new session files during the load (the session cookie was not honoured)", s.name, s.label, created)
	return []string{fmt.Sprintf("- **%s / %s**: %d new session files appeared under storage/framework/sessions during the load: the visitor's session cookie was not reused.", s.name, s.label, created)}
}

// laravelWorkers measures the three Laravel workers (see the package doc) on the example's "/",
// in rounds whose order rotates; each worker's row is its median round by rps.
func (b *bench) laravelWorkers() error {
	if m := b.haveLaravel(); m != "" {
		logf("SKIPPING laravel-workers: %s not found", m)
		b.res.cowSkipped = append(b.res.cowSkipped, fmt.Sprintf("- **laravel-workers**: skipped, %s not found in this checkout.", m))
		return nil
	}
	before := filepath.Join(b.tmp, "laravel-worker-before.php")
	out, err := exec.Command("git", "-C", b.repo, "show", b.cfg.laravelBefore+":examples/laravel-worker.php").Output()
	if err == nil {
		err = os.WriteFile(before, out, 0o644)
	}
	if err != nil {
		logf("SKIPPING laravel-workers: git show %s:examples/laravel-worker.php failed (not a git checkout?)", b.cfg.laravelBefore)
		b.res.lwNotes = append(b.res.lwNotes, fmt.Sprintf("- **laravel-workers**: skipped, the worker of commit %s could not be read with git.", b.cfg.laravelBefore))
		return nil
	}
	names := []string{"before", "generic", "paranoid"}
	scripts := map[string]string{"before": before, "generic": b.cfg.laravelWkr, "paranoid": b.cfg.laravelWkr}
	flags := map[string][]string{"paranoid": {"--paranoid"}}
	rounds := map[string][]trial{}
	for r := 1; r <= b.cfg.lwRounds; r++ {
		for i := range names {
			name := names[(i+r-1)%3]
			n := fmt.Sprintf("laravel-%s-r%d", name, r)
			s, err := b.startAskrd(n, askrdOpts{root: filepath.Join(b.cfg.laravelBase, "public"), script: scripts[name], env: b.laravelEnv(), flags: flags[name]})
			if err != nil {
				return err
			}
			cookie, err := visitorCookie(s.url + "/")
			if err != nil {
				return err
			}
			if _, err := check(s.url+"/", n+" / askrd", "Cookie", cookie); err != nil {
				return err
			}
			run, notes, err := b.measure(s, s.url+"/", b.defaultLoad("-H", "Cookie: "+cookie))
			if err != nil {
				return err
			}
			b.res.lwNotes = append(b.res.lwNotes, notes...)
			b.res.foreign = append(b.res.foreign, foreign{n + " / askrd", run.Foreign})
			rounds[name] = append(rounds[name], run)
			b.stopAll()
		}
	}
	rows, notes := lwSummary(names, rounds)
	b.res.lwRows = append(b.res.lwRows, rows...)
	b.res.lwNotes = append(b.res.lwNotes, notes...)
	return nil
}

// lwSummary is the laravel-workers table (each worker's median round, the rps of every round) and
// its notes: what the generic worker's resets and --paranoid cost.
func lwSummary(names []string, rounds map[string][]trial) (rows, notes []string) {
	rows, median := roundRows(names, rounds)
	if bf, ok := median["before"]; ok {
		if g, ok := median["generic"]; ok {
			cost := costPct(g.RPS, bf.RPS)
			var c float64
			fmt.Sscan(cost, &c)
			notes = append(notes, fmt.Sprintf("- the generic worker's resets cost %s %% of the requests/s of the example's earlier worker (goal: under %d %%): %s", cost, goalResetCostPct, met(c < goalResetCostPct)))
		}
	}
	if g, ok := median["generic"]; ok {
		if p, ok := median["paranoid"]; ok {
			notes = append(notes, fmt.Sprintf("- the state-bleed detector (`--paranoid`) costs %s %% of the generic worker's requests/s", costPct(p.RPS, g.RPS)))
		}
	}
	return rows, notes
}

// roundRows is a table of variants measured in rounds: each name's median round (rps, p50, p99,
// errors) and the rps of every round; median maps each name with rounds to its median round.
func roundRows(names []string, rounds map[string][]trial) (rows []string, median map[string]trial) {
	median, each := medians(names, rounds)
	for _, name := range names {
		if mid, ok := median[name]; ok {
			rows = append(rows, tableRow(name, fmt0(mid.RPS), fmtMS(mid.P50), fmtMS(mid.P99), mid.errText(), each[name]))
		}
	}
	return rows, median
}

// medians maps each name with rounds to its median round, and to the rps of each of its rounds.
func medians(names []string, rounds map[string][]trial) (median map[string]trial, each map[string]string) {
	median, each = map[string]trial{}, map[string]string{}
	for _, name := range names {
		rs := rounds[name]
		if len(rs) == 0 {
			continue
		}
		median[name] = medianRun(rs)
		var list []string
		for _, r := range rs {
			list = append(list, fmt0(r.RPS))
		}
		each[name] = strings.Join(list, " ")
	}
	return median, each
}
