package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeTLSPair writes a certificate for 127.0.0.1 with serial, and its key, renaming each into
// place as certbot and most tools do.
func writeTLSPair(t *testing.T, certFile, keyFile string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "askr tls reload test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for path, b := range map[string][]byte{certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyFile: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})} {
		if err := os.WriteFile(path+".new", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
	}
}

// [tls] cert and key replaced on disk: askrd serves the new pair from the next handshake on,
// found by itself (the files' change) or at once on askrd reload, while a connection opened
// before goes on serving requests. A key of another certificate keeps the old pair, with a WARN.
func TestTLSFilesReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeTLSPair(t, certFile, keyFile, 1)
	s := startAskrd(t, opts{config: fmt.Sprintf("[tls]\ncert = %q\nkey = %q\n", certFile, keyFile), args: []string{"--workers", "1"}})
	serial := func() int64 {
		c, err := tls.Dial("tcp", s.Addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	// One connection, kept alive throughout: a second dial would mean it was dropped.
	dials := 0
	open := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials++
			return tls.Dial(network, addr, &tls.Config{InsecureSkipVerify: true})
		},
		MaxConnsPerHost: 1,
	}}
	get := func(when string) {
		t.Helper()
		if code, _, body := fetch(t, open, "https://"+s.Addr+"/hello.txt"); code != 200 || body == "" {
			t.Errorf("%s: GET over the open connection = %d %q", when, code, body)
		}
	}
	get("before")
	if got := serial(); got != 1 {
		t.Fatalf("serial served = %d; want 1", got)
	}

	writeTLSPair(t, certFile, keyFile, 2) // found by polling the files
	if !poll(15*time.Second, func() bool { return serial() == 2 }) {
		t.Fatalf("askrd still serves serial %d 15s after the files changed:\n%s", serial(), s.logs)
	}
	get("after the files changed")
	s.waitLog(`level=INFO msg="serving a new certificate from the [tls] files" component=tls`, 5*time.Second)

	writeTLSPair(t, certFile, keyFile, 3) // askrd reload reads them at once
	if out, err := reloadCLI(t, s); err != nil {
		t.Fatalf("askrd reload: %v\n%s", err, out)
	}
	if !poll(5*time.Second, func() bool { return serial() == 3 }) { // the reload's new generation may take a moment
		t.Errorf("after askrd reload, serial %d served; want 3", serial())
	}
	get("after askrd reload")

	other := filepath.Join(dir, "other")
	writeTLSPair(t, other+".crt", other+".key", 4)
	if err := os.Rename(other+".key", keyFile); err != nil { // a key that does not match
		t.Fatal(err)
	}
	s.waitLog(`level=WARN msg="the [tls] files changed but do not make a certificate; still serving the previous one" component=tls`, 15*time.Second)
	if got := serial(); got != 3 {
		t.Errorf("after a key that does not match, serial %d served; want still 3", got)
	}
	get("after a bad pair")
	if dials != 1 {
		t.Errorf("the client dialled %d connections; want 1 kept open throughout", dials)
	}
}
