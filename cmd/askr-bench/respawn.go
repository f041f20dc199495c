package main

// The CoW measurements' own clients (formerly bench/cowbench.go): respawn latency after SIGKILL,
// a counted keep-alive load, and the memory of askrd's php-cgi processes.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// respawnResult is what respawn measured; latencies in ms.
type respawnResult struct {
	samples, failed, polls, non200, neterr int
	p50, p99, min, max, mean, firstP50     float64
	all                                    []float64
}

// text is the result as "key value" lines (bench/out/respawn-MODE.txt).
func (r respawnResult) text() string {
	all := make([]string, len(r.all))
	for i, v := range r.all {
		all[i] = strconv.FormatFloat(v, 'f', 2, 64)
	}
	return fmt.Sprintf("samples %d\nfailed %d\np50_ms %.3f\np99_ms %.3f\nmin_ms %.3f\nmax_ms %.3f\nmean_ms %.3f\nfirst_p50_ms %.3f\npolls %d\nnon200 %d\nneterr %d\ntimeouts %d\nall_ms %s\n",
		r.samples, r.failed, r.p50, r.p99, r.min, r.max, r.mean, r.firstP50, r.polls, r.non200, r.neterr, r.failed, strings.Join(all, ","))
}

// respawn, n times: reads the worker's pid from url (a JSON route answering {"pid": …}), sends
// that worker SIGKILL (only a php-cgi descendant of askrd), then polls url back to back
// (keep-alive) until a 200 from a new pid arrives. Latency = kill → that response.
func respawn(url string, askrd, n int, timeout time.Duration) (respawnResult, error) {
	const settle = 50 * time.Millisecond // between a respawn and the next kill
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		return respawnResult{}, fmt.Errorf("refusing %q: 127.0.0.1 only", url)
	}
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
	defer c.CloseIdleConnections()
	get := func() (int, int, error) {
		resp, err := c.Get(url)
		if err != nil {
			return 0, 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return resp.StatusCode, 0, err
		}
		var v struct {
			PID int `json:"pid"`
		}
		if err := json.Unmarshal(body, &v); err != nil || v.PID <= 0 {
			return resp.StatusCode, 0, fmt.Errorf("no pid in %.200q", body)
		}
		return resp.StatusCode, v.PID, nil
	}
	var r respawnResult
	var first []float64 // kill → first answer of any kind
	deadline := time.Now().Add(time.Duration(n) * (timeout + time.Second))
	for i := 0; i < n && time.Now().Before(deadline); i++ {
		old := 0 // the current worker (retried briefly while the pool settles)
		for t0 := time.Now(); time.Since(t0) < timeout; time.Sleep(10 * time.Millisecond) {
			if code, pid, err := get(); err == nil && code == http.StatusOK {
				old = pid
				break
			}
		}
		if old == 0 {
			return r, fmt.Errorf("no 200 with a pid from %s within %v", url, timeout)
		}
		if !isWorkerOf(old, askrd) {
			return r, fmt.Errorf("pid %d is not a php-cgi descendant of askrd %d; not killing it", old, askrd)
		}
		start := time.Now()
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			return r, fmt.Errorf("kill %d: %w", old, err)
		}
		got, firstSeen := false, false
		for !got && time.Since(start) < timeout {
			code, pid, err := get()
			r.polls++
			if !firstSeen && (err == nil || code != 0) {
				firstSeen = true
				first = append(first, ms(time.Since(start)))
			}
			switch {
			case err != nil && code == 0:
				r.neterr++
			case code != http.StatusOK:
				r.non200++
			case pid != old:
				r.all = append(r.all, ms(time.Since(start)))
				got = true
			}
		}
		if !got {
			r.failed++
		}
		time.Sleep(settle)
	}
	slices.Sort(r.all)
	slices.Sort(first)
	r.samples = len(r.all)
	r.p50, r.p99, r.min, r.max = pct(r.all, 50), pct(r.all, 99), pct(r.all, 0), pct(r.all, 100)
	r.mean, r.firstP50 = mean(r.all), pct(first, 50)
	return r, nil
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// isWorkerOf: pid is a php-cgi process below askrd.
func isWorkerOf(pid, askrd int) bool {
	for _, p := range descendants(procs(), askrd) {
		if p.pid == pid {
			return p.comm == "php-cgi"
		}
	}
	return false
}

// loadResult is what load counted.
type loadResult struct {
	requests, ok, non2xx, errors int64
	seconds                      float64
}

// load sends total GETs of url (header: one "Name: value" or "") from conns keep-alive
// connections, and stops early after maxDur.
func load(url string, total int64, conns int, header string, maxDur time.Duration) (loadResult, error) {
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		return loadResult{}, fmt.Errorf("refusing %q: 127.0.0.1 only", url)
	}
	hname, hvalue, _ := strings.Cut(header, ":")
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conns, DisableCompression: true}}
	defer c.CloseIdleConnections()
	var next, ok, non2xx, errs atomic.Int64
	deadline := time.Now().Add(maxDur)
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for next.Add(1) <= total && time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				if hname != "" {
					req.Header.Set(strings.TrimSpace(hname), strings.TrimSpace(hvalue))
				}
				resp, err := c.Do(req)
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
		})
	}
	wg.Wait()
	r := loadResult{ok: ok.Load(), non2xx: non2xx.Load(), errors: errs.Load(), seconds: time.Since(start).Seconds()}
	r.requests = r.ok + r.non2xx + r.errors
	return r, nil
}

// memResult is the memory of askrd's php-cgi descendants (sizes in KiB) and askrd's own.
type memResult struct {
	templates, workers                       int
	total, template, workersMem              rollup
	workerCPUMinMS, workerCPUMaxMS, askrdRSS float64
}

// memory reads the php-cgi descendants of askrd (found through /proc/*/stat) and their memory from
// /proc/PID/smaps_rollup: a template is one whose children include php-cgi processes.
func memory(askrd int) (memResult, error) {
	all := procs()
	if _, ok := all[askrd]; !ok {
		return memResult{}, fmt.Errorf("no process %d", askrd)
	}
	var php []process
	parentOfPHP := map[int]bool{}
	for _, p := range descendants(all, askrd) {
		if p.comm == "php-cgi" {
			php = append(php, p)
			parentOfPHP[p.ppid] = true
		}
	}
	var m memResult
	var cpu []float64 // ms of CPU each worker has used (how evenly the load was spread)
	for _, p := range php {
		r, err := readRollup(p.pid)
		if errors.Is(err, os.ErrNotExist) {
			continue // exited meanwhile
		} else if err != nil {
			return m, err
		}
		m.total.add(r)
		if parentOfPHP[p.pid] {
			m.templates++
			m.template.add(r)
			continue
		}
		m.workers++
		m.workersMem.add(r)
		if t, err := cpuMS(p.pid); err == nil {
			cpu = append(cpu, t)
		}
	}
	self, err := readRollup(askrd)
	if err != nil {
		return m, err
	}
	slices.Sort(cpu)
	m.workerCPUMinMS, m.workerCPUMaxMS, m.askrdRSS = pct(cpu, 0), pct(cpu, 100), float64(self.rss)
	return m, nil
}
