package integration

// The fork-safety check ([worker] fork_safety): a CoW template names what it would share with
// every worker it forks (here a TCP connection it opened while booting), refuses to fork with
// "refuse", and looks at nothing with "off". The shipped framework workers give no warning.

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// forkPeer opens the TCP listener the worker script connects to while booting.
func forkPeer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

func forkSafetyOpts(t *testing.T, peer, config string) opts {
	return opts{
		script: filepath.Join(repoRoot(t), "internal", "integration", "testdata", "forksafety-worker.php"),
		env:    []string{"ASKR_TEST_FORK_PEER=" + peer},
		config: config,
		args:   []string{"--workers", "2"},
	}
}

// logLines returns the lines of the log that contain substr.
func logLines(log, substr string) []string {
	var lines []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, substr) {
			lines = append(lines, l)
		}
	}
	return lines
}

// The default ("warn"): one WARN line naming the connection, and the workers serve. Worker mode
// (no template) does not check.
func TestForkSafetyWarns(t *testing.T) {
	peer := forkPeer(t)
	s := startCow(t, forkSafetyOpts(t, peer, ""))
	if r := s.get("/"); r.status != 200 || r.body != "holding the connection" {
		t.Errorf("GET / = %d %q; want 200 from a worker holding the connection", r.status, r.body)
	}
	s.stop() // every line logged
	want := "askr: fork safety: TCP connection to " + peer + " open in the template: every worker will share it"
	lines := logLines(s.logs.String(), "fork safety")
	if len(lines) != 1 || !strings.Contains(lines[0], want) || !strings.Contains(lines[0], "level=WARN") {
		t.Errorf("fork safety lines = %q; want one WARN line containing %q", lines, want)
	}

	if cowMode() {
		return // every askrd of this run is in CoW mode
	}
	w := startAskrd(t, forkSafetyOpts(t, forkPeer(t), ""))
	if r := w.get("/"); r.status != 200 {
		t.Errorf("worker mode: GET / = %d %q", r.status, r.body)
	}
	w.stop()
	if lines := logLines(w.logs.String(), "fork safety"); len(lines) != 0 {
		t.Errorf("worker mode logged %q; want no fork safety line (no template, nothing forked)", lines)
	}
}

// "refuse": askrd serve fails at startup (exit 1, before it serves), and its error names the
// connection.
func TestForkSafetyRefuses(t *testing.T) {
	bin := askrdBinary(t)
	peer := forkPeer(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "askr.toml")
	if err := os.WriteFile(conf, []byte("[worker]\nfork_safety = \"refuse\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := forkSafetyOpts(t, peer, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--cow", "--workers", "2", "--listen", freeAddr(t), "--config", conf,
		"--root", filepath.Join(repoRoot(t), "examples", "hello", "public"), "--worker-script", o.script)
	cmd.Env = append(os.Environ(), "TMPDIR="+dir, "ASKR_ADMIN_SOCKET="+filepath.Join(dir, "admin.sock"))
	cmd.Env = append(cmd.Env, o.env...)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("askrd serve with fork_safety = \"refuse\" and a connection in the template: %v; want exit status 1\n%s", err, out)
	}
	failed := logLines(string(out), "askrd failed")
	want := "fork safety: TCP connection to " + peer + " open in the template"
	if len(failed) != 1 || !strings.Contains(failed[0], "CoW template") || !strings.Contains(failed[0], want) ||
		!strings.Contains(failed[0], `(worker.fork_safety = \"refuse\")`) {
		t.Errorf("askrd's error = %q; want one naming the CoW template, %q and the refusal\n%s", failed, want, out)
	}
	if strings.Contains(string(out), "askrd serving") || strings.Contains(string(out), "workers ready") {
		t.Errorf("askrd served although the template refused to fork:\n%s", out)
	}
}

// "off": nothing is looked at, nothing logged, the workers serve.
func TestForkSafetyOff(t *testing.T) {
	s := startCow(t, forkSafetyOpts(t, forkPeer(t), "[worker]\nfork_safety = \"off\"\n"))
	if r := s.get("/"); r.status != 200 || r.body != "holding the connection" {
		t.Errorf("GET / = %d %q; want 200 from a worker holding the connection", r.status, r.body)
	}
	s.stop()
	if lines := logLines(s.logs.String(), "fork safety"); len(lines) != 0 {
		t.Errorf("fork_safety = \"off\" logged %q; want nothing", lines)
	}
}

// The shipped workers close what they open while booting before askr_cow_ready(): in CoW mode
// none logs a fork safety line. (The Laravel example opens its SQLite database while booting.)
func TestShippedWorkersAreForkSafe(t *testing.T) {
	check := func(t *testing.T, s *server, path string) {
		t.Helper()
		if r := s.get(path); r.status != 200 {
			t.Errorf("GET %s = %d %.300q", path, r.status, r.body)
		}
		s.stop()
		if lines := logLines(s.logs.String(), "fork safety"); len(lines) != 0 {
			t.Errorf("the template logged %q; want no fork safety line", lines)
		}
	}
	cow := []string{"--workers", "2"}
	if !cowMode() {
		cow = append(cow, "--cow")
	}
	t.Run("Hello", func(t *testing.T) {
		s := startCow(t, opts{script: filepath.Join(repoRoot(t), "examples", "hello-worker.php"), args: []string{"--workers", "2"}})
		check(t, s, "/")
	})
	t.Run("Laravel", func(t *testing.T) {
		lvSkipWithoutPHP(t)
		s := lvStart(t, cow...)
		if r := s.send(nil, "POST", "/api/visits", nil, "Accept", "application/json"); r.status != 200 {
			t.Errorf("POST /api/visits = %d %.300s", r.status, r.body)
		}
		check(t, s.server, "/api/visits")
	})
	t.Run("Symfony", func(t *testing.T) {
		sfSkipWithoutSymfony(t)
		check(t, sfStart(t, cow...).server, "/")
	})
}
