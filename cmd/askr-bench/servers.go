package main

// Starting and stopping the servers measured (askrd, nginx + php-fpm from internal/harness), one
// scenario's at a time, and the HTTP checks before a measurement.

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/askr-php/askr/internal/harness"
)

// readyPath is polled until a server answers (any status): a page no app has, so a 404 that
// starts no session.
const readyPath = "/askr-bench-ready"

const (
	labelAskrd = "askrd"
	labelFPM   = "nginx + php-fpm"
)

// server is one running server of a scenario: askrd, or nginx in front of php-fpm.
type server struct {
	name, label string // "classic-hello-r1", labelAskrd
	url         string // "http://127.0.0.1:port"
	askrd       *harness.Proc
	fpm         *harness.NginxFPM
}

func (s *server) procs() []*harness.Proc {
	if s.askrd != nil {
		return []*harness.Proc{s.askrd}
	}
	return s.fpm.Procs()
}

func pids(ps []*harness.Proc) []int {
	var out []int
	for _, p := range ps {
		out = append(out, p.Pid())
	}
	return out
}

// askrdOpts is how to start askrd: worker mode with a script, per-request mode without.
type askrdOpts struct {
	root, script string
	bin          string // the askrd to start (default -askrd)
	env          []string
	flags        []string // serve flags after --workers, so a --workers here wins
	ready        string   // the path polled until askrd answers (default readyPath)
}

// startAskrd starts askrd serve on a free port of 127.0.0.1 and waits until it answers.
func (b *bench) startAskrd(name string, o askrdOpts) (*server, error) {
	addr, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--root", o.root}
	if o.script != "" {
		args = append(args, "--worker-script", o.script)
	}
	args = append(args, "--workers", fmt.Sprint(b.cfg.workers))
	args = append(args, o.flags...)
	args = append(args, "--listen", addr)
	p, err := harness.Start(harness.Cmd{Name: "askrd " + name, Path: cmp.Or(o.bin, b.cfg.askrd), Args: args, Env: o.env})
	if err != nil {
		return nil, err
	}
	s := &server{name: name, label: labelAskrd, url: "http://" + addr, askrd: p}
	b.track(s)
	if err := b.waitReady(s, cmp.Or(o.ready, readyPath)); err != nil {
		return nil, err
	}
	if o.script == "" && !strings.Contains(p.Output(), "mode=per-request") {
		return nil, fmt.Errorf("%s: %s did not start in per-request mode:\n%s", name, b.cfg.askrd, tail(p.Output(), 20))
	}
	return s, nil
}

// startFPM starts php-fpm (pm = static, as many children as askrd has workers) and nginx in front
// of it (one worker process per CPU), in tmp/NAME-fpm, and waits until nginx answers.
func (b *bench) startFPM(name string, o harness.NginxFPMOptions, ready string) (*server, error) {
	o.Dir = filepath.Join(b.tmp, name+"-fpm")
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	o.Workers = b.cfg.workers
	o.NginxWorkers = runtime.NumCPU()
	o.TCP = b.cfg.fpmListen == "tcp"
	f, err := harness.StartNginxFPM(o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := &server{name: name, label: labelFPM, url: f.URL, fpm: f}
	b.track(s)
	return s, b.waitReady(s, cmp.Or(ready, readyPath))
}

// waitReady polls path until the server answers (any status) while its processes live.
func (b *bench) waitReady(s *server, path string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range s.procs() {
			if x, err := p.Exited(); x {
				return fmt.Errorf("%s / %s: %s exited (%v) before answering %s:\n%s", s.name, s.label, p.Name(), err, path, tail(p.Report(), 30))
			}
		}
		if resp, err := c.Get(s.url + path); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s / %s: %s not answering after 30s", s.name, s.label, s.url+path)
}

// stopAll stops every server started so far (between runs: one server at a time) and keeps
// askrd's log in the temp dir.
func (b *bench) stopAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopRunning()
}

// track notes a server started, for stopAll.
func (b *bench) track(s *server) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.running = append(b.running, s)
}

// stopRunning is stopAll with b.mu held.
func (b *bench) stopRunning() {
	for _, s := range b.running {
		if s.askrd != nil {
			s.askrd.Stop(10 * time.Second)
			os.WriteFile(filepath.Join(b.tmp, "askrd-"+s.name+".log"), []byte(s.askrd.Output()), 0o644)
		} else {
			s.fpm.Stop(10 * time.Second)
		}
	}
	b.running = nil
}

// client sends the bench's checks: no redirects followed, a generous timeout.
var client = &http.Client{
	Timeout:       60 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// get sends GET url with header (name, value pairs; "Host" sets the request's host).
func get(url string, header ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		if strings.EqualFold(header[i], "Host") {
			req.Host = header[i+1]
		} else {
			req.Header.Add(header[i], header[i+1])
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// post sends a form to url with the request's host.
func post(url, host string, form neturl.Values) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, err
	}
	req.Host = host
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// check wants a 200 from url and returns its body.
func check(url, label string, header ...string) ([]byte, error) {
	resp, body, err := get(url, header...)
	if err != nil {
		return nil, fmt.Errorf("%s: GET %s: %w", label, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: GET %s answered %d:\n%.2000s", label, url, resp.StatusCode, body)
	}
	logf("%s: GET %s -> 200, %d bytes: %s", label, url, len(body), strings.ReplaceAll(string(body[:min(60, len(body))]), "\n", " "))
	return body, nil
}

// visitorCookie is the Cookie header a browser would send after one visit to url.
func visitorCookie(url string) (string, error) {
	resp, _, err := get(url)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	var kv []string
	for _, c := range resp.Cookies() {
		kv = append(kv, c.Name+"="+c.Value)
	}
	return strings.Join(kv, "; "), nil
}

// returningVisitor is the Laravel "/" page of the askrd s (named name in the log) and the Cookie of
// one earlier visit to it (a returning visitor, so no new session file per request), checked to
// answer 200 with that cookie.
func returningVisitor(name string, s *server) (url, cookie string, err error) {
	url = s.url + "/"
	if cookie, err = visitorCookie(url); err != nil {
		return "", "", err
	}
	if _, err := check(url, name+" / askrd", "Cookie", cookie); err != nil {
		return "", "", err
	}
	return url, cookie, nil
}

// Warnings and errors in the servers' logs.
var (
	askrdProblem = regexp.MustCompile(`level=(WARN|ERROR)`)
	nginxProblem = regexp.MustCompile(`\[(warn|error|crit|alert|emerg)\]`)
	phpProblem   = regexp.MustCompile(`WARNING|ERROR|Warning|Fatal|Error`)
)

// problemLines are the lines of log that match re, but --paranoid's own startup warning (what was
// asked for).
func problemLines(log string, re *regexp.Regexp) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if re.MatchString(l) && !strings.Contains(l, `msg="paranoid mode on`) {
			out = append(out, l)
		}
	}
	return out
}

// problemNotes are notes for the warnings and errors s logged so far.
func problemNotes(s *server) []string {
	type logFile struct {
		name, text string
		re         *regexp.Regexp
	}
	var logs []logFile
	if s.askrd != nil {
		logs = append(logs, logFile{"askrd-" + s.name + ".log", s.askrd.Output(), askrdProblem})
	} else {
		for i, f := range s.fpm.ErrorLogs {
			b, _ := os.ReadFile(f)
			re := phpProblem
			if i == 0 {
				re = nginxProblem
			}
			logs = append(logs, logFile{filepath.Base(f), string(b), re})
		}
	}
	var notes []string
	for _, l := range logs {
		lines := problemLines(l.text, l.re)
		if len(lines) == 0 {
			continue
		}
		logf("%s / %s: %d warning/error lines in %s, e.g. %s", s.name, s.label, len(lines), l.name, lines[0])
		first := lines[0][:min(200, len(lines[0]))]
		notes = append(notes, fmt.Sprintf("- **%s / %s**: %d warning/error lines in its log %s (kept in bench/out/), e.g. `%s`", s.name, s.label, len(lines), l.name, first))
	}
	return notes
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// keepLogs copies the logs of the temp dir (askrd's, nginx's, php-fpm's, mariadbd's) to bench/out.
func (b *bench) keepLogs() {
	files, _ := filepath.Glob(filepath.Join(b.tmp, "*.log"))
	more, _ := filepath.Glob(filepath.Join(b.tmp, "*", "*.log"))
	more2, _ := filepath.Glob(filepath.Join(b.tmp, "*", "*.err"))
	for _, f := range slices.Concat(files, more, more2) {
		rel, _ := filepath.Rel(b.tmp, f)
		if data, err := os.ReadFile(f); err == nil {
			os.WriteFile(filepath.Join(b.out, strings.ReplaceAll(rel, "/", "-")), data, 0o644)
		}
	}
}

// wrkOpts is one wrk run's load.
type wrkOpts struct {
	threads, conns int
	dur            time.Duration
	extra          []string // more wrk arguments (-H …, --timeout …)
}

// runWrk runs one bounded wrk against 127.0.0.1, writes its output to outFile and returns it with
// the CPU time wrk used (user + system, from its rusage).
func (b *bench) runWrk(url string, o wrkOpts, outFile string) (string, time.Duration, error) {
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		return "", 0, fmt.Errorf("refusing to load %s (127.0.0.1 only)", url)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.dur+30*time.Second)
	defer cancel()
	args := []string{fmt.Sprintf("-t%d", o.threads), fmt.Sprintf("-c%d", o.conns), "-d" + wrkDur(o.dur), "--latency"}
	args = append(append(args, o.extra...), url)
	cmd := execCommandContext(ctx, b.cfg.wrk, args...)
	out, err := cmd.CombinedOutput()
	os.WriteFile(outFile, out, 0o644)
	if err != nil {
		return "", 0, fmt.Errorf("wrk against %s: %v\n%s", url, err, out)
	}
	return string(out), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// wrkDur is d as wrk and the report write it: "10s", "1m".
func wrkDur(d time.Duration) string {
	if d >= time.Minute && d%time.Minute == 0 {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
}
