package integration

// Behind a proxy (issue 18): trusted_proxies, proxy_protocol and force_https, end to end through
// askrd to real PHP: what $_SERVER holds, what the access log names as the client.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// proxyModes are the backends the proxy tests run: the worker pool (CoW with ASKR_TEST_COW=1) and
// per-request php-cgi, whose root's index.php dumps $_SERVER as testdata/worker.php's /dump does.
func proxyModes(t *testing.T, run func(t *testing.T, o opts)) {
	for _, perRequest := range []bool{false, true} {
		name := map[bool]string{false: "worker", true: "fcgi"}[perRequest]
		t.Run(name, func(t *testing.T) {
			if perRequest && cowMode() {
				t.Skip("per-request mode has no CoW variant; the normal run covers it")
			}
			o := opts{perRequest: perRequest, args: []string{"--workers", "1"}}
			if perRequest {
				o.root = t.TempDir()
				dump := `<?php header('Content-Type: application/json'); echo json_encode(['server' => $_SERVER]);`
				if err := os.WriteFile(filepath.Join(o.root, "index.php"), []byte(dump), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			run(t, o)
		})
	}
}

// dumped is $_SERVER of a /dump answer; a variable PHP did not get is absent.
func dumped(t *testing.T, r response) map[string]any {
	t.Helper()
	var d struct {
		Server map[string]any `json:"server"`
	}
	if r.status != 200 || json.Unmarshal([]byte(r.body), &d) != nil || d.Server == nil {
		t.Fatalf("/dump = %d %q; want 200 and $_SERVER as JSON", r.status, r.body)
	}
	return d.Server
}

// wantVars checks server against want; nil wants the variable absent.
func wantVars(t *testing.T, what string, server map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		got, ok := server[k]
		switch {
		case w == nil && ok:
			t.Errorf("%s: $_SERVER[%s] = %v; want it unset", what, k, got)
		case w != nil && got != w:
			t.Errorf("%s: $_SERVER[%s] = %v (set: %v); want %v", what, k, got, ok, w)
		}
	}
}

// alogClient returns the client of the access log line (combined format) of the request for uri.
func alogClient(t *testing.T, path, uri string) string {
	t.Helper()
	var line string
	poll(10*time.Second, func() bool {
		b, _ := os.ReadFile(path)
		for l := range strings.SplitSeq(string(b), "\n") {
			if strings.Contains(l, `"GET `+uri+` HTTP/1.1"`) {
				line = l
				return true
			}
		}
		return false
	})
	client, _, ok := strings.Cut(line, " - - [")
	if !ok {
		t.Fatalf("no access log line for %s within 10s in %s", uri, path)
	}
	return client
}

var spoofed = []string{"X-Forwarded-For", "198.51.100.1, 203.0.113.7", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "shop.example"}

// From a peer of trusted_proxies, X-Forwarded-For, -Proto and -Host set REMOTE_ADDR, HTTPS and
// HTTP_HOST, and the access log's client.
func TestTrustedProxyHeaders(t *testing.T) {
	proxyModes(t, func(t *testing.T, o opts) {
		alog := filepath.Join(t.TempDir(), "access.log")
		o.config = fmt.Sprintf("[server]\ntrusted_proxies = [\"127.0.0.1\"]\naccess_log = %q\n", alog)
		s := startAskrd(t, o)
		server := dumped(t, s.get("/dump?n=trusted", spoofed...))
		wantVars(t, "from trusted 127.0.0.1", server, map[string]any{
			"REMOTE_ADDR": "203.0.113.7", "REMOTE_PORT": "", "HTTPS": "on", "REQUEST_SCHEME": "https",
			"HTTP_HOST": "shop.example", "SERVER_NAME": "shop.example",
			"HTTP_X_FORWARDED_FOR": "198.51.100.1, 203.0.113.7", // still there for the app's own proxy handling
		})
		if c := alogClient(t, alog, "/dump?n=trusted"); c != "203.0.113.7" {
			t.Errorf("access log client %q; want 203.0.113.7", c)
		}
	})
}

// From any other peer the same headers are ordinary headers: PHP sees them as HTTP_X_FORWARDED_*,
// and REMOTE_ADDR, HTTPS, HTTP_HOST and the access log are the connection's.
func TestUntrustedProxyHeaders(t *testing.T) {
	proxyModes(t, func(t *testing.T, o opts) {
		alog := filepath.Join(t.TempDir(), "access.log")
		o.config = fmt.Sprintf("[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\naccess_log = %q\n", alog)
		s := startAskrd(t, o)
		server := dumped(t, s.get("/dump?n=untrusted", spoofed...))
		wantVars(t, "from untrusted 127.0.0.1", server, map[string]any{
			"REMOTE_ADDR": "127.0.0.1", "HTTPS": nil, "REQUEST_SCHEME": "http", "HTTP_HOST": s.Addr,
			"SERVER_NAME": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.1, 203.0.113.7",
			"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_HOST": "shop.example",
		})
		if p, _ := server["REMOTE_PORT"].(string); p == "" {
			t.Errorf("REMOTE_PORT = %q; want the connection's port", p)
		}
		if c := alogClient(t, alog, "/dump?n=untrusted"); c != "127.0.0.1" {
			t.Errorf("access log client %q; want 127.0.0.1", c)
		}
	})
}

// proxied sends pre (a PROXY header, or nothing) and then GET path on a new connection to askrd
// (hardening_test.go's rawRequest), and returns the answer.
func proxied(t *testing.T, s *server, pre []byte, path string, header ...string) response {
	t.Helper()
	req := "GET " + path + " HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n"
	for i := 0; i+1 < len(header); i += 2 {
		req += header[i] + ": " + header[i+1] + "\r\n"
	}
	resp, body := rawRequest(t, s.Addr, string(pre)+req+"\r\n", false)
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// proxyV2 is a PROXY protocol v2 header (TCP over IPv4, PROXY command), built by hand from the
// spec.
func proxyV2(src, dst [4]byte, srcPort, dstPort uint16) []byte {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n")
	b = append(b, 0x21, 0x11, 0, 12)
	b = append(b, src[:]...)
	b = append(b, dst[:]...)
	b = binary.BigEndian.AppendUint16(b, srcPort)
	return binary.BigEndian.AppendUint16(b, dstPort)
}

// proxy_protocol: from a trusted peer a PROXY v1 or v2 header gives REMOTE_ADDR and REMOTE_PORT
// (and a client's X-Forwarded-For after it is not believed); a connection without one is served
// as it is.
func TestProxyProtocol(t *testing.T) {
	proxyModes(t, func(t *testing.T, o opts) {
		o.config = "[server]\ntrusted_proxies = [\"127.0.0.1\"]\nproxy_protocol = true\n"
		s := startAskrd(t, o)
		v1 := []byte("PROXY TCP4 203.0.113.7 127.0.0.1 40001 80\r\n")
		wantVars(t, "PROXY v1", dumped(t, proxied(t, s, v1, "/dump")),
			map[string]any{"REMOTE_ADDR": "203.0.113.7", "REMOTE_PORT": "40001"})
		v2 := proxyV2([4]byte{198, 51, 100, 9}, [4]byte{127, 0, 0, 1}, 50000, 80)
		wantVars(t, "PROXY v2", dumped(t, proxied(t, s, v2, "/dump")),
			map[string]any{"REMOTE_ADDR": "198.51.100.9", "REMOTE_PORT": "50000"})
		wantVars(t, "no PROXY header", dumped(t, proxied(t, s, nil, "/dump")),
			map[string]any{"REMOTE_ADDR": "127.0.0.1"})
		// The header's source, the client, is not a trusted proxy: its X-Forwarded-For is a header.
		wantVars(t, "PROXY v1 and a client's X-Forwarded-For", dumped(t, proxied(t, s, v1, "/dump", "X-Forwarded-For", "192.0.2.99", "X-Forwarded-Proto", "https")),
			map[string]any{"REMOTE_ADDR": "203.0.113.7", "HTTPS": nil, "HTTP_X_FORWARDED_FOR": "192.0.2.99"})
	})
}

// From a peer not in trusted_proxies no PROXY header is read: it is a bad request.
func TestProxyProtocolFromUntrustedPeer(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}, config: "[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\nproxy_protocol = true\n"})
	if r := proxied(t, s, []byte("PROXY TCP4 203.0.113.7 127.0.0.1 40001 80\r\n"), "/dump"); r.status != http.StatusBadRequest {
		t.Errorf("PROXY line from an untrusted peer: %d %q; want 400", r.status, r.body)
	}
	wantVars(t, "no PROXY header", dumped(t, proxied(t, s, nil, "/dump")), map[string]any{"REMOTE_ADDR": "127.0.0.1"})
}

// force_https: a plain request gets 308 to the same URL on HTTPS; one a trusted proxy says came
// over HTTPS is served (with HTTPS=on); the same header from anyone else is no way around it.
func TestForceHTTPSBehindProxy(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}, config: "[server]\nforce_https = true\ntrusted_proxies = [\"127.0.0.1\"]\n"})
	r := s.get("/dump?x=1&y=%2F", "Host", "example.com:8080")
	if loc := r.header.Get("Location"); r.status != http.StatusPermanentRedirect || loc != "https://example.com/dump?x=1&y=%2F" {
		t.Errorf("plain GET = %d, Location %q; want 308, https://example.com/dump?x=1&y=%%2F", r.status, loc)
	}
	if r := s.do("POST", "/form", strings.NewReader("a=1"), "Host", "example.com"); r.status != http.StatusPermanentRedirect {
		t.Errorf("plain POST = %d; want 308 (the method kept)", r.status)
	}
	wantVars(t, "X-Forwarded-Proto https from trusted 127.0.0.1", dumped(t, s.get("/dump", "X-Forwarded-Proto", "https")),
		map[string]any{"HTTPS": "on"})

	u := startAskrd(t, opts{args: []string{"--workers", "1"}, config: "[server]\nforce_https = true\ntrusted_proxies = [\"10.0.0.0/8\"]\n"})
	if r := u.get("/dump", "Host", "example.com", "X-Forwarded-Proto", "https"); r.status != http.StatusPermanentRedirect || r.header.Get("Location") != "https://example.com/dump" {
		t.Errorf("X-Forwarded-Proto https from untrusted 127.0.0.1 = %d, Location %q; want 308, https://example.com/dump", r.status, r.header.Get("Location"))
	}
}
