package certificate

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/harness"
)

// writePair writes a certificate for localhost with serial and its key to dir/name.crt and
// dir/name.key, each renamed into place (as certbot and most tools write them).
func writePair(t *testing.T, dir, name string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "localhost"},
		Issuer:    pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writeRenamed(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeRenamed(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	return certFile, keyFile
}

func writeRenamed(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a log destination the test reads while the Manager writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger() (*slog.Logger, *syncBuffer) {
	b := &syncBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// serveTLS serves m's TLSConfig on a loopback listener; it returns the address.
func serveTLS(t *testing.T, m *Manager) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })}
	go srv.Serve(tls.NewListener(ln, m.TLSConfig()))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// servedSerial is the serial of the certificate a new handshake with addr gets.
func servedSerial(t *testing.T, addr string) int64 {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("handshake with %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func pollUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !harness.Poll(timeout, cond) {
		t.Fatalf("not %s within %v", what, timeout)
	}
}

func TestNewFilesErrors(t *testing.T) {
	dir := t.TempDir()
	cert1, key1 := writePair(t, dir, "one", 1)
	_, key2 := writePair(t, dir, "two", 2)
	for _, tt := range []struct {
		name      string
		cert, key string
		want      string
	}{
		{"missing cert", filepath.Join(dir, "nope.crt"), key1, "tls.cert: stat " + filepath.Join(dir, "nope.crt")},
		{"missing key", cert1, filepath.Join(dir, "nope.key"), "tls.key: stat " + filepath.Join(dir, "nope.key")},
		{"key of another certificate", cert1, key2, "tls.cert " + cert1 + " and tls.key " + key2 + ": tls: private key does not match public key"},
		{"key given as cert", key1, key1, "tls.cert " + key1 + " and tls.key " + key1 + ": "},
	} {
		_, err := New(Options{Cert: tt.cert, Key: tt.key})
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: New(%s, %s) error = %v; want %q…", tt.name, tt.cert, tt.key, err, tt.want)
		}
	}
	m, err := New(Options{Cert: cert1, Key: key1})
	if err != nil {
		t.Fatalf("New(a good pair) error = %v", err)
	}
	st := m.Status()
	if len(st) != 1 || st[0].Source != "files" || st[0].NotAfter.IsZero() || st[0].Issuer != "localhost" || strings.Join(st[0].Names, ",") != "localhost,127.0.0.1" {
		t.Errorf("Status() = %+v; want one of source files, for localhost,127.0.0.1, issued by localhost", st)
	}
	if got := m.TLSConfig().NextProtos; strings.Join(got, ",") != "h2,http/1.1" {
		t.Errorf("TLSConfig().NextProtos = %q; want h2, http/1.1", got)
	}
}

// Files replaced on disk are served from the next handshake on, without Reload; an open
// connection goes on working; a bad pair keeps the certificate served, with one WARN.
func TestFilesChangeOnDisk(t *testing.T) {
	pollEvery = 50 * time.Millisecond
	t.Cleanup(func() { pollEvery = 2 * time.Second })
	dir := t.TempDir()
	cert, key := writePair(t, dir, "live", 1)
	log, logs := testLogger()
	m, err := New(Options{Cert: cert, Key: key, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.Start(ctx)
	addr := serveTLS(t, m)
	if got := servedSerial(t, addr); got != 1 {
		t.Fatalf("serial served = %d; want 1", got)
	}
	// A connection opened before the change, kept alive across it.
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var openConn net.Conn
	get := func() {
		t.Helper()
		resp, err := client.Get("https://" + addr + "/")
		if err != nil {
			t.Fatalf("GET over the open connection: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "hello" {
			t.Fatalf("GET = %q", b)
		}
	}
	tr.DialTLSContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		if openConn != nil {
			t.Errorf("a second connection was dialled: the first one was dropped")
		}
		c, err := tls.Dial(network, a, &tls.Config{InsecureSkipVerify: true})
		openConn = c
		return c, err
	}
	get()

	writePair(t, dir, "live", 2)
	pollUntil(t, "serving serial 2", 10*time.Second, func() bool { return servedSerial(t, addr) == 2 })
	get()
	if !strings.Contains(logs.String(), "level=INFO msg=\"serving a new certificate from the [tls] files\"") {
		t.Errorf("log has no INFO about the new certificate:\n%s", logs)
	}

	// The key of another certificate: the old one stays, one WARN says why.
	_, otherKey := writePair(t, dir, "other", 3)
	b, _ := os.ReadFile(otherKey)
	writeRenamed(t, key, b)
	pollUntil(t, "a WARN", 10*time.Second, func() bool { return strings.Contains(logs.String(), "level=WARN") })
	if got := servedSerial(t, addr); got != 2 {
		t.Errorf("after a bad pair, serial served = %d; want still 2", got)
	}
	time.Sleep(3 * pollEvery) // polls that see no new change must not warn again
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "private key does not match public key") {
		t.Errorf("%d WARNs (want 1, with the reason):\n%s", n, logs)
	}
	if st := m.Status(); !strings.Contains(st[0].Error, "private key does not match") {
		t.Errorf("Status().Error = %q; want the reason", st[0].Error)
	}
	get()
}

// Reload reads the files now; a bad pair is an error and the certificate served stays.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	cert, key := writePair(t, dir, "live", 1)
	m, err := New(Options{Cert: cert, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, m) // not started: no polling, only Reload
	writePair(t, dir, "live", 2)
	if got := servedSerial(t, addr); got != 1 {
		t.Fatalf("before Reload, serial served = %d; want 1", got)
	}
	if err := m.Reload(); err != nil {
		t.Fatalf("Reload() error = %v", err)
	}
	if got := servedSerial(t, addr); got != 2 {
		t.Fatalf("after Reload, serial served = %d; want 2", got)
	}
	if err := os.WriteFile(cert, []byte("-----BEGIN CERTIFICATE-----\nhalf"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(); err == nil || !strings.Contains(err.Error(), cert) {
		t.Errorf("Reload(a half-written cert) error = %v; want one naming %s", err, cert)
	}
	if got := servedSerial(t, addr); got != 2 {
		t.Errorf("after a failed Reload, serial served = %d; want still 2", got)
	}
}

func TestSelfSignedManager(t *testing.T) {
	m, err := New(Options{SelfSigned: true, Listen: "dev.example:8443"})
	if err != nil {
		t.Fatal(err)
	}
	st := m.Status()
	if len(st) != 1 || st[0].Source != "self-signed" || strings.Join(st[0].Names, ",") != "localhost,dev.example,127.0.0.1,::1" {
		t.Errorf("Status() = %+v; want self-signed for localhost,dev.example,127.0.0.1,::1", st)
	}
	if err := m.Reload(); err != nil {
		t.Errorf("Reload() of a self-signed certificate error = %v; want nil", err)
	}
}

// certbot's layout: live/ holds symlinks into archive/; a renewal writes new archive files and
// switches the links. The poll follows the links, so the switch is a change.
func TestFilesSymlinkSwitch(t *testing.T) {
	pollEvery = 50 * time.Millisecond
	t.Cleanup(func() { pollEvery = 2 * time.Second })
	dir := t.TempDir()
	archive, live := filepath.Join(dir, "archive"), filepath.Join(dir, "live")
	for _, d := range []string{archive, live} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writePair(t, archive, "1", 1)
	link := func(n string) {
		t.Helper()
		for _, ext := range []string{".crt", ".key"} {
			tmp := filepath.Join(live, "tmp"+ext)
			if err := os.Symlink(filepath.Join("..", "archive", n+ext), tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(live, "cert"+ext)); err != nil {
				t.Fatal(err)
			}
		}
	}
	link("1")
	m, err := New(Options{Cert: filepath.Join(live, "cert.crt"), Key: filepath.Join(live, "cert.key")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.Start(ctx)
	addr := serveTLS(t, m)
	if got := servedSerial(t, addr); got != 1 {
		t.Fatalf("serial served = %d; want 1", got)
	}
	writePair(t, archive, "2", 2)
	link("2")
	pollUntil(t, "serving serial 2 after the links switched", 10*time.Second, func() bool { return servedSerial(t, addr) == 2 })
}
