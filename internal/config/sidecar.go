package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// validateSidecars checks [queue], [scheduler] and every [[sidecar]], makes the scripts' paths
// absolute and fills in each sidecar's defaults (name, count, restart, grace).
func (c *Config) validateSidecars() error {
	q, s := &c.Queue, &c.Scheduler
	switch {
	case q.Workers < 0:
		return c.Err("queue.workers", "must not be negative")
	case q.WorkersMax < 0:
		return c.Err("queue.workers_max", "must not be negative")
	case q.WorkersMax != 0 && q.WorkersMax < q.Workers:
		return c.Err("queue.workers_max", "must not be below queue.workers (%d); got %d", q.Workers, q.WorkersMax)
	case q.Workers > 0 && q.Script == "":
		return c.Err("queue.workers", "queue workers need a script ([queue] script or --queue-script, e.g. /usr/share/askr/workers/laravel-queue.php)")
	case q.Grace < 0:
		return c.Err("queue.grace", "must not be negative")
	case s.Interval < Duration(time.Second):
		return c.Err("scheduler.interval", "must be at least 1s; got %s", s.Interval)
	case s.Grace < 0:
		return c.Err("scheduler.grace", "must not be negative")
	}
	if q.Workers > 0 {
		if err := c.absScript("queue.script", &q.Script); err != nil {
			return err
		}
	}
	if s.Script != "" {
		if err := c.absScript("scheduler.script", &s.Script); err != nil {
			return err
		}
	}
	names := map[string]bool{}
	for _, sc := range c.Sidecar {
		names[sc.Name] = sc.Name != "" // the names given: a derived one never takes them
	}
	seen := map[string]bool{}
	for i := range c.Sidecar {
		sc := &c.Sidecar[i]
		bad := func(k, format string, args ...any) error { return c.tableErr("sidecar", i, k, format, args...) }
		if strings.TrimSpace(sc.Command) == "" {
			return bad("command", "must not be empty: it is the command line sh -c runs")
		}
		switch sc.Restart {
		case "":
			sc.Restart = "always"
		case "always", "on-failure":
		default:
			return bad("restart", "must be \"always\" or \"on-failure\", not %q", sc.Restart)
		}
		switch {
		case sc.Count < 0:
			return bad("count", "must not be negative")
		case sc.Count == 0:
			sc.Count = 1
		}
		switch {
		case sc.Grace < 0:
			return bad("grace", "must not be negative")
		case sc.Grace == 0:
			sc.Grace = Duration(10 * time.Second)
		}
		if sc.Name == "" {
			base := filepath.Base(strings.Fields(sc.Command)[0])
			sc.Name = base
			for n := 2; names[sc.Name]; n++ {
				sc.Name = fmt.Sprintf("%s-%d", base, n)
			}
		} else if seen[sc.Name] {
			return bad("name", "%q names two sidecars: each needs its own (it tags their log lines, status and metrics)", sc.Name)
		}
		names[sc.Name], seen[sc.Name] = true, true
	}
	return nil
}

// tableErr is an Error about key k of the i-th [[table]], at its line in that table (not the
// first table's, which is what the key alone would find).
func (c *Config) tableErr(table string, i int, k, format string, args ...any) *Error {
	e := c.Err(table+"."+k, format, args...)
	for _, key := range []string{fmt.Sprintf("%s[%d].%s", table, i, k), fmt.Sprintf("%s[%d]", table, i)} {
		if line := lineOf(c.lines, key); line > 0 {
			e.File, e.Line = c.File, line
			break
		}
	}
	return e
}

// absScript makes the script at *p absolute and checks that it is a file.
func (c *Config) absScript(key string, p *string) error {
	abs, err := filepath.Abs(*p)
	if err != nil {
		return c.Err(key, "%v", err)
	}
	if st, err := os.Stat(abs); err != nil || !st.Mode().IsRegular() {
		return c.Err(key, "%s", notA(abs, "readable file", err))
	}
	*p = abs
	return nil
}

// NeedsPHPCLI reports whether [queue] or [scheduler] run php-cli processes: outside CoW mode.
func (c *Config) NeedsPHPCLI() bool {
	return !c.Worker.Cow && (c.Queue.Workers > 0 || c.Scheduler.Script != "")
}
