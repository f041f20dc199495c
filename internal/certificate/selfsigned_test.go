package certificate

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"testing"
	"time"
)

func TestSelfSigned(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		listen string
		dns    []string
		ip     []string
	}{
		{"127.0.0.1:8443", []string{"localhost"}, []string{"127.0.0.1", "::1"}},
		{"0.0.0.0:443", []string{"localhost"}, []string{"127.0.0.1", "::1"}},
		{"dev.example:8443", []string{"localhost", "dev.example"}, []string{"127.0.0.1", "::1"}},
		{"192.0.2.7:443", []string{"localhost"}, []string{"127.0.0.1", "::1", "192.0.2.7"}},
		{"[2001:db8::1]:443", []string{"localhost"}, []string{"127.0.0.1", "::1", "2001:db8::1"}},
	} {
		cert, err := selfSigned(tt.listen, now)
		if err != nil {
			t.Fatalf("selfSigned(%q) error = %v", tt.listen, err)
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		var ips []string
		for _, ip := range leaf.IPAddresses {
			ips = append(ips, ip.String())
		}
		if leaf.Version != 3 || leaf.PublicKeyAlgorithm != x509.ECDSA || !slices.Equal(leaf.DNSNames, tt.dns) || !slices.Equal(ips, tt.ip) {
			t.Errorf("selfSigned(%q) = v%d %v, names %q, IPs %q; want v3 ECDSA, %q, %q", tt.listen, leaf.Version, leaf.PublicKeyAlgorithm, leaf.DNSNames, ips, tt.dns, tt.ip)
		}
		// It verifies as its own root for its names, now and not after a year.
		roots := x509.NewCertPool()
		roots.AddCert(leaf)
		for _, name := range append(tt.dns, tt.ip...) {
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now}); err != nil {
				t.Errorf("selfSigned(%q) does not verify for %s: %v", tt.listen, name, err)
			}
		}
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: roots, CurrentTime: now.AddDate(1, 0, 1)}); err == nil {
			t.Errorf("selfSigned(%q) is still valid after a year", tt.listen)
		}
		if _, err := tls.X509KeyPair(pemCert(cert), pemKey(t, cert)); err != nil {
			t.Errorf("selfSigned(%q): key does not match the certificate: %v", tt.listen, err)
		}
	}
}

func pemCert(c tls.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
}

func pemKey(t *testing.T, c tls.Certificate) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
