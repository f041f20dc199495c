package main

// Per-request ("classic") PHP: askrd without a worker script vs nginx + php-fpm routing the same
// way, on a hello-world file and on Debian's WordPress.

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/askr-php/askr/internal/harness"
)

// classicHelloPHP is one file both servers run afresh for every request: no framework, so what is
// measured is the server (HTTP, FastCGI, PHP's request startup and shutdown).
const classicHelloPHP = `<?php
header('Content-Type: text/plain; charset=utf-8');
echo "Hello from PHP ", getmypid(), "\n";
echo "method=", $_SERVER['REQUEST_METHOD'], " uri=", $_SERVER['REQUEST_URI'], "\n";
`

// classicSide is one server of a classic scenario: start it as NAME, check it, and the load.
type classicSide struct {
	label string
	start func(name string) (*server, error)
	check func(s *server) error
	url   func(s *server) string
	load  wrkOpts
}

// classicRounds measures both sides cfg.classicRounds times, askrd first in odd rounds and php-fpm
// first in even ones, so a machine that gets busier or quieter during the scenario favours
// neither. A run disturbed by other processes is repeated (cfg.classicRetries times at most).
// Each side's row is its median undisturbed round (roundsSummary); a note lists every round.
func (b *bench) classicRounds(scenario string, askrd, fpm classicSide) error {
	var repeated []string
	rounds := map[string][]trial{}
	for r := 1; r <= b.cfg.classicRounds; r++ {
		order := []classicSide{askrd, fpm}
		if r%2 == 0 {
			order = []classicSide{fpm, askrd}
		}
		for _, side := range order {
			name := fmt.Sprintf("%s-r%d", scenario, r)
			for try := 0; ; try++ {
				run, notes, err := b.classicRun(name, side)
				if err != nil {
					return err
				}
				b.res.notes = append(b.res.notes, notes...)
				if !run.disturbed() || try >= b.cfg.classicRetries {
					b.res.foreign = append(b.res.foreign, foreign{name + " / " + side.label, run.Foreign})
					rounds[side.label] = append(rounds[side.label], run)
					break
				}
				logf("%s / %s: disturbed by other processes (%d%% of the CPUs), measuring again", name, side.label, run.Foreign)
				repeated = append(repeated, fmt.Sprintf("%s / %s %d%%", name, side.label, run.Foreign))
			}
		}
	}
	if len(repeated) > 0 {
		b.res.notes = append(b.res.notes, fmt.Sprintf("- **%s**: runs measured again because other processes used 10%% or more of the CPUs during them: %s", scenario, strings.Join(repeated, "; ")))
	}
	var all []string
	for _, label := range []string{labelAskrd, labelFPM} {
		if len(rounds[label]) == 0 {
			continue
		}
		row, list := roundsSummary(rounds[label])
		b.addRow(scenario, label, row)
		all = append(all, label+" "+list)
	}
	b.res.notes = append(b.res.notes, fmt.Sprintf("- **%s**: rps of each round (askrd first in odd rounds, php-fpm first in even ones; the table shows each server's median round, rounds in which other processes used 10%% or more of the CPUs left out when there are others): %s", scenario, strings.Join(all, "; ")))
	return nil
}

// classicRun is one measured run of one side.
func (b *bench) classicRun(name string, side classicSide) (trial, []string, error) {
	defer b.stopAll()
	s, err := side.start(name)
	if err != nil {
		return trial{}, nil, err
	}
	if err := side.check(s); err != nil {
		return trial{}, nil, err
	}
	return b.measure(s, side.url(s), side.load)
}

func (b *bench) classicHello() error {
	docroot := filepath.Join(b.tmp, "classic-hello-public")
	if err := writeFiles(docroot, map[string]string{"index.php": classicHelloPHP, "opcache.php": opcacheProbe}); err != nil {
		return err
	}
	check := func(s *server) error {
		if _, err := check(s.url+"/", s.name+" / "+s.label); err != nil {
			return err
		}
		return needOpcache(s.url+"/opcache.php", s.name+" / "+s.label)
	}
	root := func(s *server) string { return s.url + "/" }
	askrd := classicSide{label: labelAskrd, check: check, url: root, load: b.defaultLoad(),
		start: func(name string) (*server, error) { return b.startAskrd(name, askrdOpts{root: docroot}) }}
	fpm := classicSide{label: labelFPM, check: check, url: root, load: b.defaultLoad(),
		start: func(name string) (*server, error) {
			return b.startFPM(name, harness.NginxFPMOptions{Root: docroot, Routing: harness.Classic}, "")
		}}
	if err := b.classicRounds("classic-hello", askrd, fpm); err != nil {
		return err
	}
	b.addRatio("classic-hello", true)
	return nil
}

// classicWordPress: both servers as Debian's README says — the document root
// harness.WordPressRoot, /wp-content/ from harness.WordPressContent (static files only).
// Readiness is polled on a static file, so no PHP runs for a foreign Host. nginx's server_name is
// the site's, as in a real vhost: WordPress compares asset hosts with SERVER_NAME (askrd passes the
// request's host there), so the pages are the same byte for byte.
func (b *bench) classicWordPress() error {
	if err := harness.WordPressMissing(); err != nil {
		logf("SKIPPING classic-wordpress: %v", err)
		b.res.notes = append(b.res.notes, fmt.Sprintf("- **classic-wordpress**: skipped: %v.", err))
		return nil
	}
	host, stopDB, err := b.wordPressSite()
	if err != nil {
		return err
	}
	defer stopDB()
	cfg := filepath.Join(b.tmp, "askr-wordpress.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("[server]\nalias = { %q = %q }\n", harness.WordPressAlias.Prefix, harness.WordPressAlias.Dir)), 0o644); err != nil {
		return err
	}
	fpmOpts := harness.NginxFPMOptions{Root: harness.WordPressRoot, Routing: harness.Classic,
		Aliases: []harness.Alias{harness.WordPressAlias}, ServerName: host}

	// the install wizard runs once, behind the reference server
	s, err := b.startFPM("classic-wordpress-install", fpmOpts, "/readme.html")
	if err != nil {
		return err
	}
	if err := wpInstall(s.url, host); err != nil {
		return err
	}
	b.stopAll()

	pages := map[string]int{}
	check := func(s *server) error {
		n, err := b.wpCheck(s, host)
		pages[s.label] = n
		return err
	}
	root := func(s *server) string { return s.url + "/" }
	load := wrkOpts{threads: b.cfg.threads, conns: b.cfg.wpConns, dur: b.cfg.duration, extra: []string{"-H", "Host: " + host, "--timeout", wrkDur(b.cfg.wpTimeout)}}
	askrd := classicSide{label: labelAskrd, check: check, url: root, load: load, start: func(name string) (*server, error) {
		return b.startAskrd(name, askrdOpts{root: harness.WordPressRoot, flags: []string{"--config", cfg}, ready: "/readme.html"})
	}}
	fpm := classicSide{label: labelFPM, check: check, url: root, load: load, start: func(name string) (*server, error) {
		return b.startFPM(name, fpmOpts, "/readme.html")
	}}
	if err := b.classicRounds("classic-wordpress", askrd, fpm); err != nil {
		return err
	}
	b.addRatio("classic-wordpress", true)
	differ := ""
	if pages[labelAskrd] != pages[labelFPM] {
		differ = " (**they differ**)"
	}
	b.res.notes = append(b.res.notes, fmt.Sprintf("- **classic-wordpress**: the front page as checked before the runs: %d bytes from askrd, %d from nginx + php-fpm%s (both pages are kept in bench/out/).", pages[labelAskrd], pages[labelFPM], differ))
	return nil
}

// wordPressSite starts a private MariaDB (its CPU counted with the servers') with a WordPress site
// on it; stop stops the database and removes the site's config.
func (b *bench) wordPressSite() (host string, stop func(), err error) {
	dir := filepath.Join(b.tmp, "mariadb")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	logf("classic-wordpress: private MariaDB in %s", dir)
	db, err := harness.StartMariaDB(dir)
	if err != nil {
		return "", nil, err
	}
	b.mu.Lock()
	b.helpers = append(b.helpers, db.Proc)
	b.mu.Unlock()
	site, err := harness.NewWordPressSite(db, "askr-bench")
	if err != nil {
		return "", nil, err
	}
	b.mu.Lock()
	b.cleanups = append(b.cleanups, func() { site.Remove() })
	b.mu.Unlock()
	b.res.wpVersion, b.res.mariadbVersion = harness.WordPressVersion(), harness.MariaDBVersion()
	return site.Host, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		site.Remove()
		db.Stop(10 * time.Second)
		b.helpers = nil
	}, nil
}

// wpInstall runs the install wizard once, as a browser would (with the site's Host).
func wpInstall(base, host string) error {
	resp, body, err := get(base+"/wp-admin/install.php", "Host", host)
	if err != nil || resp.StatusCode != 200 || !bytes.Contains(body, []byte(`name="weblog_title"`)) {
		return fmt.Errorf("classic-wordpress: GET /wp-admin/install.php is not the wizard (%v):\n%.2000s", err, body)
	}
	logf("classic-wordpress: installing the site %s through %s", host, base)
	password := "Pw-" + harness.RandomHex(12)
	form := url.Values{"weblog_title": {"askr bench"}, "user_name": {"askr"}, "admin_password": {password},
		"admin_password2": {password}, "admin_email": {"askr-bench@example.org"}, "blog_public": {"0"},
		"language": {""}, "Submit": {"Install WordPress"}}
	resp, body, err = post(base+"/wp-admin/install.php?step=2", host, form)
	if err != nil || resp.StatusCode != 200 || !bytes.Contains(body, []byte("<h1>Success!</h1>")) {
		return fmt.Errorf("classic-wordpress: the install wizard did not answer Success (%v):\n%.2000s", err, body)
	}
	return nil
}

// wpCheck: the front page is a 200 with the install's post (kept in bench/out), and /wp-content/
// (the alias) serves the theme's files. It returns the front page's size.
func (b *bench) wpCheck(s *server, host string) (int, error) {
	label := s.name + " / " + s.label
	body, err := check(s.url+"/", label, "Host", host)
	if err != nil {
		return 0, err
	}
	if !bytes.Contains(body, []byte("Hello world!")) {
		return 0, fmt.Errorf("%s: the front page shows no 'Hello world!' post:\n%.2000s", label, body)
	}
	os.WriteFile(filepath.Join(b.out, "wordpress-front-page-"+letters(s.label)+".html"), body, 0o644)
	_, err = check(s.url+"/wp-content/themes/twentytwentythree/style.css", label, "Host", host)
	return len(body), err
}
