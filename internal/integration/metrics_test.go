package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/askr-php/askr/internal/pool"
)

// adminClient is an HTTP client of the admin socket at path.
func adminClient(path string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
}

// scrapeMetrics gets /metrics from the admin socket sock, checks the text with promtool and
// parses it with Prometheus's parser.
func scrapeMetrics(t *testing.T, sock string) map[string]*dto.MetricFamily {
	t.Helper()
	c := adminClient(sock)
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://askr/metrics")
	if err != nil {
		t.Fatalf("GET /metrics on %s: %v", sock, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v\n%s", resp.StatusCode, err, body)
	}
	bin, err := exec.LookPath("promtool")
	switch {
	case err == nil:
		cmd := exec.Command(bin, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	case os.Getenv("CI") == "true":
		t.Fatal("promtool not found (Debian package prometheus; make deps installs it)")
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams
}

// metricValue returns the value of family name's series with the labels (name, value pairs): a
// counter's or gauge's value, a histogram's count; ok is false if there is no such series.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	for _, m := range fams[name].GetMetric() {
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// /metrics on the admin socket, in every mode: the request counters match the requests sent, the
// PHP histograms count the PHP requests, the pool's gauges and each worker's memory are there, and
// the STATUS= line shows the requests/s. (Needs the admin socket of w-admin and the front's
// Observe call of w-alog.)
func TestMetricsCountRequests(t *testing.T) {
	modes := []struct {
		name       string
		perRequest bool
		php        string // a PHP route answering its process's pid
		code       string // a PHP route answering the status c
		static     string
	}{
		{name: "worker", php: "/pid", code: "/code?c=", static: "/hello.txt"},
		{name: "per-request", perRequest: true, php: "/pid.php", static: "/style.css"},
	}
	for _, md := range modes {
		t.Run(md.name, func(t *testing.T) {
			mode := md.name
			if cowMode() && !md.perRequest {
				mode = "cow"
			}
			sock := filepath.Join(t.TempDir(), "admin.sock")
			n := newFakeNotify(t)
			// The socket both in the config and in ASKR_ADMIN_SOCKET, which startAskrd sets and
			// which wins over the config (the last value of a variable in the environment counts).
			o := opts{perRequest: md.perRequest, args: []string{"--workers", "2"},
				env:    []string{"NOTIFY_SOCKET=" + n.path, "ASKR_ADMIN_SOCKET=" + sock},
				config: fmt.Sprintf("[admin]\nsocket = %q\n", sock)}
			if md.perRequest {
				o.root = plainRoot(t)
			}
			s := startAskrd(t, o)
			if !poll(10*time.Second, func() bool { _, err := os.Stat(sock); return err == nil }) {
				t.Fatalf("no admin socket at %s", sock)
			}
			sendAndCount(t, s, sock, mode, md.php, md.code, md.static)
			// The STATUS= line's requests/s (the last minute's average) follows.
			rps := regexp.MustCompile(` rps=([0-9.]+) slow=0$`)
			if !poll(5*time.Second, func() bool {
				st := n.all("STATUS=")
				if len(st) == 0 {
					return false
				}
				m := rps.FindStringSubmatch(st[len(st)-1].text)
				if m == nil {
					return false
				}
				v, err := strconv.ParseFloat(m[1], 64)
				return err == nil && v > 0
			}) {
				t.Errorf("no STATUS= line with rps > 0 and slow=0 after the requests: %v", n.all("STATUS="))
			}
		})
	}
}

// sendAndCount sends requests of each kind to s and checks the metrics of the admin socket sock
// count them.
func sendAndCount(t *testing.T, s *server, sock, mode, php, code, static string) {
	t.Helper()
	before := scrapeMetrics(t, sock)
	if v, _ := metricValue(before, "askr_http_request_duration_seconds", "mode", mode); v != 0 {
		t.Errorf("askr_http_request_duration_seconds count = %v before any request; want 0", v)
	}
	const nPHP, nStatic, n404, n503 = 40, 3, 5, 2
	pids := map[string]bool{}
	bytesOut, phpCount := 0, nPHP
	for range nPHP {
		r := s.get(php)
		if r.status != 200 {
			t.Fatalf("GET %s: %d", php, r.status)
		}
		pids[r.body] = true
		bytesOut += len(r.body)
	}
	for range nStatic {
		r := s.get(static)
		if r.status != 200 {
			t.Fatalf("GET %s: %d", static, r.status)
		}
		bytesOut += len(r.body)
	}
	want := map[string]float64{"2xx": nPHP + nStatic}
	if code != "" {
		for _, c := range []int{404, 404, 404, 404, 404, 503, 503} {
			r := s.get(code + strconv.Itoa(c))
			if r.status != c {
				t.Fatalf("GET %s%d: %d", code, c, r.status)
			}
			bytesOut += len(r.body)
		}
		want["4xx"], want["5xx"] = n404, n503
		phpCount += n404 + n503
	}
	total := want["2xx"] + want["4xx"] + want["5xx"]

	// The front counts a request once it has answered it: poll until all are counted.
	var fams map[string]*dto.MetricFamily
	poll(5*time.Second, func() bool {
		fams = scrapeMetrics(t, sock)
		v, _ := metricValue(fams, "askr_http_request_duration_seconds", "mode", mode)
		return v >= total
	})
	for _, class := range []string{"1xx", "2xx", "3xx", "4xx", "5xx"} {
		if v, ok := metricValue(fams, "askr_http_requests_total", "mode", mode, "status_class", class); !ok || v != want[class] {
			t.Errorf("askr_http_requests_total{mode=%q,status_class=%q} = %v (%v); want %v", mode, class, v, ok, want[class])
		}
	}
	for name, w := range map[string]float64{
		"askr_http_request_duration_seconds": total, "askr_php_duration_seconds": float64(phpCount),
		"askr_php_queue_wait_seconds": float64(phpCount), "askr_php_requests_accepted_total": float64(phpCount),
		"askr_http_response_bytes_total": float64(bytesOut), "askr_http_request_bytes_total": 0,
	} {
		if v, ok := metricValue(fams, name); !ok || v != w {
			t.Errorf("%s = %v (%v); want %v", name, v, ok, w)
		}
	}
	// Both workers idle (in per-request mode, once the processes that served are replaced).
	var idle, busy float64
	if !poll(5*time.Second, func() bool {
		f := scrapeMetrics(t, sock)
		idle, _ = metricValue(f, "askr_php_workers", "state", "idle")
		busy, _ = metricValue(f, "askr_php_workers", "state", "busy")
		return idle == 2 && busy == 0
	}) {
		t.Errorf("askr_php_workers idle=%v busy=%v; want 2 idle", idle, busy)
	}
	if v, ok := metricValue(fams, "askr_php_boot_duration_seconds"); !ok || v < 2 {
		t.Errorf("askr_php_boot_duration_seconds count = %v; want ≥ 2 (a boot per worker)", v)
	}
	checkMemorySeries(t, fams, mode, pids)
}

// checkMemorySeries checks the memory metrics: every worker that answered in worker and CoW mode
// (per-request processes end after their request) has its series, and in CoW mode the template
// and its fork and boot histograms are there.
func checkMemorySeries(t *testing.T, fams map[string]*dto.MetricFamily, mode string, pids map[string]bool) {
	t.Helper()
	if mode != "per-request" {
		for pid := range pids {
			if v, ok := metricValue(fams, "askr_php_worker_memory_bytes", "pid", pid, "kind", "rss"); !ok || v <= 0 {
				t.Errorf("askr_php_worker_memory_bytes{pid=%q,kind=\"rss\"} = %v (%v); want > 0", pid, v, ok)
			}
		}
	}
	for _, kind := range []string{"rss", "pss", "private_dirty"} {
		if _, ok := metricValue(fams, "askr_php_memory_bytes", "kind", kind); !ok {
			t.Errorf("no askr_php_memory_bytes{kind=%q}", kind)
		}
	}
	if n := len(fams["askr_php_worker_exits_total"].GetMetric()); n != len(pool.ExitReasons()) {
		t.Errorf("%d askr_php_worker_exits_total series; want one per reason (%d)", n, len(pool.ExitReasons()))
	}
	if mode != "cow" {
		if fams["askr_template_memory_bytes"] != nil {
			t.Errorf("askr_template_memory_bytes in %s mode", mode)
		}
		return
	}
	if v, ok := metricValue(fams, "askr_template_memory_bytes", "kind", "pss"); !ok || v <= 0 {
		t.Errorf("askr_template_memory_bytes{kind=\"pss\"} = %v (%v); want > 0", v, ok)
	}
	if v, _ := metricValue(fams, "askr_cow_template_boot_duration_seconds"); v < 1 {
		t.Errorf("askr_cow_template_boot_duration_seconds count = %v; want ≥ 1", v)
	}
	if v, _ := metricValue(fams, "askr_cow_fork_duration_seconds"); v < 2 {
		t.Errorf("askr_cow_fork_duration_seconds count = %v; want ≥ 2 (a fork per worker)", v)
	}
	if v, _ := metricValue(fams, "askr_template_generation"); v < 1 {
		t.Errorf("askr_template_generation = %v; want ≥ 1", v)
	}
}
