package main

// The statistics of the report: wrk's output, percentiles, medians of rounds, ratios, and the
// formatting of each figure (the same as docs/bench.md has always had, so numbers stay comparable).

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// disturbedPct: a run during which other processes used this share of the CPUs (or more) is
// disturbed: left out of medians when there are others, repeated in the classic scenarios.
const disturbedPct = 10

// wrkResult is what one wrk run reports.
type wrkResult struct {
	RPS      float64 // requests per second
	P50, P99 float64 // latency percentiles, ms
	Non2xx   int     // non-2xx/3xx responses
	Sock     int     // socket errors: connect, read, write, timeout
	Requests int64
	Read     float64 // bytes read, headers and all ("… requests in 10.00s, 1.27MB read")
}

// parseWrk reads `wrk --latency` output.
func parseWrk(out string) wrkResult {
	var r wrkResult
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "Requests/sec:" && len(f) > 1:
			r.RPS, _ = strconv.ParseFloat(f[1], 64)
		case f[0] == "50%" && len(f) > 1 && strings.HasPrefix(line, " "):
			r.P50 = wrkMS(f[1])
		case f[0] == "99%" && len(f) > 1 && strings.HasPrefix(line, " "):
			r.P99 = wrkMS(f[1])
		case strings.Contains(line, "requests in "):
			r.Requests, _ = strconv.ParseInt(f[0], 10, 64)
			if len(f) > 1 && f[len(f)-1] == "read" {
				r.Read = wrkBytes(f[len(f)-2])
			}
		case strings.Contains(line, "Non-2xx or 3xx responses:"):
			r.Non2xx, _ = strconv.Atoi(f[len(f)-1])
		case strings.Contains(line, "Socket errors:"):
			_, rest, _ := strings.Cut(line, "Socket errors: ")
			for _, part := range strings.Split(rest, ", ") {
				if kv := strings.Fields(part); len(kv) == 2 {
					n, _ := strconv.Atoi(kv[1])
					r.Sock += n
				}
			}
		}
	}
	return r
}

// wrkMS converts a wrk duration ("812.00us", "2.10ms", "1.02s", "1.50m") to ms.
func wrkMS(v string) float64 {
	num := func(s string) float64 { f, _ := strconv.ParseFloat(s, 64); return f }
	switch {
	case strings.HasSuffix(v, "us"):
		return num(strings.TrimSuffix(v, "us")) / 1000
	case strings.HasSuffix(v, "ms"):
		return num(strings.TrimSuffix(v, "ms"))
	case strings.HasSuffix(v, "m"):
		return num(strings.TrimSuffix(v, "m")) * 60000
	case strings.HasSuffix(v, "s"):
		return num(strings.TrimSuffix(v, "s")) * 1000
	}
	return num(v)
}

// wrkBytes converts a wrk size ("623.78KB", "1.27MB", "512.00B") to bytes (wrk's units are
// binary).
func wrkBytes(v string) float64 {
	v = strings.TrimSuffix(v, "B")
	mult := 1.0
	if i := strings.IndexAny(v, "KMGT"); i >= 0 && i == len(v)-1 {
		mult = math.Pow(1024, float64(strings.IndexByte("KMGT", v[i])+1))
		v = v[:i]
	}
	n, _ := strconv.ParseFloat(v, 64)
	return n * mult
}

// fmtMS formats a latency: 2 decimals under 10 ms, 1 under 100 ms, none above.
func fmtMS(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f ms", v)
	case v < 100:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// fmt0 is v without decimals (requests/s).
func fmt0(v float64) string { return fmt.Sprintf("%.0f", v) }

// ratio is a/b with 2 decimals, or "n/a" when b is not positive or a is not a number.
func ratio(a, b float64) string {
	if b > 0 && !math.IsNaN(a) {
		return fmt.Sprintf("%.2f", a/b)
	}
	return "n/a"
}

// pct is the nearest-rank percentile p of sorted v (0: min, 100: max); NaN when v is empty.
func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	r := int(math.Ceil(p / 100 * float64(len(v))))
	return v[max(r, 1)-1]
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// trial is one measured run of one server.
type trial struct {
	Name, Server string // "classic-hello-r2", "nginx + php-fpm"
	wrkResult
	RSS     string // MiB of the server and its descendants after the run
	Foreign int    // % of all CPUs other processes used during the run
	Exited  bool   // a server process exited during the run
	CPU     cpuSplit
}

// errN is the run's errors as a number.
func (r trial) errN() int { return r.Non2xx + r.Sock }

// errText is the errors column: a count, its kinds when not 0, and a server that exited.
func (r trial) errText() string {
	s := strconv.Itoa(r.errN())
	if r.errN() > 0 {
		s = fmt.Sprintf("%d (%d non-2xx/3xx, %d socket)", r.errN(), r.Non2xx, r.Sock)
	}
	if r.Exited {
		s += "; server exited during the run"
	}
	return s
}

func (r trial) disturbed() bool { return r.Foreign >= disturbedPct }

// row is one server's line of a scenario: a run, or the median of its rounds.
type row struct {
	RPS, P50, P99 float64
	RSS           string
	Errs          string // the errors column
}

func (r trial) row() row {
	return row{RPS: r.RPS, P50: r.P50, P99: r.P99, RSS: r.RSS, Errs: r.errText()}
}

// tableRow renders "| a | b | … |".
func tableRow(cells ...string) string { return "| " + strings.Join(cells, " | ") + " |" }

// scenarioRow is a line of the main table.
func scenarioRow(scenario, server string, r row) string {
	return tableRow(scenario, server, fmt0(r.RPS), fmtMS(r.P50), fmtMS(r.P99), r.Errs)
}

// medianRun is the median of runs by requests/s (the lower one of an even count); ties keep the
// runs' order.
func medianRun(runs []trial) trial {
	s := slices.Clone(runs)
	slices.SortStableFunc(s, func(a, b trial) int {
		switch {
		case a.RPS < b.RPS:
			return -1
		case a.RPS > b.RPS:
			return 1
		}
		return 0
	})
	return s[(len(s)-1)/2]
}

// roundsSummary is one server's row over its rounds: the median undisturbed round (the median of
// all rounds when every one was disturbed), errors summed over all rounds, and the rps of every
// round ("11460, 11535 (disturbed: 12%, left out), 11595").
func roundsSummary(rounds []trial) (row, string) {
	var clean []trial
	for _, r := range rounds {
		if !r.disturbed() {
			clean = append(clean, r)
		}
	}
	onlyClean := len(clean) > 0
	if !onlyClean {
		clean = rounds
	}
	mid := medianRun(clean)
	errs, exited := 0, ""
	var list []string
	for _, r := range rounds {
		errs += r.errN()
		if r.Exited {
			exited = "; server exited during a run"
		}
		s := fmt0(r.RPS)
		if r.disturbed() {
			s += fmt.Sprintf(" (disturbed: %d%%", r.Foreign)
			if onlyClean {
				s += ", left out"
			}
			s += ")"
		}
		list = append(list, s)
	}
	return row{RPS: mid.RPS, P50: mid.P50, P99: mid.P99, RSS: mid.RSS, Errs: strconv.Itoa(errs) + exited}, strings.Join(list, ", ")
}

// ratioNote is the askr/php-fpm line under the main table; with goal, whether askrd's throughput
// is at least php-fpm's without errors (per-request mode's goal), and the errors of either side.
func ratioNote(s string, a, f row, goal bool) string {
	r, l5, l9 := "n/a", "n/a", "n/a"
	if f.RPS > 0 {
		r = fmt.Sprintf("%.2fx", a.RPS/f.RPS)
	}
	if f.P50 > 0 {
		l5 = fmt.Sprintf("%.2fx", a.P50/f.P50)
	}
	if f.P99 > 0 {
		l9 = fmt.Sprintf("%.2fx", a.P99/f.P99)
	}
	out := fmt.Sprintf("- **%s** askr/php-fpm: throughput %s, p50 latency %s, p99 latency %s (RSS after the run: askrd + workers %s MiB, nginx + php-fpm %s MiB)", s, r, l5, l9, a.RSS, f.RSS)
	if goal {
		met := "**not met**"
		if f.RPS > 0 && a.RPS >= f.RPS && a.Errs == "0" {
			met = "met"
		}
		out += "; goal: at least equal to php-fpm (throughput >= 1.00x, no errors): " + met
		if a.Errs != "0" || f.Errs != "0" {
			out += fmt.Sprintf(" (errors: askrd %s, php-fpm %s)", a.Errs, f.Errs)
		}
	}
	return out
}

// met is "met" or "**not met**".
func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

// costPct is how much lower a is than b, in percent of b, with one decimal.
func costPct(a, b float64) string { return fmt.Sprintf("%.1f", (1-a/b)*100) }

// foreignLine is the list of "label N%" with a warning when one is disturbed.
func foreignLine(intro string, list []foreign) string {
	var labels []string
	for _, f := range list {
		labels = append(labels, fmt.Sprintf("%s %d%%", f.label, f.pct))
	}
	s := "- " + intro + ": " + strings.Join(labels, "; ")
	if slices.ContainsFunc(list, func(f foreign) bool { return f.pct >= disturbedPct }) {
		s += " -- **10% or more: those numbers are disturbed; rerun on an idle machine**"
	}
	return s
}

// mib formats KiB as MiB with one decimal.
func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }
