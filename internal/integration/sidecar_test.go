package integration

// [[sidecar]] commands, [queue] and [scheduler] processes that askrd supervises beside its HTTP
// workers (issue 17): restarted with growing back-off, killed after their grace, nothing left
// after askrd (also after kill -9), log lines tagged, environment filtered, READY=1 not waiting
// for them. The helpers here are prefixed sc.

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/proc"
	"github.com/askr-php/askr/internal/sidecar"
)

// scSlots returns the /status slots of the sidecar (or queue, or scheduler) called name.
func (s *server) scSlots(name string) []sidecar.Status {
	s.t.Helper()
	var out []sidecar.Status
	for _, sc := range s.adminStatus().Sidecars {
		if sc.Name == name {
			out = append(out, sc)
		}
	}
	return out
}

// scRunning waits until n slots of name run (a pid, state running) and returns their pids.
func (s *server) scRunning(name string, n int, timeout time.Duration) []int {
	s.t.Helper()
	var slots []sidecar.Status
	ok := poll(timeout, func() bool {
		slots = s.scSlots(name)
		running := 0
		for _, sl := range slots {
			if sl.PID > 0 && sl.State == "running" {
				running++
			}
		}
		return running == n
	})
	if !ok {
		s.t.Fatalf("%s: want %d slots running within %v; /status has %+v", name, n, timeout, slots)
	}
	var pids []int
	for _, sl := range slots {
		pids = append(pids, sl.PID)
	}
	return pids
}

// scMarker is a string unique to this test, to find its processes by their command line.
func scMarker() string { return strconv.Itoa(100000 + rand.IntN(900000)) }

// procsWith returns the processes whose command line contains marker.
func procsWith(marker string) []process { return procsMatching(marker, false) }

// procsRunning returns the processes whose command line begins with cmd (not a shell or keeper
// that has it among its arguments).
func procsRunning(cmd string) []process { return procsMatching(cmd, true) }

func procsMatching(marker string, prefix bool) []process {
	ents, _ := os.ReadDir("/proc")
	var out []process
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		b = bytes.ReplaceAll(b, []byte{0}, []byte{' '})
		if err == nil && (prefix && bytes.HasPrefix(b, []byte(marker)) || !prefix && bytes.Contains(b, []byte(marker))) {
			out = append(out, snapshot(pid))
		}
	}
	return out
}

// scStarts reads the start times a failing sidecar appended to file, one per line (date +%s.%N).
func scStarts(t *testing.T, file string) []float64 {
	t.Helper()
	b, _ := os.ReadFile(file)
	var out []float64
	for f := range strings.FieldsSeq(string(b)) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			t.Fatalf("%s: %q is not a time: %v", file, f, err)
		}
		out = append(out, v)
	}
	return out
}

// A sidecar that exits 1 at once is started again and again, each time after a longer pause, and
// /status counts the restarts and says how it last ended.
func TestSidecarFailingBacksOff(t *testing.T) {
	starts := filepath.Join(t.TempDir(), "starts")
	s := startAskrd(t, opts{args: []string{"--workers", "1"}, config: fmt.Sprintf(
		"[[sidecar]]\nname = \"failing\"\ncommand = \"date +%%s.%%N >> %s; exit 1\"\n", starts)})
	const want = 5
	var got []float64
	if !poll(60*time.Second, func() bool { got = scStarts(t, starts); return len(got) >= want }) {
		t.Fatalf("the failing sidecar started %d times in 60 s; want %d", len(got), want)
	}
	var gaps []time.Duration
	for i := 1; i < len(got); i++ {
		gaps = append(gaps, time.Duration((got[i]-got[i-1])*float64(time.Second)))
	}
	for i := 1; i < len(gaps); i++ {
		if gaps[i] < gaps[i-1]*9/10 {
			t.Errorf("gaps between starts %v: gap %d is shorter than the one before; want them to grow", gaps, i)
		}
	}
	if last := gaps[len(gaps)-1]; last < 2*gaps[0] {
		t.Errorf("gaps between starts %v: the last is not twice the first; want a growing back-off", gaps)
	}
	slots := s.scSlots("failing")
	if len(slots) != 1 {
		t.Fatalf("/status sidecars named failing: %+v; want 1 slot", slots)
	}
	sl := slots[0]
	if sl.Kind != sidecar.KindCommand || sl.Restarts < len(got)-1 || !strings.Contains(sl.LastExit, "exit status 1") || sl.ExitedAt.IsZero() {
		t.Errorf("/status slot %+v; want kind sidecar, restarts ≥ %d, last_exit exit status 1, exited_at set", sl, len(got)-1)
	}
}

// A sidecar that ignores SIGTERM is killed once its grace has passed when askrd stops; askrd
// exits 0 and nothing of the sidecar is left.
func TestSidecarIgnoringTermKilledAfterGrace(t *testing.T) {
	mark := scMarker()
	s := startAskrd(t, opts{args: []string{"--workers", "1"}, config: fmt.Sprintf(
		"[[sidecar]]\nname = \"stubborn\"\ngrace = \"2s\"\ncommand = \"trap '' TERM; while :; do sleep 1.%s; done\"\n", mark)})
	pid := s.scRunning("stubborn", 1, 30*time.Second)[0]
	if !poll(10*time.Second, func() bool { return len(procsRunning("sleep 1."+mark)) > 0 }) {
		t.Fatalf("the sidecar's sleep 1.%s never ran", mark)
	}
	procs := append(tree(s.cmd.Process.Pid), procsWith(mark)...)
	if !slices.ContainsFunc(procs, func(p process) bool { return p.pid == pid }) {
		t.Fatalf("sidecar pid %d from /status is neither under askrd nor found by its command line: %v", pid, procs)
	}
	stop := time.Now()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("askrd still runs 20 s after SIGTERM, with a sidecar whose grace is 2 s")
	}
	took := time.Since(stop)
	if s.err != nil {
		t.Errorf("askrd exited with %v; want 0", s.err)
	}
	if took < 2*time.Second {
		t.Errorf("askrd exited %v after SIGTERM; want the sidecar given its 2 s grace first", took)
	}
	awaitGone(t, "after askrd stopped", procs, 5*time.Second)
	if !slices.ContainsFunc(strings.Split(s.logs.String(), "\n"), func(l string) bool {
		return strings.Contains(l, "name=stubborn") && strings.Contains(l, "killed")
	}) {
		t.Errorf("no log line says the stubborn sidecar was killed")
	}
}

// kill -9 of askrd leaves nothing running: not its [[sidecar]] commands (one a compound command
// with a background job), not its queue worker, not their children.
func TestSidecarNothingLeftAfterKill9(t *testing.T) {
	mark := scMarker()
	dir := t.TempDir()
	queue := filepath.Join(dir, "queue-"+mark+".php")
	if err := os.WriteFile(queue, []byte("<?php\nwhile (true) {\n    sleep(1);\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startAskrd(t, opts{args: []string{"--workers", "1"}, config: fmt.Sprintf(`[[sidecar]]
name = "sleeper"
command = "sleep 300.%[1]s"

[[sidecar]]
name = "compound"
command = "sh -c 'sleep 301.%[1]s & sleep 302.%[1]s'"

[queue]
workers = 1
script = %[2]q
`, mark, queue)})
	pids := append(s.scRunning("sleeper", 1, 30*time.Second), s.scRunning("compound", 1, 30*time.Second)...)
	pids = append(pids, s.scRunning("queue", 1, 30*time.Second)...)
	for _, m := range []string{"sleep 300.", "sleep 301.", "sleep 302."} {
		if !poll(10*time.Second, func() bool { return len(procsRunning(m+mark)) > 0 }) {
			t.Fatalf("no process runs %s%s", m, mark)
		}
	}
	procs := append(tree(s.cmd.Process.Pid), procsWith(mark)...)
	for _, pid := range pids {
		procs = append(procs, snapshot(pid))
	}
	if cowMode() {
		procs = append(procs, snapshot(s.adminStatus().TemplatePID))
	}
	s.kill9()
	awaitGone(t, "after kill -9 of askrd", procs, 10*time.Second)
}

// The log tags a sidecar's lines with its name and pid; it runs in app_base with ASKR_APP_BASE
// and the workers' environment, without systemd's variables, under askrd's user. READY=1 does not
// wait for the sidecars or the queue workers: one that sleeps before doing anything does not
// delay it.
func TestSidecarLogEnvAndReady(t *testing.T) {
	needSocketActivate(t)
	mark := scMarker()
	base := t.TempDir()
	os.Mkdir(filepath.Join(base, "public"), 0o755)
	queue := filepath.Join(base, "queue.php")
	os.WriteFile(queue, []byte("<?php\nsleep(300);\n"), 0o644)
	root := repoRoot(t)
	conf := filepath.Join(t.TempDir(), "askr.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[server]
root = %q
workers = 1
[worker]
script = %q
app_base = %q
cow = %t
[queue]
workers = 1
script = %q
[[sidecar]]
name = "envdump"
command = "echo hello-%s from $$; env > env.out; pwd > pwd.out; id -u > uid.out; exec sleep 300"
[[sidecar]]
name = "idle"
command = "sleep 300"
`, filepath.Join(root, "examples", "hello", "public"), filepath.Join(root, "internal", "integration", "testdata", "worker.php"),
		base, cowMode(), queue, mark)), 0o644)
	n := newFakeNotify(t)
	adminDir, err := os.MkdirTemp("", "askr-admin-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(adminDir)
	httpAddr := freeAddr(t)
	// systemd-socket-activate gives askrd only the variables named with -E.
	cmd := exec.Command("systemd-socket-activate", "-l", httpAddr, "--fdname=http", "-E", "PATH", "-E", "NOTIFY_SOCKET="+n.path,
		"-E", "WATCHDOG_USEC=60000000", "-E", "ASKR_ADMIN_SOCKET="+filepath.Join(adminDir, "admin.sock"), askrdBinary(t), "--config", conf)
	s := runCommand(t, cmd)
	s.admin = filepath.Join(adminDir, "admin.sock")
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("askrd log:\n%s", s.logs.String())
		}
	})
	// systemd-socket-activate starts askrd at the first connection.
	go poll(30*time.Second, func() bool {
		resp, err := client.Get("http://" + httpAddr + "/pid")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	n.wait(t, "READY=1", 30*time.Second)
	pid := s.scRunning("envdump", 1, 30*time.Second)[0]
	s.scRunning("idle", 1, 10*time.Second)
	s.scRunning("queue", 1, 10*time.Second)

	// The sidecar's line in the log: its text, with the sidecar's name and pid.
	var line string
	poll(10*time.Second, func() bool {
		for l := range strings.SplitSeq(s.logs.String(), "\n") {
			if strings.Contains(l, "hello-"+mark) {
				line = l
				return true
			}
		}
		return false
	})
	if line == "" || !strings.Contains(line, "envdump") || !strings.Contains(line, strconv.Itoa(pid)) {
		t.Errorf("log line of the sidecar's output %q; want it tagged with envdump and pid %d", line, pid)
	}
	if logs := s.logs.String(); !strings.Contains(logs, "workers ready") || strings.Index(logs, "workers ready") > strings.Index(logs, "hello-"+mark) {
		t.Errorf("the sidecar's output is logged before \"workers ready\"; want the sidecars started once the workers serve")
	}
	// The pid /status names is the command's shell, or its keeper (askrd sidecar-keeper), the
	// shell's parent.
	var sh int
	if _, rest, ok := strings.Cut(line, "hello-"+mark+" from "); ok {
		sh, _ = strconv.Atoi(strings.TrimRight(strings.Fields(rest)[0], `"`))
	}
	if sh != pid && (sh == 0 || proc.Parent(sh) != pid) {
		t.Errorf("log line %q: the shell's pid (%d) is neither the sidecar's pid in /status (%d) nor its child", line, sh, pid)
	}
	var env, pwd, uid []byte
	if !poll(10*time.Second, func() bool {
		env, _ = os.ReadFile(filepath.Join(base, "env.out"))
		pwd, _ = os.ReadFile(filepath.Join(base, "pwd.out"))
		uid, _ = os.ReadFile(filepath.Join(base, "uid.out"))
		return len(env) > 0 && len(pwd) > 0 && len(uid) > 0
	}) {
		t.Fatalf("the sidecar wrote no env.out, pwd.out and uid.out in app_base %s", base)
	}
	if got := strings.TrimSpace(string(pwd)); got != base {
		t.Errorf("the sidecar's working directory is %s; want app_base %s", got, base)
	}
	if got := strings.TrimSpace(string(uid)); got != strconv.Itoa(os.Getuid()) {
		t.Errorf("the sidecar runs as uid %s; want askrd's, %d", got, os.Getuid())
	}
	vars := map[string]string{}
	for l := range strings.SplitSeq(string(env), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			vars[k] = v
		}
	}
	if vars["ASKR_APP_BASE"] != base {
		t.Errorf("the sidecar's ASKR_APP_BASE = %q; want %s", vars["ASKR_APP_BASE"], base)
	}
	if vars["PATH"] == "" {
		t.Errorf("the sidecar has no PATH; want askrd's environment")
	}
	for k := range vars {
		if k == "NOTIFY_SOCKET" || strings.HasPrefix(k, "LISTEN_") || strings.HasPrefix(k, "WATCHDOG_") || k == "ASKR_WORKER" {
			t.Errorf("the sidecar's environment has %s (systemd's or askrd's alone)", k)
		}
	}
	if r := (&server{t: t, URL: "http://" + httpAddr}).get("/pid"); r.status != 200 {
		t.Errorf("GET /pid = %d; want a worker serving", r.status)
	}
}
