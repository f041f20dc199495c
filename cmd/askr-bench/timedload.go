package main

// The deploy scenarios' own clients: a load that records every request's time and outcome (so a
// reload's window can be cut out of it afterwards), and a reader of the admin socket's /status.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// sample is one request of a timedLoad: when it was sent (since the load began), how long its
// answer took, and whether it failed (a non-2xx/3xx status, or no answer).
type sample struct {
	at, took time.Duration
	failed   bool
}

// timedLoad sends GETs of url with header ("Name: value" or "") from conns keep-alive connections,
// back to back, until stop is closed or maxDur has passed, and records every request.
type timedLoad struct {
	start time.Time
	stop  chan struct{}
	done  sync.WaitGroup

	mu      sync.Mutex
	samples []sample
}

func startTimedLoad(url, header string, conns int, maxDur time.Duration) (*timedLoad, error) {
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		return nil, fmt.Errorf("refusing %q: 127.0.0.1 only", url)
	}
	hname, hvalue, _ := strings.Cut(header, ":")
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conns, DisableCompression: true}}
	l := &timedLoad{start: time.Now(), stop: make(chan struct{})}
	deadline := l.start.Add(maxDur)
	for range conns {
		l.done.Go(func() {
			var mine []sample
			for time.Now().Before(deadline) {
				select {
				case <-l.stop:
					l.add(mine)
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				if hname != "" {
					req.Header.Set(strings.TrimSpace(hname), strings.TrimSpace(hvalue))
				}
				t0 := time.Now()
				resp, err := c.Do(req)
				failed := err != nil
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					failed = err != nil || resp.StatusCode < 200 || resp.StatusCode >= 400
				}
				mine = append(mine, sample{at: t0.Sub(l.start), took: time.Since(t0), failed: failed})
			}
			l.add(mine)
		})
	}
	return l, nil
}

func (l *timedLoad) add(s []sample) {
	l.mu.Lock()
	l.samples = append(l.samples, s...)
	l.mu.Unlock()
}

// since is how long the load has been running.
func (l *timedLoad) since() time.Duration { return time.Since(l.start) }

// end stops the load and returns its requests in the order they were sent.
func (l *timedLoad) end() []sample {
	close(l.stop)
	l.done.Wait()
	slices.SortFunc(l.samples, func(a, b sample) int { return int(a.at - b.at) })
	return l.samples
}

// windowStats are the requests sent in one window of a timedLoad.
type windowStats struct {
	requests, failed int
	rps, p50, p99    float64 // requests/s; latencies in ms (NaN without requests)
}

// window is the figures of the samples sent in [from, to): requests/s over the window's length,
// latency percentiles (nearest rank) of every request, failed ones included.
func window(samples []sample, from, to time.Duration) windowStats {
	var lat []float64
	var w windowStats
	for _, s := range samples {
		if s.at < from || s.at >= to {
			continue
		}
		w.requests++
		if s.failed {
			w.failed++
		}
		lat = append(lat, ms(s.took))
	}
	slices.Sort(lat)
	w.p50, w.p99 = pct(lat, 50), pct(lat, 99)
	if to > from {
		w.rps = float64(w.requests) / (to - from).Seconds()
	}
	return w
}

// failedIn counts the failed samples.
func failedIn(samples []sample) int {
	n := 0
	for _, s := range samples {
		if s.failed {
			n++
		}
	}
	return n
}

// adminStatus is what the deploy scenarios read of the admin socket's GET /status?full.
type adminStatus struct {
	Generation  int64 `json:"generation"`
	TemplatePID int   `json:"template_pid"`
	Workers     struct {
		List []statusWorker `json:"list"`
	} `json:"workers"`
	Rollout map[string]any `json:"rollout"` // {"state": …, …}; absent before issue 16
	Partial bool           `json:"partial"`
}

// statusWorker is one worker of /status?full.
type statusWorker struct {
	PID        int   `json:"pid"`
	Generation int64 `json:"generation"`
	Requests   int64 `json:"requests"`
}

// rolloutState is the rollout's state ("" when /status has none).
func (s adminStatus) rolloutState() string {
	v, _ := s.Rollout["state"].(string)
	return v
}

// oldWorkers are the pids of the listed workers of generation gen or older.
func (s adminStatus) oldWorkers(gen int64) []int {
	var out []int
	for _, w := range s.Workers.List {
		if w.Generation <= gen {
			out = append(out, w.PID)
		}
	}
	return out
}

// maxGeneration is the newest generation among the listed workers.
func (s adminStatus) maxGeneration() int64 {
	g := s.Generation
	for _, w := range s.Workers.List {
		g = max(g, w.Generation)
	}
	return g
}

// adminClient talks HTTP over askrd's admin socket.
func adminClient(sock string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
}

// readStatus is GET /status?full.
func readStatus(c *http.Client) (adminStatus, error) {
	var st adminStatus
	resp, err := c.Get("http://askrd/status?full")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, err
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /status?full answered %s: %.200s", resp.Status, body)
	}
	return st, json.Unmarshal(body, &st)
}
