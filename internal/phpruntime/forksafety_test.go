package phpruntime

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// forkSafetyRun runs testdata/forksafety.php in php-cgi with a TCP listener and a Unix one (named
// like MySQL's) to connect to, and a stand-in for askrd's private socket; it returns the process's
// stdout, stderr and error.
func forkSafetyRun(t *testing.T, env ...string) (string, string, error) {
	t.Helper()
	bin := phpCGI(t)
	rt, remove, err := Install(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	dir := t.TempDir()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	if err := os.Mkdir(filepath.Join(dir, "askrd"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"mysqld.sock", "askrd/workers.sock"} {
		ln, err := net.Listen("unix", filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
	}
	script, _ := filepath.Abs("testdata/forksafety.php")
	cmd := exec.Command(bin)
	cmd.Env = append([]string{
		"GATEWAY_INTERFACE=CGI/1.1", "REDIRECT_STATUS=200", "REQUEST_METHOD=GET", "SCRIPT_FILENAME=" + script,
		"ASKR_RUNTIME_FILE=" + rt, "PATH=/usr/bin:/bin", "ASKR_TEST_DIR=" + dir, "ASKR_TEST_TCP=" + tcp.Addr().String(),
		"ASKR_COW_SOCKET=" + filepath.Join(dir, "askrd", "workers.sock"),
	}, env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	_, body, _ := strings.Cut(stdout.String(), "\r\n\r\n")
	return body, stderr.String(), err
}

// The check names each connection, database, alarm and handler the process holds, and nothing
// else: not listening or datagram sockets, plain files, askrd's own socket; and leaves the alarm
// pending. Closed, they are no longer reported.
func TestForkSafetyFinds(t *testing.T) {
	out, stderr, err := forkSafetyRun(t)
	if err != nil {
		t.Fatalf("php-cgi: %v\n%s\n%s", err, out, stderr)
	}
	var got struct {
		Found   []string
		Alarm   int
		After   []string
		Decoded map[string]string
		SQLite  bool
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in %q (stderr %q)", err, out, stderr)
	}
	want := []string{"TCP connection to 127.0.0.1:", "MySQL/MariaDB connection to /", "an alarm (pcntl_alarm) is pending in the template, due in 100 s",
		"a pcntl_signal() handler for SIGTERM was installed before askr_cow_ready()"}
	if got.SQLite {
		want = append(want[:2], append([]string{"SQLite database /"}, want[2:]...)...)
	}
	if len(got.Found) != len(want) {
		t.Fatalf("ForkSafety::find() = %q; want %d lines starting %q", got.Found, len(want), want)
	}
	for i, w := range want {
		if !strings.HasPrefix(got.Found[i], w) {
			t.Errorf("ForkSafety::find()[%d] = %q; want it to start with %q", i, got.Found[i], w)
		}
	}
	if got.SQLite && !strings.Contains(got.Found[2], "/app.sqlite open in the template") {
		t.Errorf("SQLite line %q does not name app.sqlite (once, not its -wal or -shm)", got.Found[2])
	}
	if !strings.Contains(got.Found[1], "/mysqld.sock open in the template: every worker will share it") {
		t.Errorf("Unix socket line %q does not name the socket's path", got.Found[1])
	}
	if got.Alarm != 100 && got.Alarm != 99 {
		t.Errorf("pcntl_alarm(0) after the check = %d; want the alarm still pending (100 s)", got.Alarm)
	}
	if len(got.After) != 0 {
		t.Errorf("ForkSafety::find() after closing everything = %q; want nothing", got.After)
	}
	wantDecoded := map[string]string{
		"0100007F:0CEA": "127.0.0.1:3306", "0A01A8C0:1538": "192.168.1.10:5432",
		"00000000000000000000000001000000:18EB": "[::1]:6379", "0000000000000000FFFF00000100007F:2382": "[::ffff:127.0.0.1]:9090",
	}
	if !reflect.DeepEqual(got.Decoded, wantDecoded) {
		t.Errorf("addresses decoded = %v; want %v", got.Decoded, wantDecoded)
	}
	if stderr != "" {
		t.Errorf("stderr = %q; want nothing (find() logs nothing, and its warnings reach no handler)", stderr)
	}
}

// ASKR_FORK_SAFETY: "refuse" logs the line and exits 1; "warn" (and unset) logs it and goes on;
// "off" does not look.
func TestForkSafetyModes(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		exit     int
		lines    int
		refusing bool
	}{{"", 0, 1, false}, {"warn", 0, 1, false}, {"refuse", 1, 2, true}, {"off", 0, 0, false}} {
		out, stderr, err := forkSafetyRun(t, "ASKR_TEST_CHECK=1", "ASKR_FORK_SAFETY="+tc.mode)
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("php-cgi: %v", err)
		}
		if code != tc.exit {
			t.Errorf("ASKR_FORK_SAFETY=%q: exit %d; want %d (stdout %q, stderr %q)", tc.mode, code, tc.exit, out, stderr)
		}
		if n := strings.Count(stderr, "askr: fork safety: "); n != tc.lines {
			t.Errorf("ASKR_FORK_SAFETY=%q: %d fork safety lines; want %d:\n%s", tc.mode, n, tc.lines, stderr)
		}
		if tc.lines > 0 && !strings.Contains(stderr, "askr: fork safety: TCP connection to 127.0.0.1:") {
			t.Errorf("ASKR_FORK_SAFETY=%q: stderr does not name the TCP connection:\n%s", tc.mode, stderr)
		}
		if got := strings.Contains(stderr, `(worker.fork_safety = "refuse")`); got != tc.refusing {
			t.Errorf("ASKR_FORK_SAFETY=%q: refusal logged = %v; want %v:\n%s", tc.mode, got, tc.refusing, stderr)
		}
		if got := strings.Contains(out, `"checked":true`); got == tc.refusing {
			t.Errorf("ASKR_FORK_SAFETY=%q: the script went on after the check = %v; want %v", tc.mode, got, !tc.refusing)
		}
	}
}

// A worker promoted to template (refork) has run its askr_on_worker_start() hooks: the handler and
// alarm they set are undone, not reported; a connection left open is, worded for a refork, and
// with "refuse" the promotion fails.
func TestForkSafetyPromoted(t *testing.T) {
	out, stderr, err := forkSafetyRun(t, "ASKR_TEST_CHECK=promoted", "ASKR_FORK_SAFETY=warn")
	if err != nil {
		t.Fatalf("promoted check: %v; stderr %q", err, stderr)
	}
	var got struct {
		Alarm   int `json:"alarm"`
		Sigterm int `json:"sigterm"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Alarm != 0 || got.Sigterm != 0 {
		t.Errorf("after the promoted check: %q; want the alarm cancelled (0) and SIGTERM back to SIG_DFL (0)", out)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "fork safety: refork: TCP connection to 127.0.0.1:") ||
		!strings.Contains(lines[0], "open in the worker promoted to template after its askr_on_worker_start() hooks") ||
		strings.Contains(stderr, "alarm") || strings.Contains(stderr, "SIGTERM") {
		t.Errorf("promoted check logged %q; want one refork line for the TCP connection, none for the alarm or the handler", stderr)
	}
	_, stderr, err = forkSafetyRun(t, "ASKR_TEST_CHECK=promoted", "ASKR_FORK_SAFETY=refuse")
	if err == nil || !strings.Contains(stderr, "the worker promoted to template does not fork its workers") {
		t.Errorf("promoted check with refuse: err %v, stderr %q; want exit 1 saying the promoted worker does not fork", err, stderr)
	}
}
