package integration

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeJournald is a journald for one test: a datagram socket that parses the native protocol
// (KEY=value lines; KEY, a little-endian 64-bit length and the bytes for a value with newlines).
type fakeJournald struct {
	conn    *net.UnixConn
	mu      sync.Mutex
	entries []map[string]string
	done    chan struct{}
}

func startFakeJournald(t *testing.T, path string) *fakeJournald {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	j := &fakeJournald{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(j.done)
		buf := make([]byte, 1<<20)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			e, err := parseNative(buf[:n])
			if err != nil {
				t.Errorf("journal entry %q: %v", buf[:n], err)
				continue
			}
			j.mu.Lock()
			j.entries = append(j.entries, e)
			j.mu.Unlock()
		}
	}()
	t.Cleanup(j.close)
	return j
}

// close stops the journald and removes its socket: askrd's next send fails.
func (j *fakeJournald) close() {
	j.conn.Close()
	<-j.done
	os.Remove(j.conn.LocalAddr().String())
}

// find returns the first entry whose MESSAGE contains substr, waiting up to 10 s for it.
func (j *fakeJournald) find(t *testing.T, substr string) map[string]string {
	t.Helper()
	var found map[string]string
	if !poll(10*time.Second, func() bool {
		j.mu.Lock()
		defer j.mu.Unlock()
		for _, e := range j.entries {
			if strings.Contains(e["MESSAGE"], substr) {
				found = e
				return true
			}
		}
		return false
	}) {
		j.mu.Lock()
		defer j.mu.Unlock()
		t.Fatalf("no journal entry with %q within 10s; entries:\n%v", substr, j.entries)
	}
	return found
}

func parseNative(b []byte) (map[string]string, error) {
	e := map[string]string{}
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("no newline after %q", b)
		}
		line := string(b[:nl])
		b = b[nl+1:]
		if k, v, ok := strings.Cut(line, "="); ok {
			e[k] = v
			continue
		}
		if len(b) < 8 {
			return nil, fmt.Errorf("field %s: no length", line)
		}
		size := binary.LittleEndian.Uint64(b)
		b = b[8:]
		if uint64(len(b)) < size+1 || b[size] != '\n' {
			return nil, fmt.Errorf("field %s: %d bytes announced, %d left", line, size, len(b))
		}
		e[line] = string(b[:size])
		b = b[size+1:]
	}
	return e, nil
}

// Under systemd (stderr is the journal's stream, $JOURNAL_STREAM), askrd logs to the journal
// natively: PHP's fatal error at priority err with the worker's pid as ASKR_PID, a warning at
// warning, askrd's own lines at info with their attributes as fields; stderr gets none of it. A
// line the journal refuses goes to stderr. askrd is built with go-systemd's journal socket moved to
// the test's fake journald.
func TestJournalNative(t *testing.T) {
	askrdBinary(t) // skips without php-cgi; builds askr.so
	dir := t.TempDir()
	sock := filepath.Join(dir, "journal.sock")
	bin := filepath.Join(dir, "askrd")
	ldflags := "-X github.com/coreos/go-systemd/v22/journal.journalSocket=" + sock
	if out, err := exec.Command("go", "build", "-race", "-ldflags", ldflags, "-o", bin, filepath.Join(repoRoot(t), "cmd", "askrd")).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.Symlink(filepath.Join(repoRoot(t), "build", "ext", "askr.so"), filepath.Join(dir, "askr.so")); err != nil {
		t.Fatal(err)
	}
	j := startFakeJournald(t, sock)

	// askrd's stderr is a pipe whose device and inode $JOURNAL_STREAM names, as systemd's would be.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(w.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	args := []string{"serve", "--listen", addr, "--root", filepath.Join(repoRoot(t), "examples", "hello", "public"),
		"--worker-script", filepath.Join(repoRoot(t), "internal", "integration", "testdata", "worker.php"), "--workers", "1"}
	if cowMode() {
		args = append(args, "--cow")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir(), fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
	s := &server{t: t, URL: "http://" + addr, Addr: addr, cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.logs, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	copied := make(chan struct{})
	go func() { io.Copy(s.logs, r); r.Close(); close(copied) }()
	go func() { s.err = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.stop()
		<-copied
		if t.Failed() {
			t.Logf("askrd's stderr:\n%s", s.logs.String())
		}
	})

	ready := j.find(t, "workers ready")
	for k, want := range map[string]string{"PRIORITY": "6", "SYSLOG_IDENTIFIER": "askrd", "ASKR_READY": "1"} {
		if ready[k] != want {
			t.Errorf("'workers ready' entry: %s=%q; want %q (entry %v)", k, ready[k], want, ready)
		}
	}
	if strings.Contains(ready["MESSAGE"], "time=") || !strings.HasPrefix(ready["MESSAGE"], `level=INFO msg="workers ready`) {
		t.Errorf("MESSAGE=%q; want the text handler's line without the time", ready["MESSAGE"])
	}
	mode := "worker"
	if cowMode() {
		mode = "cow"
	}
	if e := j.find(t, "askrd serving"); e["ASKR_LISTEN"] != addr || e["ASKR_MODE"] != mode {
		t.Errorf("'askrd serving' entry: ASKR_LISTEN=%q ASKR_MODE=%q; want %s, %s (entry %v)", e["ASKR_LISTEN"], e["ASKR_MODE"], addr, mode, e)
	}
	pid := strconv.Itoa(pidOf(t, s))
	if got := s.get("/warning"); got.body != "warned" {
		t.Errorf("GET /warning = %d %q", got.status, got.body)
	}
	s.get("/fatal")
	for substr, prio := range map[string]string{"PHP Warning:  Undefined variable $undefinedOnPurpose": "4", "PHP Fatal error:  Allowed memory size": "3"} {
		e := j.find(t, substr)
		if e["PRIORITY"] != prio || e["ASKR_PID"] != pid || e["ASKR_WORKER"] != "worker.php" {
			t.Errorf("entry of %q: PRIORITY=%q ASKR_PID=%q ASKR_WORKER=%q; want %s, %s (the worker), worker.php",
				substr, e["PRIORITY"], e["ASKR_PID"], e["ASKR_WORKER"], prio, pid)
		}
	}
	if logs := s.logs.String(); strings.Contains(logs, "level=") {
		t.Errorf("askrd wrote log lines to stderr while the journal took them:\n%s", logs)
	}

	// The journal goes away: the next lines are written to stderr, with the journal's error.
	j.close()
	if got := s.get("/warning"); got.body != "warned" {
		t.Errorf("GET /warning = %d %q", got.status, got.body)
	}
	s.waitLog("journal_error=", 10*time.Second)
	if !regexp.MustCompile(`(?m)^<4>time=\S+ level=WARN msg="PHP Warning:  Undefined variable \$undefinedOnPurpose`).MatchString(s.logs.String()) {
		t.Errorf("the warning the journal refused is not on stderr:\n%s", s.logs.String())
	}
}
