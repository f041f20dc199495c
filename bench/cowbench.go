//go:build ignore

// cowbench: the measuring half of bench/run.sh's CoW scenarios (bench/run.sh builds it with
// `go build -o … bench/cowbench.go`; the ignore tag keeps it out of ./...).
//
//	cowbench respawn -url http://127.0.0.1:PORT/api/json -askrd PID [-n 30] [-timeout 10s]
//	    n times: read the worker's pid from the JSON route, SIGKILL that worker (only a php-cgi
//	    descendant of askrd PID), then poll the route back to back until a 200 from a new pid
//	    arrives. Latency = kill → that response. Prints "key value" lines.
//	cowbench load -url URL -n TOTAL [-c 16] [-H "Name: value"] [-max 60s]
//	    TOTAL GETs of URL from c keep-alive connections (stops early at -max). Prints "key value".
//	cowbench mem -askrd PID
//	    the php-cgi descendants of askrd PID (found through /proc/*/stat ppid) and their memory from
//	    /proc/PID/smaps_rollup; askrd's own RSS. Prints "key value" lines, sizes in KiB.
//	cowbench slowreaders -url http://127.0.0.1:PORT -big /big.php -ping /ping.php [-readers 8] [-n 200]
//	    n pings (GET, one keep-alive connection, one after the other) alone, then again while
//	    `readers` clients hold GET big: each reads the head and stops reading (a 4 KiB receive
//	    buffer, so the kernel takes little of the answer). Latencies of both sets; the readers then
//	    leave. Prints "key value" lines (base_* alone, slow_* beside the readers).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/askr-php/askr/internal/proc"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: cowbench respawn|mem …")
	}
	switch os.Args[1] {
	case "respawn":
		respawn(os.Args[2:])
	case "load":
		load(os.Args[2:])
	case "mem":
		mem(os.Args[2:])
	case "slowreaders":
		slowReaders(os.Args[2:])
	default:
		fail("unknown command %q", os.Args[1])
	}
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "cowbench: "+format+"\n", a...)
	os.Exit(1)
}

// ---------------------------------------------------------------------------------------------
// processes

type process struct {
	pid, ppid int
	comm      string
}

// procs reads pid, parent and command name of every process.
func procs() map[int]process {
	out := map[int]process{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		st, err := proc.ReadStat(pid)
		if err != nil {
			continue // gone meanwhile
		}
		out[pid] = process{pid: pid, ppid: st.PPID, comm: st.Comm}
	}
	return out
}

// descendants returns the processes below root (not root itself), parents before children.
func descendants(all map[int]process, root int) []process {
	children := map[int][]int{}
	for _, p := range all {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var out []process
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		kids := children[pid]
		slices.Sort(kids)
		for _, k := range kids {
			out = append(out, all[k])
			queue = append(queue, k)
		}
	}
	return out
}

// isWorkerOf: pid is a php-cgi process below askrd.
func isWorkerOf(pid, askrd int) bool {
	for _, p := range descendants(procs(), askrd) {
		if p.pid == pid {
			return p.comm == "php-cgi"
		}
	}
	return false
}

// ---------------------------------------------------------------------------------------------
// respawn

func respawn(args []string) {
	fs := flag.NewFlagSet("respawn", flag.ExitOnError)
	url := fs.String("url", "", "the JSON route that answers {\"pid\": …} (127.0.0.1 only)")
	askrd := fs.Int("askrd", 0, "askrd's pid: only its php-cgi descendants are killed")
	n := fs.Int("n", 30, "kills")
	timeout := fs.Duration("timeout", 10*time.Second, "bound on one respawn")
	settle := fs.Duration("settle", 50*time.Millisecond, "pause between a respawn and the next kill")
	fs.Parse(args)
	if !strings.HasPrefix(*url, "http://127.0.0.1:") {
		fail("refusing %q: 127.0.0.1 only", *url)
	}
	if *askrd <= 0 {
		fail("-askrd PID is required")
	}
	// Keep-alive connections, as a browser or a proxy in front of askrd would have.
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
	get := func() (int, int, error) {
		resp, err := client.Get(*url)
		if err != nil {
			return 0, 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return resp.StatusCode, 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, 0, nil
		}
		var v struct {
			PID int `json:"pid"`
		}
		if err := json.Unmarshal(body, &v); err != nil || v.PID <= 0 {
			return resp.StatusCode, 0, fmt.Errorf("no pid in %.200q", body)
		}
		return resp.StatusCode, v.PID, nil
	}

	var lat, first []float64 // ms: kill → new pid's 200; kill → first answer of any kind
	failed, polls, non200, neterr, timeouts := 0, 0, 0, 0, 0
	deadline := time.Now().Add(time.Duration(*n) * (*timeout + time.Second))
	for i := 0; i < *n && time.Now().Before(deadline); i++ {
		// the current worker (a 200 from it; retried briefly if the pool is still settling)
		old := 0
		for t0 := time.Now(); time.Since(t0) < *timeout; {
			if code, pid, err := get(); err == nil && code == http.StatusOK {
				old = pid
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if old == 0 {
			fail("no 200 with a pid from %s within %v", *url, *timeout)
		}
		if !isWorkerOf(old, *askrd) {
			fail("pid %d is not a php-cgi descendant of askrd %d; not killing it", old, *askrd)
		}
		start := time.Now()
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			fail("kill %d: %v", old, err)
		}
		got := false
		firstSeen := false
		for time.Since(start) < *timeout {
			code, pid, err := get()
			polls++
			if !firstSeen && (err == nil || code != 0) {
				firstSeen = true
				first = append(first, ms(time.Since(start)))
			}
			switch {
			case err != nil && code == 0:
				neterr++
			case code != http.StatusOK:
				non200++
			case pid != old:
				lat = append(lat, ms(time.Since(start)))
				got = true
			}
			if got {
				break
			}
		}
		if !got {
			failed++
			timeouts++
		}
		time.Sleep(*settle)
	}
	slices.Sort(lat)
	slices.Sort(first)
	fmt.Printf("samples %d\n", len(lat))
	fmt.Printf("failed %d\n", failed)
	fmt.Printf("p50_ms %.3f\n", pct(lat, 50))
	fmt.Printf("p99_ms %.3f\n", pct(lat, 99))
	fmt.Printf("min_ms %.3f\n", pct(lat, 0))
	fmt.Printf("max_ms %.3f\n", pct(lat, 100))
	fmt.Printf("mean_ms %.3f\n", mean(lat))
	fmt.Printf("first_p50_ms %.3f\n", pct(first, 50))
	fmt.Printf("polls %d\n", polls)
	fmt.Printf("non200 %d\n", non200)
	fmt.Printf("neterr %d\n", neterr)
	fmt.Printf("timeouts %d\n", timeouts)
	all := make([]string, len(lat))
	for i, v := range lat {
		all[i] = strconv.FormatFloat(v, 'f', 2, 64)
	}
	fmt.Printf("all_ms %s\n", strings.Join(all, ","))
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// pct: nearest-rank percentile of sorted v (0 → min, 100 → max); NaN when empty.
func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	r := int(math.Ceil(p / 100 * float64(len(v))))
	return v[max(r, 1)-1]
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// ---------------------------------------------------------------------------------------------
// load

func load(args []string) {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	url := fs.String("url", "", "page to GET (127.0.0.1 only)")
	total := fs.Int64("n", 1000, "requests in all")
	conns := fs.Int("c", 16, "concurrent connections")
	header := fs.String("H", "", "one extra request header, \"Name: value\"")
	maxDur := fs.Duration("max", 60*time.Second, "stop after this long even if n is not reached")
	fs.Parse(args)
	if !strings.HasPrefix(*url, "http://127.0.0.1:") {
		fail("refusing %q: 127.0.0.1 only", *url)
	}
	hname, hvalue, _ := strings.Cut(*header, ":")
	tr := &http.Transport{MaxIdleConnsPerHost: *conns, DisableCompression: true}
	client := &http.Client{Timeout: 30 * time.Second, Transport: tr}
	var next, ok, non2xx, errs atomic.Int64
	deadline := time.Now().Add(*maxDur)
	start := time.Now()
	var wg sync.WaitGroup
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= *total && time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodGet, *url, nil)
				if hname != "" {
					req.Header.Set(strings.TrimSpace(hname), strings.TrimSpace(hvalue))
				}
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 200 && resp.StatusCode < 400 {
					ok.Add(1)
				} else {
					non2xx.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	done := ok.Load() + non2xx.Load() + errs.Load()
	fmt.Printf("requests %d\n", done)
	fmt.Printf("ok %d\n", ok.Load())
	fmt.Printf("non2xx %d\n", non2xx.Load())
	fmt.Printf("errors %d\n", errs.Load())
	fmt.Printf("seconds %.2f\n", secs)
	fmt.Printf("rps %.0f\n", float64(done)/secs)
}

// ---------------------------------------------------------------------------------------------
// mem

func mem(args []string) {
	fs := flag.NewFlagSet("mem", flag.ExitOnError)
	askrd := fs.Int("askrd", 0, "askrd's pid")
	fs.Parse(args)
	if *askrd <= 0 {
		fail("-askrd PID is required")
	}
	all := procs()
	if _, ok := all[*askrd]; !ok {
		fail("no process %d", *askrd)
	}
	// php-cgi descendants; a template is one whose children include php-cgi processes
	var php []process
	parentOfPHP := map[int]bool{}
	for _, p := range descendants(all, *askrd) {
		if p.comm == "php-cgi" {
			php = append(php, p)
			parentOfPHP[p.ppid] = true
		}
	}
	var total, tmpl, workers rollup
	nTemplates, nWorkers := 0, 0
	var cpu []float64 // ms of CPU each worker has used (how evenly the load was spread)
	for _, p := range php {
		r, err := readRollup(p.pid)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || !proc.Alive(p.pid) {
				continue // exited meanwhile (a zombie's smaps_rollup is empty)
			}
			fail("%v", err)
		}
		total.add(r)
		if parentOfPHP[p.pid] {
			nTemplates++
			tmpl.add(r)
		} else {
			nWorkers++
			workers.add(r)
			if t, err := cpuMS(p.pid); err == nil {
				cpu = append(cpu, t)
			}
		}
	}
	self, err := readRollup(*askrd)
	if err != nil {
		fail("%v", err)
	}
	fmt.Printf("php_procs %d\n", nTemplates+nWorkers)
	fmt.Printf("templates %d\n", nTemplates)
	fmt.Printf("workers %d\n", nWorkers)
	fmt.Printf("total_pss_kb %d\n", total.pss)
	fmt.Printf("total_rss_kb %d\n", total.rss)
	fmt.Printf("total_private_kb %d\n", total.private)
	fmt.Printf("template_pss_kb %d\n", tmpl.pss)
	fmt.Printf("workers_pss_kb %d\n", workers.pss)
	fmt.Printf("workers_private_kb %d\n", workers.private)
	slices.Sort(cpu)
	fmt.Printf("worker_cpu_min_ms %.0f\n", pct(cpu, 0))
	fmt.Printf("worker_cpu_max_ms %.0f\n", pct(cpu, 100))
	fmt.Printf("askrd_rss_kb %d\n", self.rss)
	fmt.Printf("askrd_pss_kb %d\n", self.pss)
}

// cpuMS: user + system CPU time of pid, in ms (the clock tick is 100 Hz on Linux).
func cpuMS(pid int) (float64, error) {
	st, err := proc.ReadStat(pid)
	if err != nil {
		return 0, err
	}
	return float64(st.UTime+st.STime) * 10, nil
}

type rollup struct{ rss, pss, private int64 } // KiB

func (r *rollup) add(o rollup) { r.rss += o.rss; r.pss += o.pss; r.private += o.private }

func readRollup(pid int) (rollup, error) {
	m, err := proc.ReadMemory(pid)
	if err != nil {
		return rollup{}, err
	}
	return rollup{rss: m.Rss >> 10, pss: m.Pss >> 10, private: m.Private() >> 10}, nil
}

// ---------------------------------------------------------------------------------------------
// slow readers

func slowReaders(args []string) {
	fs := flag.NewFlagSet("slowreaders", flag.ExitOnError)
	base := fs.String("url", "", "askrd's base URL (127.0.0.1 only)")
	big := fs.String("big", "/big.php", "path of the large answer the slow readers ask for")
	ping := fs.String("ping", "/ping.php", "path of the ping")
	readers := fs.Int("readers", 8, "slow readers")
	n := fs.Int("n", 200, "pings per set")
	fs.Parse(args)
	if !strings.HasPrefix(*base, "http://127.0.0.1:") {
		fail("refusing %q: 127.0.0.1 only", *base)
	}
	addr := strings.TrimPrefix(*base, "http://")
	client := &http.Client{Timeout: 10 * time.Second}
	pings := func(prefix string) {
		var lat []float64
		failed := 0
		for range *n {
			start := time.Now()
			resp, err := client.Get(*base + *ping)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				failed++
				continue
			}
			lat = append(lat, ms(time.Since(start)))
		}
		slices.Sort(lat)
		fmt.Printf("%s_samples %d\n%s_failed %d\n", prefix, len(lat), prefix, failed)
		fmt.Printf("%s_p50_ms %.3f\n%s_p99_ms %.3f\n%s_max_ms %.3f\n", prefix, pct(lat, 50), prefix, pct(lat, 99), prefix, pct(lat, 100))
	}
	pings("base")

	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	heads := 0
	for range *readers {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			fail("slow reader: %v", err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", *big, addr)
	}
	// The pings start once every reader has its head: with too few free workers some never do.
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if resp, err := http.ReadResponse(bufio.NewReaderSize(c, 4096), nil); err == nil && resp.StatusCode == 200 {
			heads++
		}
	}
	fmt.Printf("slow_readers %d\nslow_heads %d\n", *readers, heads)
	pings("slow")
}
