package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/harness"
)

// acmeName is the name the tests certify: pebble's DNS (pebble-challtestsrv) answers 127.0.0.1.
const acmeName = "askr-test.example"

// needPebble skips without Debian's pebble, and fails under CI (make test installs it).
func needPebble(t *testing.T) {
	t.Helper()
	if cowMode() {
		// Certificates are askrd's alone: nothing of ACME depends on how PHP runs, and the
		// normal run of the suite has shown it (make test runs both).
		t.Skip("ACME does not depend on the PHP mode; tested in the normal run of the suite")
	}
	if err := harness.PebbleInstalled(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (make deps-test installs it)", err)
		}
		t.Skip(err)
	}
}

// acmeConfig is [acme] for acmeName from the CA at directoryURL, storage in dir.
func acmeConfig(directoryURL, caRoot, dir string) string {
	return fmt.Sprintf("[acme]\nenabled = true\ndomains = [%q]\ndirectory_url = %q\nca_root = %q\ndir = %q\n", acmeName, directoryURL, caRoot, dir)
}

// servedLeaf is the certificate a handshake for acmeName gets at addr (nil before there is one).
func servedLeaf(addr string) *x509.Certificate {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{ServerName: acmeName, InsecureSkipVerify: true})
	if err != nil {
		return nil
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// awaitPebbleCert polls until addr serves a certificate for acmeName that verifies against
// pebble's root and intermediate (from its management API), and not the one not.
func awaitPebbleCert(t *testing.T, p *harness.Pebble, s *server, addr string, not *x509.Certificate) *x509.Certificate {
	t.Helper()
	root, intermediate, err := p.Chain()
	if err != nil {
		t.Fatalf("pebble's chain: %v\n%s", err, p.Report())
	}
	var leaf *x509.Certificate
	if !poll(90*time.Second, func() bool {
		leaf, err = harness.VerifiedLeaf(addr, acmeName, root, intermediate)
		return leaf != nil && (not == nil || leaf.SerialNumber.Cmp(not.SerialNumber) != 0)
	}) {
		t.Fatalf("%s serves no certificate for %s from pebble within 90s (last: %v)\naskrd log:\n%s\n%s", addr, acmeName, err, s.logs, p.Report())
	}
	return leaf
}

// checkStorageModes checks that the ACME storage holds only 0600 files in 0700 directories.
func checkStorageModes(t *testing.T, dir string) {
	t.Helper()
	for _, bad := range harness.PrivateTree(dir) {
		t.Error(bad)
	}
}

// [acme] end to end against Debian's pebble: askrd serves plain HTTP at once and obtains a
// certificate for a test name in the background (HTTP-01 on acme.http, or TLS-ALPN-01 on the
// HTTPS listener), serves it on the HTTPS listener and keeps it 0600; made to expire soon, it is
// renewed at the next start; with pebble stopped, a restart serves the stored one.
func TestACMEWithPebble(t *testing.T) {
	needPebble(t)
	plain, secure := freeAddr(t), freeAddr(t)
	pdir, store := t.TempDir(), filepath.Join(t.TempDir(), "acme")
	p, err := harness.StartPebble(harness.PebbleOptions{Dir: pdir, HTTPPort: port(t, plain), TLSPort: port(t, secure)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(5 * time.Second)
	conf := acmeConfig(p.DirectoryURL, p.CARoot, store)

	// listen is HTTPS; acme.http answers the challenges and redirects the rest.
	s := startAskrd(t, opts{config: conf + fmt.Sprintf("http = %q\n", plain), args: []string{"--listen", secure, "--workers", "1"}})
	code, loc, _ := fetch(t, noRedirects(), "http://"+plain+"/hello.txt")
	if want := "https://127.0.0.1:" + portOf(t, secure) + "/hello.txt"; code != http.StatusPermanentRedirect || loc != want {
		t.Errorf("GET http://%s/hello.txt = %d, Location %q; want 308 to %s", plain, code, loc, want)
	}
	first := awaitPebbleCert(t, p, s, secure, nil)
	logs := s.logs.String()
	serving, obtained := strings.Index(logs, `msg="askrd serving"`), strings.Index(logs, `msg="certificate obtained successfully" component=acme`)
	if serving < 0 || obtained < serving {
		t.Errorf("askrd serving logged at %d, the certificate obtained at %d: want serving first (READY does not wait)\n%s", serving, obtained, logs)
	}
	code, _, body := fetch(t, verifyingClient(t, p), "https://"+acmeName+":"+portOf(t, secure)+"/dump")
	if code != 200 || !strings.Contains(body, `"HTTPS":"on"`) {
		t.Errorf("GET https://%s/dump (verified) = %d %.200q; want 200 with HTTPS=on", acmeName, code, body)
	}
	checkStorageModes(t, store)
	s.stop()

	// Made to expire soon: the next start renews it (https_listen this time: listen is plain).
	if n, err := harness.ExpireSoon(store); err != nil || n != 1 {
		t.Fatalf("ExpireSoon(%s) = %d, %v; want 1 certificate", store, n, err)
	}
	layoutB := opts{config: strings.Replace(conf, "[acme]", fmt.Sprintf("[server]\nhttps_listen = %q\n[acme]", secure), 1),
		args: []string{"--listen", plain, "--workers", "1"}}
	s = startAskrd(t, layoutB)
	if code, _, body := fetch(t, noRedirects(), "http://"+plain+"/hello.txt"); code != 200 || body == "" {
		t.Errorf("GET http://%s/hello.txt = %d %q; want the file", plain, code, body)
	}
	renewed := awaitPebbleCert(t, p, s, secure, first)
	if renewed.NotAfter.Before(time.Now().Add(24 * time.Hour)) {
		t.Errorf("the renewed certificate expires %v", renewed.NotAfter)
	}
	s.waitLog(`msg="certificate renewed successfully" component=acme`, 10*time.Second)
	checkStorageModes(t, store)
	s.stop()

	// pebble stopped: a restart serves the stored certificate, asking the CA nothing.
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	s = startAskrd(t, layoutB)
	var again *x509.Certificate
	if !poll(10*time.Second, func() bool { again = servedLeaf(secure); return again != nil }) {
		t.Fatalf("no certificate served after a restart with pebble stopped:\n%s", s.logs)
	}
	if again.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Errorf("after a restart, serial %v served; want the stored %v", again.SerialNumber, renewed.SerialNumber)
	}
	if logs := s.logs.String(); strings.Contains(logs, "level=ERROR") || strings.Contains(logs, "obtaining certificate") || strings.Contains(logs, "renewing certificate") {
		t.Errorf("a restart with the certificate stored went to the CA:\n%s", logs)
	}
}

// A CA that does not answer: askrd serves plain HTTP all the same and logs the error, as
// component=acme.
func TestACMEUnreachableCA(t *testing.T) {
	dead := freeAddr(t) // nothing listens there
	plain, secure := freeAddr(t), freeAddr(t)
	conf := fmt.Sprintf("[server]\nhttps_listen = %q\n", secure) + acmeConfig("https://"+dead+"/dir", "", t.TempDir())
	conf = strings.Replace(conf, "ca_root = \"\"\n", "", 1)
	s := startAskrd(t, opts{config: conf, args: []string{"--listen", plain, "--workers", "1"}})
	if code, _, body := fetch(t, noRedirects(), "http://"+plain+"/hello.txt"); code != 200 || body == "" {
		t.Errorf("GET http://%s/hello.txt = %d %q; want the file", plain, code, body)
	}
	s.waitLog(`level=ERROR msg="could not get certificate from issuer" component=acme`, 30*time.Second)
	var line string
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(l, "could not get certificate from issuer") {
			line = l
			break
		}
	}
	if !strings.Contains(line, "connection refused") || !strings.Contains(line, dead) {
		t.Errorf("the error line %q: want the reason (connection refused) and the CA's address %s", line, dead)
	}
	if code, _, _ := fetch(t, noRedirects(), "http://"+plain+"/hello.txt"); code != 200 {
		t.Errorf("after the error, GET http://%s/hello.txt = %d; want 200", plain, code)
	}
}

// port is addr's port, as a number.
func port(t *testing.T, addr string) int {
	t.Helper()
	n, err := strconv.Atoi(portOf(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// verifyingClient trusts pebble's current root only and dials acmeName at 127.0.0.1.
func verifyingClient(t *testing.T, p *harness.Pebble) *http.Client {
	t.Helper()
	root, _, err := p.Chain()
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return dialer.DialContext(ctx, network, "127.0.0.1:"+port)
		},
	}}
}
