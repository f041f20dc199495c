package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Issue 12, item 1: clients that read a large response slowly must not hold the workers. With 4
// workers, 8 clients that take the head of a 4 MiB answer and then stop reading (a receive
// buffer of 4 KiB, so the kernel holds little of it): all 8 answers are produced by PHP at once
// (askrd spools what the clients have not taken), pings are answered all along, and 4 pings that
// each take 300 ms are served together by the 4 workers while the slow readers still hold their
// connections. Then half of the readers read their answer to the end (whole and in order) and
// half leave: no spool file is left open or on disk.
func TestSlowReaders(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "internal", "integration", "testdata", "slowreader")
	slowReaders(t, startAskrd(t, opts{root: filepath.Join(dir, "public"), script: filepath.Join(dir, "worker.php"),
		args: []string{"--workers", "4"}}))
}

// TestSlowReadersPerRequest is TestSlowReaders in per-request mode (FastCGI).
func TestSlowReadersPerRequest(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "internal", "integration", "testdata", "slowreader")
	slowReaders(t, startAskrd(t, opts{root: filepath.Join(dir, "public"), perRequest: true,
		args: []string{"--workers", "4"}}))
}

func slowReaders(t *testing.T, s *server) {
	const readers, lines, lineSize = 8, 4096, 1024
	askrd := s.cmd.Process.Pid

	// Pings all along: each one answered within a generous bound (liveness, not speed).
	stopPings := make(chan struct{})
	var pings sync.WaitGroup
	var pingMu sync.Mutex
	var pingErrs []string
	pingCount := 0
	pings.Add(1)
	go func() {
		defer pings.Done()
		c := &http.Client{Timeout: 5 * time.Second}
		for {
			select {
			case <-stopPings:
				return
			case <-time.After(20 * time.Millisecond):
			}
			start := time.Now()
			resp, err := c.Get(s.URL + "/ping.php")
			took := time.Since(start)
			pingMu.Lock()
			pingCount++
			switch {
			case err != nil:
				pingErrs = append(pingErrs, err.Error())
			case resp.StatusCode != 200 || took > 2*time.Second:
				pingErrs = append(pingErrs, fmt.Sprintf("status %d after %v", resp.StatusCode, took))
			}
			pingMu.Unlock()
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}()
	defer func() {
		select {
		case <-stopPings:
		default:
			close(stopPings)
		}
		pings.Wait()
	}()

	// The slow readers: they read the head, then stall.
	markers := t.TempDir()
	dialer := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	type reader struct {
		conn net.Conn
		resp *http.Response
		err  error
	}
	rd := make([]reader, readers)
	var heads sync.WaitGroup
	for i := range rd {
		conn, err := dialer.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		rd[i].conn = conn
		fmt.Fprintf(conn, "GET /big.php?marker=%s HTTP/1.1\r\nHost: x\r\n\r\n", filepath.Join(markers, strconv.Itoa(i)))
		heads.Add(1)
		go func() {
			defer heads.Done()
			conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			rd[i].resp, rd[i].err = http.ReadResponse(bufio.NewReaderSize(conn, 4096), nil)
		}()
	}
	heads.Wait()
	for i, r := range rd {
		if r.err != nil || r.resp.StatusCode != 200 {
			t.Fatalf("slow reader %d: head %v, %v; want 200", i, r.resp, r.err)
		}
	}
	// PHP has produced all 8 answers (with 4 workers, only if the first 4 did not hold theirs).
	produced := func() int {
		ents, _ := os.ReadDir(markers)
		return len(ents)
	}
	if !poll(20*time.Second, func() bool { return produced() == readers }) {
		t.Fatalf("PHP produced %d of the %d answers while their clients stalled; want all", produced(), readers)
	}
	if n := spoolFiles(t, askrd); n == 0 {
		t.Errorf("no response spool file is open while 8 clients stall on 4 MiB each; want some")
	}
	// Every worker is free: 4 pings of 300 ms each, sent together, are served by 4 processes at once.
	type pong struct {
		pid  string
		took time.Duration
		err  error
	}
	pongs := make(chan pong, 4)
	for range 4 {
		go func() {
			start := time.Now()
			resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(s.URL + "/ping.php?ms=300")
			if err != nil {
				pongs <- pong{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			pongs <- pong{string(b), time.Since(start), err}
		}()
	}
	pids := map[string]bool{}
	for range 4 {
		p := <-pongs
		if p.err != nil || p.took > 2*time.Second {
			t.Errorf("a 300 ms ping beside the slow readers: %v after %v; want an answer within 2s", p.err, p.took)
		}
		pids[p.pid] = true
	}
	if len(pids) != 4 {
		t.Errorf("4 concurrent pings were served by %d processes (%v); want all 4 workers free", len(pids), pids)
	}
	close(stopPings)
	pings.Wait()
	pingMu.Lock()
	if pingCount == 0 || len(pingErrs) > 0 {
		t.Errorf("%d pings beside the slow readers, failed or slow: %v; want all answered within 2s", pingCount, pingErrs)
	}
	pingMu.Unlock()

	// Half read to the end, half leave.
	want := make([]byte, 0, lines*lineSize)
	for i := range lines {
		want = append(want, fmt.Sprintf("%-1023s\n", strconv.Itoa(i))...)
	}
	want = []byte(strings.ReplaceAll(string(want), " ", "."))
	for i, r := range rd {
		if i%2 == 1 {
			r.conn.Close()
			continue
		}
		r.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(r.resp.Body)
		if err != nil || string(got) != string(want) {
			t.Errorf("slow reader %d read %d bytes (%v); want the %d bytes PHP wrote, in order", i, len(got), err, len(want))
		}
	}
	if !poll(10*time.Second, func() bool { return spoolFiles(t, askrd) == 0 }) {
		t.Errorf("%d response spool files still open after the slow readers finished or left; want 0", spoolFiles(t, askrd))
	}
	ents, err := os.ReadDir(s.tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "askr-response-") {
			t.Errorf("spool file %s left in askrd's temporary directory", e.Name())
		}
	}
}

// spoolFiles counts the response spool files askrd (pid) has open; they are unlinked, so only
// /proc shows them ("…/askr-response-123 (deleted)").
func spoolFiles(t *testing.T, pid int) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("askrd's open files: %v", err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.Contains(l, "askr-response-") {
			n++
		}
	}
	return n
}

// A client that stops reading altogether is still cut off after client_timeout, its spool freed;
// it never gets the whole answer.
func TestSlowReaderCutOffByClientTimeout(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "internal", "integration", "testdata", "slowreader")
	s := startAskrd(t, opts{root: filepath.Join(dir, "public"), script: filepath.Join(dir, "worker.php"),
		args: []string{"--workers", "1"}, config: "[server]\nclient_timeout = 1\n"})
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /big.php HTTP/1.1\r\nHost: x\r\n\r\n") // and read nothing
	askrd := s.cmd.Process.Pid
	if !poll(10*time.Second, func() bool { return spoolFiles(t, askrd) > 0 }) {
		t.Fatalf("no response spool file opened for a client that reads nothing of 4 MiB")
	}
	if !poll(15*time.Second, func() bool { return spoolFiles(t, askrd) == 0 }) {
		t.Fatalf("the spool of a client that reads nothing is still open after 15s; want it cut off after client_timeout (1s)")
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	// What the kernels still hold arrives, then the cut (or a reset before even the head).
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil || n >= 4<<20 {
			t.Errorf("the cut-off client read %d bytes, error %v; want less than 4 MiB and an error (no clean end)", n, err)
		}
	}
	if r := s.get("/ping.php"); r.status != 200 {
		t.Errorf("ping after the cut-off = %d", r.status)
	}
}
