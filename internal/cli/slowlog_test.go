package cli

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/config"
	"github.com/askr-php/askr/internal/harness"
	"github.com/askr-php/askr/internal/pool"
)

const slowPHP = `<?php
class Slow {
    public function slow_function_name(): void {
        sleep(60);
    }
}
(new Slow())->slow_function_name();
`

// jsonLog is a logger whose records are decoded by records.
func jsonLog() (*slog.Logger, *bytes.Buffer) {
	var b bytes.Buffer
	return slog.New(slog.NewJSONHandler(&b, nil)), &b
}

func records(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var rs []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		rs = append(rs, r)
	}
	return rs
}

// Off by default: no SlowAfter, no OnSlow.
func TestSlowOptionsOff(t *testing.T) {
	var opt pool.Options
	log, logs := jsonLog()
	slowOptions(&opt, config.Config{}, "/nonexistent/php-cgi", log)
	if opt.SlowAfter != 0 || opt.OnSlow != nil || logs.String() != "" {
		t.Errorf("slowOptions(request_slowlog_timeout = 0) = %v, %v, log %q; want nothing set or logged", opt.SlowAfter, opt.OnSlow != nil, logs.String())
	}
}

// A slow request is logged once per call, as one WARN record with the request and the PHP
// backtrace of the real php-cgi that runs it: the function it sleeps in, its file and line.
func TestOnSlowLogsTheBacktrace(t *testing.T) {
	needPHPCGI(t)
	bin, _ := exec.LookPath("php-cgi")
	script := filepath.Join(t.TempDir(), "slow.php")
	if err := os.WriteFile(script, []byte(slowPHP), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-d", "max_execution_time=0", "-f", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	var c config.Config
	c.Server.RequestSlowlogTimeout = config.Duration(2 * time.Second)
	var opt pool.Options
	log, logs := jsonLog()
	slowOptions(&opt, c, bin, log)
	if opt.SlowAfter != 2*time.Second || opt.OnSlow == nil || logs.String() != "" {
		t.Fatalf("slowOptions = %v, %v, log %q; want 2s, OnSlow set, nothing logged", opt.SlowAfter, opt.OnSlow != nil, logs.String())
	}
	// php-cgi is in sleep() once its stack says so; until then the record may hold less.
	want := "] sleep()\n[0x"
	var rec map[string]any
	if !harness.Poll(10*time.Second, func() bool {
		logs.Reset()
		opt.OnSlow(cmd.Process.Pid, &pool.Visit{Method: "GET", URI: "/slow?x=1"}, 2500*time.Millisecond)
		rs := records(t, logs)
		if len(rs) != 1 {
			t.Fatalf("OnSlow logged %d records; want 1:\n%s", len(rs), logs.String())
		}
		rec = rs[0]
		bt, _ := rec["backtrace"].(string)
		return strings.Contains(bt, want)
	}) {
		t.Fatalf("OnSlow record %v; want a backtrace holding %q", rec, want)
	}
	bt := rec["backtrace"].(string)
	lines := strings.Split(bt, "\n")
	wantLines := []string{"] sleep()", "] Slow->slow_function_name() " + script + ":4", "] {main}() " + script + ":7"}
	if len(lines) != len(wantLines) {
		t.Fatalf("backtrace:\n%s\nwant %d lines", bt, len(wantLines))
	}
	for i, w := range wantLines {
		if !strings.HasPrefix(lines[i], "[0x") || !strings.HasSuffix(lines[i], w) {
			t.Errorf("backtrace line %d = %q; want [0x…%s", i, lines[i], w)
		}
	}
	for k, w := range map[string]any{"level": "WARN", "msg": "slow request", "component": "slowlog", "pid": float64(cmd.Process.Pid), "method": "GET", "uri": "/slow?x=1", "running": 2.5} {
		if rec[k] != w {
			t.Errorf("record[%q] = %v; want %v", k, rec[k], w)
		}
	}
}

// A php-cgi whose stacks askrd cannot read: said once at start, and a slow request is still
// logged, with why there is no backtrace.
func TestOnSlowWithoutBacktrace(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "php-cgi")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fake)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var c config.Config
	c.Server.RequestSlowlogTimeout = config.Duration(time.Second)
	var opt pool.Options
	log, logs := jsonLog()
	slowOptions(&opt, c, fake, log)
	rs := records(t, logs)
	if len(rs) != 1 || rs[0]["level"] != "WARN" || !strings.Contains(rs[0]["msg"].(string), "without their PHP backtrace") {
		t.Fatalf("slowOptions(not PHP) logged %v; want one warning that backtraces are not available", rs)
	}
	logs.Reset()
	opt.OnSlow(cmd.Process.Pid, &pool.Visit{Method: "POST", URI: "/upload"}, 1200*time.Millisecond)
	rs = records(t, logs)
	if len(rs) != 1 {
		t.Fatalf("OnSlow logged %v; want one record", rs)
	}
	r := rs[0]
	bt, _ := r["backtrace"].(string)
	if r["msg"] != "slow request" || r["uri"] != "/upload" || r["pid"] != float64(cmd.Process.Pid) || r["running"] != 1.2 ||
		!strings.HasPrefix(bt, "not available for PHP unknown (") {
		t.Errorf("OnSlow(not PHP) logged %v; want the request, and a backtrace \"not available for PHP unknown (…)\"", r)
	}
	// A process that is gone: logged all the same, with why there is no backtrace.
	logs.Reset()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	opt.OnSlow(gone.Process.Pid, &pool.Visit{Method: "GET", URI: "/gone"}, time.Second)
	if rs = records(t, logs); len(rs) != 1 || rs[0]["uri"] != "/gone" || !strings.HasPrefix(rs[0]["backtrace"].(string), "not available: backtrace of pid ") {
		t.Errorf("OnSlow(gone pid) logged %v; want the request and \"not available: backtrace of pid …\"", rs)
	}
	// A caller that gave the pool no Visit: logged all the same.
	logs.Reset()
	opt.OnSlow(cmd.Process.Pid, nil, time.Second)
	if rs = records(t, logs); len(rs) != 1 || rs[0]["msg"] != "slow request" || rs[0]["uri"] != "" {
		t.Errorf("OnSlow(nil Visit) logged %v; want one record without a URI", rs)
	}
}
