package integration

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// noRedirects is a client that shows redirects instead of following them and takes any
// certificate (the self-signed one of these tests).
func noRedirects() *http.Client {
	return &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// fetch GETs url and returns the status, the Location and the body.
func fetch(t *testing.T, c *http.Client, url string) (int, string, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

// port is addr's port.
func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Without systemd, https_listen serves HTTPS beside a plain listen, which force_https redirects
// there (308, path and query kept, the HTTPS port in the URL).
func TestHTTPSListenWithForceHTTPS(t *testing.T) {
	httpsAddr := freeAddr(t)
	s := startAskrd(t, opts{config: fmt.Sprintf("[server]\nhttps_listen = %q\nforce_https = true\n[tls]\nself_signed = true\n", httpsAddr),
		args: []string{"--workers", "1"}})
	c := noRedirects()
	code, loc, _ := fetch(t, c, s.URL+"/dump?a=1&b=2")
	if want := "https://127.0.0.1:" + portOf(t, httpsAddr) + "/dump?a=1&b=2"; code != http.StatusPermanentRedirect || loc != want {
		t.Errorf("GET %s/dump?a=1&b=2 = %d, Location %q; want 308 to %s", s.URL, code, loc, want)
	}
	code, _, body := fetch(t, c, "https://"+httpsAddr+"/dump")
	if code != 200 || !strings.Contains(body, `"HTTPS":"on"`) {
		t.Errorf("GET https://%s/dump = %d %.200q; want 200 with HTTPS=on", httpsAddr, code, body)
	}
	s.waitLog("listen="+s.Addr+","+httpsAddr, 5*time.Second)
}

// Without systemd, [tls] makes listen serve HTTPS and http_redirect a plain address that only
// redirects to it; without force_https listen's HTTPS is all there is.
func TestHTTPRedirectListener(t *testing.T) {
	redirect := freeAddr(t)
	s := startAskrd(t, opts{config: fmt.Sprintf("[server]\nhttp_redirect = %q\n[tls]\nself_signed = true\n", redirect),
		args: []string{"--workers", "1"}})
	c := noRedirects()
	code, _, body := fetch(t, c, "https://"+s.Addr+"/dump")
	if code != 200 || !strings.Contains(body, `"HTTPS":"on"`) {
		t.Errorf("GET https://%s/dump = %d %.200q; want 200 with HTTPS=on", s.Addr, code, body)
	}
	for _, path := range []string{"/", "/hello.txt", "/x/y?z=1"} {
		code, loc, _ := fetch(t, c, "http://"+redirect+path)
		if want := "https://127.0.0.1:" + portOf(t, s.Addr) + path; code != http.StatusPermanentRedirect || loc != want {
			t.Errorf("GET http://%s%s = %d, Location %q; want 308 to %s", redirect, path, code, loc, want)
		}
	}
	// It stops with askrd.
	s.stop()
	if c, err := net.DialTimeout("tcp", redirect, time.Second); err == nil {
		c.Close()
		t.Errorf("the http_redirect listener %s still accepts after askrd stopped", redirect)
	}
}

// Under systemd (systemd-socket-activate): the "http" socket plain, the "https" socket HTTPS;
// force_https redirects the first to the second. [acme] without an "https" socket is a
// configuration error (exit 78) naming askr-https.socket.
func TestSystemdHTTPSSocket(t *testing.T) {
	needSocketActivate(t)
	bin := askrdBinary(t)
	root := repoRoot(t)
	conf := filepath.Join(t.TempDir(), "askr.toml")
	base := fmt.Sprintf("[server]\nroot = %q\nworkers = 1\n[worker]\nscript = %q\ncow = %t\n",
		filepath.Join(root, "examples", "hello", "public"), filepath.Join(root, "internal", "integration", "testdata", "worker.php"), cowMode())
	os.WriteFile(conf, []byte(strings.Replace(base, "[server]\n", "[server]\nforce_https = true\n", 1)+"[tls]\nself_signed = true\n"), 0o644)
	httpAddr, httpsAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command("systemd-socket-activate", "-l", httpAddr, "-l", httpsAddr, "--fdname=http:https", bin, "--config", conf)
	s := runCommand(t, cmd)
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("askrd log:\n%s", s.logs.String())
		}
	})
	c := noRedirects()
	if !poll(30*time.Second, func() bool {
		resp, err := c.Get("https://" + httpsAddr + "/hello.txt")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	}) {
		t.Fatal("the https socket never answered")
	}
	code, loc, _ := fetch(t, c, "http://"+httpAddr+"/hello.txt?x")
	if want := "https://127.0.0.1:" + portOf(t, httpsAddr) + "/hello.txt?x"; code != http.StatusPermanentRedirect || loc != want {
		t.Errorf("GET http://%s/hello.txt?x = %d, Location %q; want 308 to %s", httpAddr, code, loc, want)
	}

	acme := filepath.Join(t.TempDir(), "askr.toml")
	os.WriteFile(acme, []byte(base+"[acme]\nenabled = true\ndomains = [\"askr-test.example\"]\ndir = \""+t.TempDir()+"\"\n"), 0o644)
	// systemd-socket-activate starts askrd on the first connection.
	only := freeAddr(t)
	cmd = exec.Command("systemd-socket-activate", "-l", only, "--fdname=http", bin, "--config", acme)
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if !poll(10*time.Second, func() bool {
		nc, err := net.Dial("tcp", only)
		if err == nil {
			nc.Close()
		}
		return err == nil
	}) {
		t.Fatal("systemd-socket-activate never listened")
	}
	var err error
	select {
	case err = <-exited:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("askrd with [acme] and only an http socket did not exit:\n%s", &buf)
	}
	out := buf.String()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 78 || !strings.Contains(string(out), "askr-https.socket") {
		t.Errorf("askrd with [acme] and only an http socket: %v\n%s\nwant exit 78 naming askr-https.socket", err, out)
	}
}
