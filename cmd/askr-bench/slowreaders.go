package main

// slow-readers: askrd's ping latency alone and beside clients that hold a large answer unread.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// goalSlowP99MS: ping p99 beside the slow readers stays under this (issue 12).
const goalSlowP99MS = 50

// pingStats are the latencies (ms) of one set of pings.
type pingStats struct {
	samples, failed int
	p50, p99, max   float64
}

// slowResult is what slowReaders measured.
type slowResult struct {
	base, slow     pingStats // alone, beside the readers
	readers, heads int
}

// slowReaders sends n pings (GET, one keep-alive connection, one after the other) alone, then
// again while `readers` clients hold GET big: each reads the head and stops reading (a 4 KiB
// receive buffer, so the kernel takes little of the answer). The readers then leave.
func slowReaders(base, big, ping string, readers, n int) (slowResult, error) {
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		return slowResult{}, fmt.Errorf("refusing %q: 127.0.0.1 only", base)
	}
	addr := strings.TrimPrefix(base, "http://")
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Minute) // a bound on both sets; pings not sent count as failed
	pings := func() pingStats {
		var lat []float64
		var s pingStats
		for range n {
			start := time.Now()
			if start.After(deadline) {
				s.failed++
				continue
			}
			resp, err := c.Get(base + ping)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				s.failed++
				continue
			}
			lat = append(lat, ms(time.Since(start)))
		}
		slices.Sort(lat)
		s.samples, s.p50, s.p99, s.max = len(lat), pct(lat, 50), pct(lat, 99), pct(lat, 100)
		return s
	}
	r := slowResult{readers: readers}
	r.base = pings()

	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range readers {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return r, fmt.Errorf("slow reader: %w", err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", big, addr)
	}
	// The pings start once every reader has its head: with too few free workers some never do.
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if resp, err := http.ReadResponse(bufio.NewReaderSize(c, 4096), nil); err == nil && resp.StatusCode == 200 {
			r.heads++
		}
	}
	r.slow = pings()
	return r, nil
}

// slowReadersScenario runs slowReaders on askrd in worker, CoW and per-request mode, on
// internal/integration/testdata/slowreader (the app of TestSlowReaders).
func (b *bench) slowReadersScenario() error {
	dir := filepath.Join(b.repo, "internal", "integration", "testdata", "slowreader")
	workers := []string{"--workers", fmt.Sprint(b.cfg.slowWorkers)}
	for _, mode := range []string{"normal", "cow", "per-request"} {
		name := "slow-readers-" + mode
		o := askrdOpts{root: filepath.Join(dir, "public"), script: filepath.Join(dir, "worker.php"), flags: slices.Concat(workers, cowFlags(mode))}
		if mode == "per-request" {
			o.script = ""
		}
		s, err := b.startAskrd(name, o)
		if err != nil {
			return err
		}
		if _, err := check(s.url+"/ping.php", name+" / askrd"); err != nil {
			return err
		}
		logf("%s: %d pings alone, then beside %d clients holding 4 MiB each unread", name, b.cfg.slowPings, b.cfg.slowReaders)
		before := snapshot(pids(s.procs()))
		r, err := slowReaders(s.url, "/big.php", "/ping.php", b.cfg.slowReaders, b.cfg.slowPings)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		f := foreignPct(before, snapshot(pids(s.procs())))
		if f >= disturbedPct {
			logf("%s: WARNING: other processes used %d%% of the CPUs during the run", name, f)
		}
		if err := alive(s); err != nil {
			return err
		}
		logf("%s: ping p99 %s alone, %s beside the slow readers (%d/%d heads)", name, fmtMS(r.base.p99), fmtMS(r.slow.p99), r.heads, r.readers)
		b.stopAll()
		b.res.slowRows = append(b.res.slowRows, slowRow(mode, r, f))
	}
	return nil
}

// slowRow is one mode's line of the slow-readers table.
func slowRow(mode string, r slowResult, foreign int) string {
	label := map[string]string{"normal": "askrd (worker mode)", "cow": "askrd --cow", "per-request": "askrd per-request mode"}[mode]
	ok := r.slow.p99 < goalSlowP99MS && r.slow.failed == 0 // false for NaN (no sample)
	return tableRow(label, fmtMS(r.base.p50), fmtMS(r.base.p99), fmtMS(r.slow.p50), fmtMS(r.slow.p99), fmtMS(r.slow.max),
		fmt.Sprintf("%d/%d", r.heads, r.readers), fmt.Sprint(r.slow.failed), fmt.Sprintf("%d%%", foreign), met(ok))
}

// alive: the askrd of s still runs.
func alive(s *server) error {
	if x, err := s.askrd.Exited(); x {
		return fmt.Errorf("%s: askrd exited (%v) during the run:\n%s", s.name, err, tail(s.askrd.Output(), 30))
	}
	return nil
}

// cowFlags are the serve flags of a mode: "cow" → --cow.
func cowFlags(mode string) []string {
	if mode == "cow" {
		return []string{"--cow"}
	}
	return nil
}
