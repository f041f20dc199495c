package cli

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/admin"
	"github.com/askr-php/askr/internal/certificate"
	"github.com/askr-php/askr/internal/sidecar"
)

// askrd status prints a header, one line per worker and a summary with shared vs private memory.
func TestPrintStatus(t *testing.T) {
	st := admin.Status{Mode: "cow", Generation: 2, UptimeSeconds: 3*3600 + 12*60 + 5,
		Workers: admin.Workers{Total: 2, Busy: 1, Idle: 1, List: []admin.Worker{
			{PID: 31201, State: "busy", Requests: 1204, Current: &admin.Current{Method: "GET", URI: "/report?year=2025", Seconds: 7.25},
				PSS: 14 << 20, Private: 9 << 20, CPUSeconds: 3.1, Generation: 2},
			{PID: 31202, State: "idle", Requests: 1187, PSS: 13 << 20, Private: 8 << 20, Generation: 2},
		}},
		Queue: admin.Queue{Length: 0, Bound: 1024, HighWater: 4}, Served: 2391, TemplatePID: 31190,
		Memory:         admin.Memory{PSS: 27 << 20, Private: 17 << 20, RSS: 70 << 20},
		TemplateMemory: &admin.Memory{PSS: 9 << 20},
		Rollout:        admin.Rollout{State: "aborted", Cause: "reload", From: 2, To: 3, Canary: 31300, Detail: "canary pid 31300 answered 5xx to 50.0% of 24 requests"},
	}
	var b strings.Builder
	printStatus(&b, st)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	want := []string{
		"PID    STATE  REQUESTS  CURRENT                FOR   PSS    PRIVATE  CPU   GEN",
		"31201  busy   1204      GET /report?year=2025  7.2s  14.0M  9.0M     3.1s  2",
		"31202  idle   1187      -                      -     13.0M  8.0M     0.0s  2",
		"cow mode · generation 2 · up 3h12m · 2 workers (1 busy, 1 idle) · queue 0/1024 (most 4) · served 2391 · " +
			"memory: PSS 27.0M = private 17.0M + shared 10.0M (RSS 70.0M) · template 31190 PSS 9.0M",
		"last reload: aborted, generation 2 → 3, canary 31300: canary pid 31300 answered 5xx to 50.0% of 24 requests",
	}
	if len(lines) != len(want) {
		t.Fatalf("printStatus wrote %d lines; want %d:\n%s", len(lines), len(want), b.String())
	}
	for i := range want {
		if strings.TrimRight(lines[i], " ") != want[i] {
			t.Errorf("line %d = %q; want %q", i, lines[i], want[i])
		}
	}
}

// Without askrd, status fails saying so; reload with a PID falls back to SIGHUP when no socket
// answers, and without one fails.
func TestCtlWithoutAskrd(t *testing.T) {
	clearEnv(t)
	none := filepath.Join(t.TempDir(), "none.sock")
	if code, _, errOut := run("status", "--socket", none); code != ExitFailure || !strings.Contains(errOut, "askrd status: no askrd answers on "+none+": askrd is not running") {
		t.Errorf("status without askrd = %d %q; want %d saying askrd is not running", code, errOut, ExitFailure)
	}
	if code, _, errOut := run("recycle", "--socket", none, "12"); code != ExitFailure || !strings.Contains(errOut, "not running") {
		t.Errorf("recycle without askrd = %d %q; want %d", code, errOut, ExitFailure)
	}
	if code, _, errOut := run("reload", "--config", "testdata/good.toml", "--socket", none); code != ExitFailure || !strings.Contains(errOut, "not running") {
		t.Errorf("reload without askrd nor PID = %d %q; want %d", code, errOut, ExitFailure)
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	code, out, errOut := run("reload", "--config", "testdata/good.toml", "--socket", none, strconv.Itoa(cmd.Process.Pid))
	if code != ExitOK || !strings.Contains(out, "SIGHUP") {
		t.Fatalf("reload PID without a socket = %d %q %q; want %d, SIGHUP sent", code, out, errOut, ExitOK)
	}
	cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGHUP {
		t.Errorf("process after askrd reload: %v; want killed by SIGHUP", cmd.ProcessState)
	}
	if code, _, _ := run("status", "extra"); code != ExitUsage {
		t.Errorf("status extra = %d; want %d", code, ExitUsage)
	}
	if code, _, errOut := run("dashboard", "--listen", "0.0.0.0:0", "--socket", none); code != ExitUsage || !strings.Contains(errOut, "not a loopback address") {
		t.Errorf("dashboard --listen 0.0.0.0:0 = %d %q; want %d", code, errOut, ExitUsage)
	}
}

// reload PID refuses an admin socket that another process serves: it would reload that one and
// report success (ExecReload of a second unit with the same [admin] socket).
func TestReloadChecksTheSocketsOwner(t *testing.T) {
	clearEnv(t)
	sock := filepath.Join(t.TempDir(), "a.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	reloads := 0
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reloads++
		io.WriteString(w, `{"ok":true}`)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	other := os.Getpid() + 100000
	code, _, errOut := run("reload", "--socket", sock, strconv.Itoa(other))
	want := fmt.Sprintf("is served by askrd %d, not %d", os.Getpid(), other)
	if code != ExitFailure || !strings.Contains(errOut, want) || reloads != 0 {
		t.Errorf("reload %d on a socket this process serves = %d %q, %d reloads; want %d saying %q and none", other, code, errOut, reloads, ExitFailure, want)
	}
	if code, _, errOut := run("reload", "--socket", sock, strconv.Itoa(os.Getpid())); code != ExitOK || reloads != 1 {
		t.Errorf("reload of the socket's own askrd = %d %q, %d reloads; want %d, 1", code, errOut, reloads, ExitOK)
	}
}

// askrd status shows a client's URI without what a terminal acts on: C0 and C1 controls.
func TestClipShowsNoControls(t *testing.T) {
	for in, want := range map[string]string{
		"GET /\x1b[31m": "GET /?[31m",
		"GET /\u009b3m": "GET /?3m",
		"GET /été":      "GET /été",
		"GET /éééééé":   "GET /éééé…",
	} {
		if got := clip(in, 10); got != want {
			t.Errorf("clip(%q, 10) = %q; want %q", in, got, want)
		}
	}
}

// askrd status lists each sidecar, queue worker and scheduler: pid, state, uptime, restarts and
// how the last one ended.
func TestPrintSidecars(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	list := []sidecar.Status{
		{Name: "node", Kind: sidecar.KindCommand, PID: 4100, State: sidecar.StateRunning, Started: now.Add(-90 * time.Second)},
		{Name: "queue", Kind: sidecar.KindQueue, PID: 4101, State: sidecar.StateRunning, Started: now.Add(-2 * time.Hour), Restarts: 3,
			LastExit: "exited", ExitedAt: now.Add(-2 * time.Hour)},
		{Name: "queue", Kind: sidecar.KindQueue, Index: 1, State: sidecar.StateBackoff, Restarts: 5, LastExit: "exit status 255", ExitedAt: now.Add(-2 * time.Second)},
		{Name: "scheduler", Kind: sidecar.KindScheduler, State: sidecar.StateWaiting, Restarts: 59, LastExit: "exited", ExitedAt: now.Add(-30 * time.Second), Skipped: 2},
	}
	var b strings.Builder
	printSidecars(&b, list, now)
	want := []string{
		"SIDECAR    KIND       PID   STATE    UP    RESTARTS  LAST EXIT",
		"node       sidecar    4100  running  1m    0         -",
		"queue#1    queue      4101  running  2h0m  3         exited 2h0m ago",
		"queue#2    queue      -     backoff  -     5         exit status 255 2s ago",
		"scheduler  scheduler  -     waiting  -     59        exited 30s ago (2 runs skipped: the previous still ran)",
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("printSidecars wrote %d lines; want %d:\n%s", len(lines), len(want), b.String())
	}
	for i := range want {
		if strings.TrimRight(lines[i], " ") != want[i] {
			t.Errorf("line %d = %q; want %q", i, lines[i], want[i])
		}
	}
}

// askrd status lists each certificate: names, source, expiry and the last error.
func TestPrintCertificates(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	list := []certificate.Status{
		{Source: "acme", Names: []string{"example.com", "www.example.com"}, NotAfter: now.Add(89 * 24 * time.Hour), Issuer: "R11"},
		{Source: "acme", Names: []string{"new.example"}, Error: "urn:ietf:params:acme:error:unauthorized: no valid A records"},
		{Source: "files", Names: []string{"old.example"}, NotAfter: now.Add(-time.Hour), Issuer: "Internal CA"},
	}
	var b strings.Builder
	printCertificates(&b, list, now)
	want := []string{
		"CERTIFICATE                  SOURCE  EXPIRES                  ISSUER       ERROR",
		"example.com,www.example.com  acme    2027-03-05 (in 89 days)  R11          -",
		"new.example                  acme    -                        -            urn:ietf:params:acme:error:unauthorized: no valid A records",
		"old.example                  files   2026-12-06 (expired)     Internal CA  -",
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("printCertificates wrote %d lines; want %d:\n%s", len(lines), len(want), b.String())
	}
	for i := range want {
		if strings.TrimRight(lines[i], " ") != want[i] {
			t.Errorf("line %d = %q; want %q", i, lines[i], want[i])
		}
	}
}
