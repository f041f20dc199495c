package certificate

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// acmeTLS1 is the ALPN protocol of TLS-ALPN-01 challenges.
const acmeTLS1 = "acme-tls/1"

// acmeManager is one certmagic cache, config and ACME issuer: the cache is this Manager's own
// (not certmagic's package default), and Start's ctx stops it.
type acmeManager struct {
	domains []string
	log     *slog.Logger
	cache   *certmagic.Cache
	cfg     *certmagic.Config
	issuer  *certmagic.ACMEIssuer

	mu     sync.Mutex
	errors map[string]string // domain → the last error obtaining or renewing its certificate
}

// newACME sets up certmagic for a: storage in a.Dir (made, 0700, if missing), the issuer of
// a.DirectoryURL (or Let's Encrypt's), trusting the system's roots and a.CARoot's.
func newACME(a ACME, log *slog.Logger) (*acmeManager, error) {
	if len(a.Domains) == 0 {
		return nil, fmt.Errorf("acme.domains: none")
	}
	if err := os.MkdirAll(a.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("acme.dir: %w", err)
	}
	roots, err := trustedRoots(a.CARoot)
	if err != nil {
		return nil, err
	}
	m := &acmeManager{domains: a.Domains, log: log, errors: map[string]string{}}
	zl := zap.New(slogCore{log: log})
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return m.cfg, nil },
		Logger:           zl,
	})
	m.cfg = certmagic.New(m.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: a.Dir},
		Logger:  zl,
		OnEvent: m.onEvent,
		// A client that sends no name (https://IP/, health checks) gets the first domain's.
		DefaultServerName: a.Domains[0],
	})
	ca := a.DirectoryURL
	switch {
	case ca == "" && a.Staging:
		ca = certmagic.LetsEncryptStagingCA
	case ca == "":
		ca = certmagic.LetsEncryptProductionCA
	}
	m.issuer = certmagic.NewACMEIssuer(m.cfg, certmagic.ACMEIssuer{
		CA:                   ca,
		Email:                a.Email,
		Agreed:               true,
		TrustedRoots:         roots,
		AltHTTPPort:          max(a.HTTPPort, 0),
		DisableHTTPChallenge: a.HTTPPort < 0,
		AltTLSALPNPort:       a.TLSPort,
		Logger:               zl,
	})
	m.cfg.Issuers = []certmagic.Issuer{m.issuer}
	return m, nil
}

// trustedRoots is the system's pool plus the certificates of the PEM file caRoot ("" none).
func trustedRoots(caRoot string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if caRoot == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(caRoot)
	if err != nil {
		return nil, fmt.Errorf("acme.ca_root: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("acme.ca_root: %s holds no PEM certificate", caRoot)
	}
	return pool, nil
}

// run manages the domains' certificates: a certificate in storage is served at once (and renewed
// when in its renewal window), the others are obtained in the background, retried by certmagic
// on failure; certmagic's maintenance loop renews them. When ctx ends, the cache stops.
func (m *acmeManager) run(ctx context.Context) {
	defer m.cache.Stop()
	if err := m.cfg.ManageAsync(ctx, m.domains); err != nil {
		m.log.Error("managing the certificates", "err", err)
	}
	<-ctx.Done()
}

// onEvent keeps the last error of each domain for Status.
func (m *acmeManager) onEvent(_ context.Context, event string, data map[string]any) error {
	name, _ := data["identifier"].(string)
	switch event {
	case "cert_failed":
		m.mu.Lock()
		m.errors[name] = fmt.Sprint(data["error"])
		m.mu.Unlock()
	case "cert_obtained":
		m.mu.Lock()
		delete(m.errors, name)
		m.mu.Unlock()
	}
	return nil
}

// status reports each domain's certificate: the one in the cache, or none yet and the last error.
func (m *acmeManager) status() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, 0, len(m.domains))
	for _, d := range m.domains {
		s := Status{Source: "acme", Names: []string{d}}
		for _, c := range m.cache.AllMatchingCertificates(d) {
			if c.Leaf != nil && c.Leaf.NotAfter.After(s.NotAfter) {
				s = leafStatus("acme", &c.Certificate)
			}
		}
		s.Error = m.errors[d]
		out = append(out, s)
	}
	return out
}
