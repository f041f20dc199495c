package integration

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// originalConfig returns internal/config's askr.toml of the original askr (every key of the
// original's reference) with its paths made absolute, and the notices config-check must print for
// it, from internal/config's golden file, with the given file name.
func originalConfig(t *testing.T) (src string, notices func(file string) []string) {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "internal", "config", "testdata")
	b, err := os.ReadFile(filepath.Join(dir, "original-askr.toml"))
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join(dir, "original-askr.notices"))
	if err != nil {
		t.Fatal(err)
	}
	src = strings.ReplaceAll(string(b), `"testdata/app`, `"`+filepath.Join(dir, "app"))
	return src, func(file string) []string {
		var out []string
		for line := range strings.Lines(string(golden)) {
			out = append(out, strings.Replace(strings.TrimSuffix(line, "\n"), "testdata/original-askr.toml", file, 1))
		}
		return out
	}
}

// An askr.toml of the original askr using every documented key passes config-check, which lists
// the keys this version ignores, and askrd serves with it, logging each of them once.
func TestOriginalAskrToml(t *testing.T) {
	src, notices := originalConfig(t)
	path := filepath.Join(t.TempDir(), "askr.toml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	want := notices(path)
	if len(want) < 11 {
		t.Fatalf("the golden file lists %d notices; want the fixture's 11 or more (max_rss, access_log, [admin] listen, [queue], [scheduler], [[sidecar]], trusted_proxies and [acme] are implemented now)", len(want))
	}
	code, out := exitCode(t, "askrd", nil, "config-check", path)
	if code != 0 {
		t.Fatalf("askrd config-check %s: exit %d; want 0:\n%s", path, code, out)
	}
	for _, n := range want {
		if c := strings.Count(out, "askrd: warning: "+n+"\n"); c != 1 {
			t.Errorf("askrd config-check printed %q %d times; want once:\n%s", n, c, out)
		}
	}

	// serve: the file's TLS certificate, its listen/root/script overridden by the test's flags.
	s := startAskrd(t, opts{config: src, args: []string{"--workers", "1"}})
	logs := s.logs.String()
	for _, n := range want {
		// "FILE:LINE: KEY: MSG" is logged as msg="MSG" key=KEY at=FILE:LINE.
		at, rest, _ := strings.Cut(n, ": ")
		key, msg, _ := strings.Cut(rest, ": ")
		line := fmt.Sprintf("level=WARN msg=%q key=%s at=", msg, key)
		if c := strings.Count(logs, line); c != 1 {
			t.Errorf("askrd serve logged %q %d times; want once", line, c)
		}
		if !strings.Contains(logs, line+s.conf+at[strings.LastIndexByte(at, ':'):]+"\n") {
			t.Errorf("askrd serve did not log %q with the file and line of %s", line, key)
		}
	}
	// The fixture's paranoid = true is implemented now: the detector's warning, not a notice.
	if !strings.Contains(logs, "paranoid mode on") || strings.Contains(logs, "key=worker.paranoid") {
		t.Errorf("askrd serve with paranoid = true: want the paranoid warning and no notice for worker.paranoid:\n%s", logs)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get("https://" + s.Addr + "/hello.txt")
	if err != nil {
		t.Fatalf("GET over TLS with the original's file: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "static hello") {
		t.Errorf("GET https://%s/hello.txt = %d %q; want 200 and the file", s.Addr, resp.StatusCode, body)
	}
	// The file's [[redirect]]: www.example.com → https://example.com, 301, path and query kept.
	req, _ := http.NewRequest("GET", "https://"+s.Addr+"/dump?a=1", nil)
	req.Host = "www.example.com"
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != 301 || loc != "https://example.com/dump?a=1" {
		t.Errorf("GET /dump?a=1 with Host www.example.com = %d, Location %q; want 301 to https://example.com/dump?a=1", resp.StatusCode, loc)
	}
}

// [tls] self_signed = true serves HTTPS (HTTP/2) with a certificate made at startup that names
// localhost and the loopback addresses.
func TestSelfSignedTLS(t *testing.T) {
	s := startAskrd(t, opts{config: "[tls]\nself_signed = true\n", args: []string{"--workers", "1"}})
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true,
	}}
	resp, err := c.Get("https://" + s.Addr + "/dump")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || !strings.Contains(string(body), `"HTTPS":"on"`) {
		t.Errorf("GET /dump over self-signed TLS: %s, %.300s; want HTTP/2 and HTTPS=on", resp.Proto, body)
	}
	leaf := resp.TLS.PeerCertificates[0]
	if leaf.Version != 3 || leaf.VerifyHostname("localhost") != nil || leaf.VerifyHostname("127.0.0.1") != nil {
		t.Errorf("self-signed certificate: v%d, names %q, IPs %v; want v3 for localhost and 127.0.0.1", leaf.Version, leaf.DNSNames, leaf.IPAddresses)
	}
	if !strings.Contains(s.logs.String(), "self-signed certificate (tls.self_signed): for development only") {
		t.Errorf("askrd did not warn that the certificate is self-signed:\n%s", s.logs.String())
	}
}
