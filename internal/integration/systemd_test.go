package integration

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeNotify is a NOTIFY_SOCKET that records what askrd tells systemd.
type fakeNotify struct {
	path string
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []notifyMsg
}

type notifyMsg struct {
	at   time.Time
	text string
}

func newFakeNotify(t *testing.T) *fakeNotify {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &fakeNotify{path: path, conn: conn}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			for _, line := range strings.Split(string(buf[:k]), "\n") {
				n.msgs = append(n.msgs, notifyMsg{time.Now(), line})
			}
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return n
}

// first returns when a message starting with prefix first arrived, or the zero time.
func (n *fakeNotify) first(prefix string) time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.msgs {
		if strings.HasPrefix(m.text, prefix) {
			return m.at
		}
	}
	return time.Time{}
}

func (n *fakeNotify) all(prefix string) []notifyMsg {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []notifyMsg
	for _, m := range n.msgs {
		if strings.HasPrefix(m.text, prefix) {
			out = append(out, m)
		}
	}
	return out
}

func (n *fakeNotify) wait(t *testing.T, prefix string, timeout time.Duration) time.Time {
	t.Helper()
	var at time.Time
	if !poll(timeout, func() bool { at = n.first(prefix); return !at.IsZero() }) {
		t.Fatalf("no %q notification within %v; got %v", prefix, timeout, n.all(""))
	}
	return at
}

// statusFields is the end of the STATUS= line.
var statusFields = regexp.MustCompile(` rps=[0-9]+\.[0-9] slow=0$`)

// READY only once workers serve, EXTEND_TIMEOUT_USEC during a slow boot, a STATUS line that
// follows the load, STOPPING at SIGTERM, and nothing of systemd's in the workers' environment.
func TestNotifyReadyStatusStopping(t *testing.T) {
	n := newFakeNotify(t)
	start := time.Now()
	s := startAskrd(t, opts{args: []string{"--workers", "1"}, noReady: true,
		env: []string{"NOTIFY_SOCKET=" + n.path, "ASKR_TEST_BOOT_SLEEP=6", "WATCHDOG_USEC=60000000"}})
	extend := n.wait(t, "EXTEND_TIMEOUT_USEC=", 10*time.Second)
	ready := n.wait(t, "READY=1", 30*time.Second)
	if ready.Sub(start) < 6*time.Second || !extend.Before(ready) {
		t.Errorf("READY=1 after %v (EXTEND_TIMEOUT_USEC after %v); want READY only once the worker's 6 s boot ended",
			ready.Sub(start), extend.Sub(start))
	}
	if r := s.get("/pid"); r.status != 200 {
		t.Errorf("right after READY=1: %d; want a worker serving", r.status)
	}
	d := s.dump("GET", "/dump", nil)
	for k := range d.Server {
		if k == "NOTIFY_SOCKET" || strings.HasPrefix(k, "LISTEN_") || strings.HasPrefix(k, "WATCHDOG_") {
			t.Errorf("worker environment has %s", k)
		}
	}
	// STATUS follows the load.
	done := make(chan response, 1)
	go func() { done <- s.get("/sleep?s=2") }()
	if !poll(5*time.Second, func() bool {
		for _, m := range n.all("STATUS=") {
			if strings.Contains(m.text, "busy=1") {
				return true
			}
		}
		return false
	}) {
		t.Errorf("no STATUS with busy=1 during a slow request: %v", n.all("STATUS="))
	}
	<-done
	if !poll(5*time.Second, func() bool {
		st := n.all("STATUS=")
		return len(st) > 0 && strings.Contains(st[len(st)-1].text, "busy=0") && strings.Contains(st[len(st)-1].text, "mode=")
	}) {
		t.Errorf("STATUS did not return to busy=0: %v", n.all("STATUS="))
	}
	// As php-fpm's, it ends with the requests/s and the slow requests (none here).
	if st := n.all("STATUS="); len(st) == 0 || !statusFields.MatchString(st[len(st)-1].text) {
		t.Errorf("STATUS lines %v; want the last to end with rps=N.N slow=0", st)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	n.wait(t, "STOPPING=1", 10*time.Second)
	<-s.done
}

// WATCHDOG=1 comes only while a worker answers: it stops while the only worker is wedged and comes
// back when it is free again.
func TestWatchdogFollowsHealth(t *testing.T) {
	n := newFakeNotify(t)
	s := startAskrd(t, opts{args: []string{"--workers", "1", "--request-timeout", "0"},
		env: []string{"NOTIFY_SOCKET=" + n.path, "WATCHDOG_USEC=1000000"}})
	watchdogPausesWhileWedged(t, s, n, func(mark string) string { return "/sleep?s=4&mark=" + mark })
}

// watchdogPausesWhileWedged wedges the only PHP process of s with the request path(marker), which
// creates the file marker when it starts and then runs 4 s: WATCHDOG=1 stops while it runs (after
// at most one interval of 1 s) and resumes once it is free again.
func watchdogPausesWhileWedged(t *testing.T, s *server, n *fakeNotify, path func(marker string) string) {
	t.Helper()
	n.wait(t, "WATCHDOG=1", 5*time.Second)
	wedged := make(chan response, 1)
	mark := filepath.Join(t.TempDir(), "running")
	go func() { wedged <- s.get(path(url.QueryEscape(mark))) }()
	if !poll(5*time.Second, func() bool { _, err := os.Stat(mark); return err == nil }) {
		t.Fatal("the wedging request never started")
	}
	wedgeStart := time.Now()
	r := <-wedged
	wedgeEnd := time.Now()
	if r.status != 200 {
		t.Fatalf("wedging request: %d", r.status)
	}
	for _, m := range n.all("WATCHDOG=1") {
		if m.at.After(wedgeStart.Add(1500*time.Millisecond)) && m.at.Before(wedgeEnd) {
			t.Errorf("WATCHDOG=1 at +%v while the only process was wedged", m.at.Sub(wedgeStart).Round(time.Millisecond))
		}
	}
	if !poll(5*time.Second, func() bool {
		w := n.all("WATCHDOG=1")
		return len(w) > 0 && w[len(w)-1].at.After(wedgeEnd)
	}) {
		t.Errorf("WATCHDOG=1 did not resume after the process was free again")
	}
	s.waitLog("health check failed", time.Second)
}

// systemd passes the sockets in any order: askrd finds them by name.
func TestSocketActivationByName(t *testing.T) {
	needSocketActivate(t)
	cert, key := writeCert(t)
	bin := askrdBinary(t)
	root := repoRoot(t)
	conf := filepath.Join(t.TempDir(), "askr.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("[server]\nlisten = \"127.0.0.1:1\"\nroot = %q\nworkers = 1\n[worker]\nscript = %q\n[tls]\ncert = %q\nkey = %q\n",
		filepath.Join(root, "examples", "hello", "public"), filepath.Join(root, "internal", "integration", "testdata", "worker.php"), cert, key)), 0o644)
	tlsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, order := range [][2]string{{"http", "https"}, {"https", "http"}} {
		addrs := map[string]string{"http": freeAddr(t), "https": freeAddr(t)}
		cmd := exec.Command("systemd-socket-activate", "-l", addrs[order[0]], "-l", addrs[order[1]],
			"--fdname="+order[0]+":"+order[1], bin, "--config", conf)
		s := runCommand(t, cmd)
		logs := s.logs
		// systemd-socket-activate starts askrd at the first connection.
		var body string
		if !poll(30*time.Second, func() bool {
			resp, err := http.Get("http://" + addrs["http"] + "/hello.txt")
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			return resp.StatusCode == 200
		}) {
			t.Fatalf("order %v: plain HTTP on the http socket never answered:\n%s", order, logs.String())
		}
		if body != "static hello\n" {
			t.Errorf("order %v: http socket answered %q", order, body)
		}
		if resp, err := http.Get("http://" + addrs["http"] + "/dump"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), `"HTTPS":"on"`) {
				t.Errorf("order %v: plain HTTP on the http socket told PHP HTTPS=on", order)
			}
		}
		s.waitLog("workers ready", 30*time.Second)
		resp, err := tlsClient.Get("https://" + addrs["https"] + "/pid")
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("order %v: HTTPS on the https socket: %v %v", order, err, resp)
		} else {
			resp.Body.Close()
		}
		if !strings.Contains(logs.String(), "listen, https_listen, http_redirect and acme.http from the configuration are not used") {
			t.Errorf("order %v: the overridden listen was not reported", order)
		}
		s.stop()
		if s.err != nil {
			t.Errorf("order %v: askrd exit: %v", order, s.err)
		}
	}
}

// SIGHUP in worker mode rolls the workers over to the current code with no failed request; a
// version that fails to boot leaves the old workers serving.
func TestRollingReload(t *testing.T) {
	if cowMode() {
		t.Skip("in CoW mode SIGHUP drains and exits (TestCowSIGHUPDrains)")
	}
	vf := filepath.Join(t.TempDir(), "version")
	os.WriteFile(vf, []byte("v1"), 0o644)
	s := startAskrd(t, opts{args: []string{"--workers", "2"}, env: []string{"ASKR_TEST_VERSION_FILE=" + vf}})
	load := s.startLoad("/version", 4, 50000)
	allVersion := func(v string) bool {
		for range 8 {
			if s.get("/version").body != v {
				return false
			}
		}
		return true
	}
	os.WriteFile(vf, []byte("v2"), 0o644)
	s.cmd.Process.Signal(syscall.SIGHUP)
	if !poll(30*time.Second, func() bool { return allVersion("v2") }) {
		t.Errorf("responses did not switch to v2 after SIGHUP")
	}
	os.WriteFile(vf, []byte("broken"), 0o644)
	s.cmd.Process.Signal(syscall.SIGHUP)
	s.waitLog("reload failed; the old workers go on serving", 30*time.Second)
	if !allVersion("v2") {
		t.Errorf("after a failed reload the responses are not all v2")
	}
	load.Stop()
	t.Logf("%d requests during two reloads, %d failed", load.ok.Load(), load.failed.Load())
	if load.failed.Load() != 0 {
		t.Errorf("%d requests failed during the reloads; want 0", load.failed.Load())
	}
	if s.cmd.ProcessState != nil {
		t.Errorf("askrd exited on SIGHUP")
	}
}

// In CoW mode SIGHUP drains and exits, like SIGTERM.
func TestCowSIGHUPDrains(t *testing.T) {
	s := startCow(t, opts{args: []string{"--workers", "1"}})
	s.cmd.Process.Signal(syscall.SIGHUP)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("askrd --cow did not exit on SIGHUP")
	}
	if s.err != nil {
		t.Errorf("askrd --cow exit on SIGHUP: %v; want 0", s.err)
	}
}

// A socket unit with two ListenStream= (0.0.0.0:443 and [::]:443, say) passes two sockets of one
// name; askrd serves one and closes its copy of the other, whose connections then wait
// unanswered: it says so, as it does of a socket of an unknown name.
func TestSocketActivationDuplicateName(t *testing.T) {
	needSocketActivate(t)
	root := repoRoot(t)
	conf := filepath.Join(t.TempDir(), "askr.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("[server]\nlisten = \"127.0.0.1:1\"\nroot = %q\nworkers = 1\n",
		filepath.Join(root, "examples", "hello", "public"))), 0o644)
	first, second := freeAddr(t), freeAddr(t)
	s := runCommand(t, exec.Command("systemd-socket-activate", "-l", first, "-l", second, "--fdname=http:http", askrdBinary(t), "--config", conf))
	if !poll(30*time.Second, func() bool {
		resp, err := http.Get("http://" + first + "/hello.txt")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	}) {
		t.Fatalf("the first http socket never answered:\n%s", s.logs.String())
	}
	s.waitLog(`names="http (all but the first)"`, 10*time.Second)
}
