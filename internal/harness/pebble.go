package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// PebbleOptions says where a Pebble lives and where it validates challenges.
type PebbleOptions struct {
	Dir      string // its config and its API's certificate (kept: a restart reuses the certificate)
	HTTPPort int    // the port pebble sends HTTP-01 validations to
	TLSPort  int    // the port pebble sends TLS-ALPN-01 validations to
}

// Pebble is Debian's pebble, the ACME test CA (RFC 8555), on 127.0.0.1, with pebble-challtestsrv
// as its DNS server, which answers 127.0.0.1 for every name, so that any test name validates
// against loopback. Pebble makes a new root and intermediate at every start.
type Pebble struct {
	DirectoryURL string // the ACME directory, https://127.0.0.1:PORT/dir
	CARoot       string // the PEM file of the certificate pebble's API is served with (self-signed)
	Pebble, DNS  *Proc
	mgmt         string // the management API's address (roots, intermediates)
	client       *http.Client
	config       string    // pebble's config file
	addrs        [4]string // pebble's API, its management API, DNS, challtestsrv's management API
}

// PebbleInstalled reports whether pebble and pebble-challtestsrv are installed (Debian's pebble).
func PebbleInstalled() error {
	for _, p := range []string{"/usr/bin/pebble", "/usr/bin/pebble-challtestsrv"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s: %w (apt install pebble)", p, err)
		}
	}
	return nil
}

// StartPebble starts pebble-challtestsrv and pebble, and waits until both answer.
func StartPebble(o PebbleOptions) (*Pebble, error) {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	certFile, keyFile := filepath.Join(o.Dir, "pebble-api.crt"), filepath.Join(o.Dir, "pebble-api.key")
	if _, err := os.Stat(certFile); err != nil {
		if err := writeLoopbackCert(certFile, keyFile); err != nil {
			return nil, err
		}
	}
	p := &Pebble{CARoot: certFile, config: filepath.Join(o.Dir, "pebble.json")}
	for i := range p.addrs {
		a, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		p.addrs[i] = a
	}
	p.mgmt, p.DirectoryURL = p.addrs[1], "https://"+p.addrs[0]+"/dir"
	b, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": p.addrs[0], "managementListenAddress": p.addrs[1],
		"certificate": certFile, "privateKey": keyFile,
		"httpPort": o.HTTPPort, "tlsPort": o.TLSPort,
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
	}})
	if err := os.WriteFile(p.config, b, 0o644); err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	pemBytes, _ := os.ReadFile(certFile)
	roots.AppendCertsFromPEM(pemBytes)
	p.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	return p, p.Start()
}

// Start starts pebble and its DNS server (again, after Stop) on the same addresses: the directory
// URL stays, the CA's root and intermediate and its accounts are new.
func (p *Pebble) Start() error {
	var err error
	p.DNS, err = Start(Cmd{Name: "pebble-challtestsrv", Path: "/usr/bin/pebble-challtestsrv", Args: []string{
		"-dns01", p.addrs[2], "-http01", "", "-https01", "", "-tlsalpn01", "",
		"-management", p.addrs[3], "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""}})
	if err != nil {
		return err
	}
	p.Pebble = nil
	if err := p.DNS.WaitUntil("serving", 10*time.Second, func() bool { return Dialable("tcp", p.addrs[2]) }); err != nil {
		p.Stop(time.Second)
		return err
	}
	p.Pebble, err = Start(Cmd{Name: "pebble", Path: "/usr/bin/pebble", Args: []string{"-config", p.config, "-dnsserver", p.addrs[2]},
		Env: []string{"PEBBLE_VA_NOSLEEP=1"}})
	if err != nil {
		p.Stop(time.Second)
		return err
	}
	if err := p.Pebble.WaitUntil("serving", 10*time.Second, func() bool {
		return Dialable("tcp", p.addrs[0]) && Dialable("tcp", p.addrs[1])
	}); err != nil {
		p.Stop(time.Second)
		return err
	}
	return nil
}

// Stop stops pebble and its DNS server.
func (p *Pebble) Stop(grace time.Duration) error {
	var errs []error
	if p.Pebble != nil {
		errs = append(errs, p.Pebble.Stop(grace))
	}
	errs = append(errs, p.DNS.Stop(grace))
	if p.client != nil {
		p.client.CloseIdleConnections()
	}
	return errors.Join(errs...)
}

// Report is both processes' output, for a failure message.
func (p *Pebble) Report() string {
	s := p.DNS.Report()
	if p.Pebble != nil {
		s = p.Pebble.Report() + "\n" + s
	}
	return s
}

// Chain is the root and the intermediate pebble signs with now (its management API's /roots/0
// and /intermediates/0).
func (p *Pebble) Chain() (root, intermediate *x509.Certificate, err error) {
	get := func(path string) (*x509.Certificate, error) {
		resp, err := p.client.Get("https://" + p.mgmt + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		block, _ := pem.Decode(body)
		if resp.StatusCode != http.StatusOK || block == nil {
			return nil, fmt.Errorf("pebble %s: %s %q", path, resp.Status, body)
		}
		return x509.ParseCertificate(block.Bytes)
	}
	if root, err = get("/roots/0"); err == nil {
		intermediate, err = get("/intermediates/0")
	}
	return root, intermediate, err
}

// writeLoopbackCert writes a self-signed certificate for 127.0.0.1 and localhost and its key.
func writeLoopbackCert(certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "pebble API (askr tests)"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// ExpireSoon replaces every certificate certmagic keeps under the ACME storage dir with one for
// the same names and the same key that expires in a few minutes (signed by a throwaway CA), so
// that the next start finds it in its renewal window. It returns how many it replaced.
func ExpireSoon(dir string) (int, error) {
	n := 0
	err := filepath.WalkDir(filepath.Join(dir, "certificates"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".crt" {
			return err
		}
		pemBytes, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		block, _ := pem.Decode(pemBytes)
		if block == nil {
			return fmt.Errorf("%s: no PEM", path)
		}
		old, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return err
		}
		caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()),
			Subject:      old.Subject, DNSNames: old.DNSNames, IPAddresses: old.IPAddresses,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(5 * time.Minute),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "askr tests: expiring soon"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, old.PublicKey, caKey)
		if err != nil {
			return err
		}
		n++
		return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	})
	return n, err
}

// PrivateTree checks that dir holds at least one file and only files of mode 0600 in directories
// of mode 0700, as ACME's storage must: it returns what is not so.
func PrivateTree(dir string) []string {
	var bad []string
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = fs.ModeDir | 0o700
		} else {
			files++
		}
		if fi.Mode() != want {
			bad = append(bad, fmt.Sprintf("%s: mode %v; want %v", path, fi.Mode(), want))
		}
		return nil
	})
	if err != nil {
		bad = append(bad, err.Error())
	}
	if files == 0 {
		bad = append(bad, dir+" holds no file")
	}
	return bad
}

// VerifiedLeaf is the certificate a TLS handshake for name gets at addr, once it verifies for
// name against root and intermediate (a Pebble's Chain); else the error of the dial or of the
// verification.
func VerifiedLeaf(addr, name string, root, intermediate *x509.Certificate) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	leaf := c.ConnectionState().PeerCertificates[0]
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	inter.AddCert(intermediate)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter}); err != nil {
		return nil, err
	}
	return leaf, nil
}
