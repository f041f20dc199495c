package certificate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/harness"
)

const testName = "askr-test.example"

// needPebble skips without Debian's pebble, and fails under CI (make test installs it).
func needPebble(t *testing.T) {
	t.Helper()
	if err := harness.PebbleInstalled(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (make deps-test installs it)", err)
		}
		t.Skip(err)
	}
}

// acmeSide is a Manager with ACME served the way askrd serves it: Challenge on a plain HTTP
// listener, TLSConfig on an HTTPS one.
type acmeSide struct {
	m        *Manager
	logs     *syncBuffer
	httpAddr string
	tlsAddr  string
	stop     func() // ends the Manager and closes the listeners
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// startACMESide serves a Manager for testName with storage in dir on httpAddr and tlsAddr.
func startACMESide(t *testing.T, dir, directoryURL, caRoot, httpAddr, tlsAddr string) *acmeSide {
	t.Helper()
	httpLn, err := net.Listen("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	tlsLn, err := net.Listen("tcp", tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	log, logs := testLogger()
	log = log.With("component", "acme") // as askrd names it
	m, err := New(Options{Logger: log, ACME: &ACME{
		Domains: []string{testName}, Email: "admin@" + testName, Dir: dir,
		DirectoryURL: directoryURL, CARoot: caRoot,
		HTTPPort: port(httpAddr), TLSPort: port(tlsAddr),
	}})
	if err != nil {
		t.Fatalf("New(ACME) error = %v", err)
	}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") })
	plain := &http.Server{Handler: m.Challenge(app)}
	// Handshakes before the certificate exists fail: the poll's, not worth a line each.
	secure := &http.Server{Handler: app, ErrorLog: stdlog.New(io.Discard, "", 0)}
	go plain.Serve(httpLn)
	go secure.Serve(tls.NewListener(tlsLn, m.TLSConfig()))
	ctx, cancel := context.WithCancel(context.Background())
	s := &acmeSide{m: m, logs: logs, httpAddr: httpAddr, tlsAddr: tlsAddr}
	s.stop = func() {
		cancel()
		plain.Close()
		secure.Close()
	}
	m.Start(ctx)
	t.Cleanup(s.stop)
	return s
}

// awaitIssued polls until addr serves a certificate for testName from pebble p.
func awaitIssued(t *testing.T, p *harness.Pebble, addr string, logs *syncBuffer) *x509.Certificate {
	t.Helper()
	root, intermediate, err := p.Chain()
	if err != nil {
		t.Fatalf("pebble's chain: %v\n%s", err, p.Report())
	}
	var leaf *x509.Certificate
	if !harness.Poll(90*time.Second, func() bool {
		leaf, err = harness.VerifiedLeaf(addr, testName, root, intermediate)
		return leaf != nil
	}) {
		t.Fatalf("no certificate from pebble for %s on %s within 90s: %v\nlog:\n%s\n%s", testName, addr, err, logs, p.Report())
	}
	return leaf
}

// checkModes checks that the ACME storage holds only 0600 files in 0700 directories.
func checkModes(t *testing.T, dir string) {
	t.Helper()
	for _, bad := range harness.PrivateTree(dir) {
		t.Error(bad)
	}
}

// The package alone against pebble: a certificate is issued for a test name over HTTP-01 or
// TLS-ALPN-01 and served by TLSConfig; storage is 0600; a new Manager with pebble stopped serves
// the stored certificate; one made to expire soon is renewed when the next Manager starts.
func TestACMEWithPebble(t *testing.T) {
	needPebble(t)
	httpAddr, tlsAddr := freeAddr(t), freeAddr(t)
	pdir, store := t.TempDir(), filepath.Join(t.TempDir(), "acme")
	p, err := harness.StartPebble(harness.PebbleOptions{Dir: pdir, HTTPPort: port(httpAddr), TLSPort: port(tlsAddr)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { p.Stop(5 * time.Second) }()

	s := startACMESide(t, store, p.DirectoryURL, p.CARoot, httpAddr, tlsAddr)
	// The plain side answers at once, before any certificate exists.
	if resp, err := http.Get("http://" + s.httpAddr + "/"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("plain HTTP right after Start: %v %v", resp, err)
	}
	first := awaitIssued(t, p, s.tlsAddr, s.logs)
	st := s.m.Status()
	if len(st) != 1 || st[0].Source != "acme" || !st[0].NotAfter.Equal(first.NotAfter) || st[0].Error != "" || st[0].Issuer == "" {
		t.Errorf("Status() = %+v; want acme, not after %v, no error", st, first.NotAfter)
	}
	if c, err := tls.Dial("tcp", s.tlsAddr, &tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Errorf("a handshake without a server name: %v; want the first domain's certificate", err)
	} else {
		if got := c.ConnectionState().PeerCertificates[0]; got.SerialNumber.Cmp(first.SerialNumber) != 0 {
			t.Errorf("a handshake without a server name got serial %v; want %v", got.SerialNumber, first.SerialNumber)
		}
		c.Close()
	}
	if got := s.m.TLSConfig().NextProtos; strings.Join(got, ",") != "h2,http/1.1,acme-tls/1" {
		t.Errorf("TLSConfig().NextProtos = %q", got)
	}
	if info, err := os.Stat(store); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("storage dir %s: %v %v; want made 0700", store, info.Mode(), err)
	}
	checkModes(t, store)
	s.stop()

	// Made to expire soon: the next Manager renews it with pebble at once.
	if n, err := harness.ExpireSoon(store); err != nil || n != 1 {
		t.Fatalf("ExpireSoon(%s) = %d, %v; want 1 certificate", store, n, err)
	}
	s = startACMESide(t, store, p.DirectoryURL, p.CARoot, httpAddr, tlsAddr)
	renewed := awaitIssued(t, p, s.tlsAddr, s.logs)
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 || renewed.NotAfter.Before(time.Now().Add(24*time.Hour)) || !strings.Contains(s.logs.String(), "certificate renewed successfully") {
		t.Errorf("after ExpireSoon, serving serial %v (first %v) until %v; want a renewed one; log:\n%s", renewed.SerialNumber, first.SerialNumber, renewed.NotAfter, s.logs)
	}
	checkModes(t, store)
	s.stop()

	// pebble stopped: a new Manager serves the stored certificate without a request to the CA.
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	s = startACMESide(t, store, p.DirectoryURL, p.CARoot, httpAddr, tlsAddr)
	var again *x509.Certificate
	pollUntil(t, "serving the stored certificate", 10*time.Second, func() bool {
		c, err := tls.Dial("tcp", s.tlsAddr, &tls.Config{ServerName: testName, InsecureSkipVerify: true})
		if err == nil {
			again = c.ConnectionState().PeerCertificates[0]
			c.Close()
		}
		return again != nil
	})
	if again.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Errorf("after a restart, serial %v served; want the stored %v", again.SerialNumber, renewed.SerialNumber)
	}
	if logs := s.logs.String(); strings.Contains(logs, "level=ERROR") || strings.Contains(logs, `msg="http request"`) {
		t.Errorf("a restart with a stored certificate asked the CA:\n%s", logs)
	}
}

// A CA that does not answer: the Manager serves plain HTTP and reports the error, in the log
// (component=acme) and in Status.
func TestACMEUnreachableCA(t *testing.T) {
	dead := listenLoopback(t)
	deadURL := "https://" + dead.Addr().String() + "/dir"
	dead.Close()
	s := startACMESide(t, filepath.Join(t.TempDir(), "acme"), deadURL, "", freeAddr(t), freeAddr(t))
	if resp, err := http.Get("http://" + s.httpAddr + "/"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("plain HTTP with an unreachable CA: %v %v", resp, err)
	}
	pollUntil(t, "an error in Status", 30*time.Second, func() bool { return s.m.Status()[0].Error != "" })
	if st := s.m.Status()[0]; !strings.Contains(st.Error, "connection refused") || !st.NotAfter.IsZero() {
		t.Errorf("Status() = %+v; want the error connecting to the CA and no certificate", st)
	}
	if logs := s.logs.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "component=acme") || !strings.Contains(logs, "connection refused") {
		t.Errorf("log has no ERROR of component=acme saying why:\n%s", logs)
	}
	// The end of Start's ctx stops the Manager's certmagic cache (its maintenance goroutine).
	s.stop()
	pollUntil(t, "the certmagic cache stopped", 10*time.Second, func() bool {
		buf := make([]byte, 1<<20)
		return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "certmagic.(*Cache).maintainAssets")
	})
}

// With nothing answering HTTP-01 (pebble validates it on a port nobody serves), the certificate
// is obtained over TLS-ALPN-01 on the HTTPS listener, through TLSConfig.
func TestACMETLSALPN(t *testing.T) {
	needPebble(t)
	httpAddr, tlsAddr, deadAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	p, err := harness.StartPebble(harness.PebbleOptions{Dir: t.TempDir(), HTTPPort: port(deadAddr), TLSPort: port(tlsAddr)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(5 * time.Second)
	s := startACMESide(t, filepath.Join(t.TempDir(), "acme"), p.DirectoryURL, p.CARoot, httpAddr, tlsAddr)
	awaitIssued(t, p, s.tlsAddr, s.logs)
	if logs := s.logs.String(); !strings.Contains(logs, `msg="served key authentication certificate"`) {
		t.Errorf("no TLS-ALPN-01 challenge served:\n%s", logs)
	}
}
