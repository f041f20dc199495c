package main

import (
	"fmt"
	"path/filepath"
	"strings"
)

// defaultLoad is the main table's wrk load with extra arguments.
func (b *bench) defaultLoad(extra ...string) wrkOpts {
	return wrkOpts{threads: b.cfg.threads, conns: b.cfg.conns, dur: b.cfg.duration, extra: extra}
}

// measure warms s up, then measures it with one wrk run on url: the run's figures, the CPU its
// processes and wrk used (cpuSplit), the CPU other processes used meanwhile, the server's memory
// after it, and notes for what its logs complain about or a server process that exited.
func (b *bench) measure(s *server, url string, o wrkOpts) (trial, []string, error) {
	logf("%s / %s: warm-up %s", s.name, s.label, wrkDur(b.cfg.warmup))
	warm := o
	warm.dur = b.cfg.warmup
	if _, _, err := b.runWrk(url, warm, filepath.Join(b.tmp, "warmup.txt")); err != nil {
		return trial{}, nil, err
	}
	logf("%s / %s: wrk -t%d -c%d -d%s --latency %s %s", s.name, s.label, o.threads, o.conns, wrkDur(o.dur), strings.Join(o.extra, " "), url)
	ours := append(pids(s.procs()), b.helperPids()...)
	front0, php0 := serverTicks(procs(), s)
	before := snapshot(ours)
	out, wrkCPU, err := b.runWrk(url, o, filepath.Join(b.out, "wrk-"+s.name+"-"+letters(s.label)+".txt"))
	if err != nil {
		return trial{}, nil, err
	}
	after := snapshot(ours)
	front1, php1 := serverTicks(procs(), s)
	r := trial{Name: s.name, Server: s.label, wrkResult: parseWrk(out), Foreign: foreignPct(before, after)}
	r.CPU = cpuSplit{front: front1 - front0, php: php1 - php0, load: wrkCPU, requests: r.Requests}
	if r.disturbed() {
		logf("%s / %s: WARNING: other processes used %d%% of the CPUs during the run", s.name, s.label, r.Foreign)
	}
	r.RSS = treeRSSMiB(pids(s.procs()))
	notes := problemNotes(s)
	for _, p := range s.procs() {
		if x, _ := p.Exited(); x {
			logf("%s / %s: WARNING: server process %d exited during the measured run", s.name, s.label, p.Pid())
			r.Exited = true
			notes = append(notes, fmt.Sprintf("- **%s / %s**: a server process exited during the measured run, so its numbers are not valid (its log is in bench/out/; `level=INFO msg=draining` in an askrd log means it was sent SIGTERM/SIGINT).", s.name, s.label))
			break
		}
	}
	logf("%s / %s: %s req/s, p50 %s, p99 %s, errors %s, %d requests", s.name, s.label, fmt0(r.RPS), fmtMS(r.P50), fmtMS(r.P99), r.errText(), r.Requests)
	return r, notes, nil
}

// letters keeps the lower-case letters of s ("nginx + php-fpm" → "nginxphpfpm").
func letters(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return r
		}
		return -1
	}, s)
}

// measureMain measures s for the main table: its row, its CPU figure and its notes go there.
func (b *bench) measureMain(s *server, url string, o wrkOpts) (trial, error) {
	r, notes, err := b.measure(s, url, o)
	if err != nil {
		return r, err
	}
	b.res.notes = append(b.res.notes, notes...)
	b.res.foreign = append(b.res.foreign, foreign{s.name + " / " + s.label, r.Foreign})
	return r, nil
}

// addRow puts a scenario's row for one server in the main table.
func (b *bench) addRow(scenario, server string, r row) {
	b.res.rows = append(b.res.rows, scenarioRow(scenario, server, r))
	b.res.ran[scenario+"/"+server] = r
}

// addRatio is the askr/php-fpm note of a scenario whose two rows are in.
func (b *bench) addRatio(scenario string, goal bool) {
	a, okA := b.res.ran[scenario+"/"+labelAskrd]
	f, okF := b.res.ran[scenario+"/"+labelFPM]
	if okA && okF {
		b.res.notes = append(b.res.notes, ratioNote(scenario, a, f, goal))
	}
}
