// Package certificate provides the certificates askrd serves HTTPS with: a [tls] cert and key pair
// (read again on reload and when the files change, without dropping a connection), a self-signed
// one made in memory, or ones obtained and renewed over ACME (certmagic), whose HTTP-01 challenges
// the plain HTTP side answers through Challenge and whose TLS-ALPN-01 challenges TLSConfig answers.
// It opens no listener.
package certificate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options says where the certificates come from: Cert and Key, SelfSigned, or ACME.
type Options struct {
	Cert, Key  string       // PEM files of [tls]
	SelfSigned bool         // [tls] self_signed
	Listen     string       // the listen address, whose host a self-signed certificate names too
	ACME       *ACME        // nil: no ACME
	Logger     *slog.Logger // certmagic's log (zap) goes here too
}

// ACME is [acme].
type ACME struct {
	Domains      []string
	Email        string // the account's contact ("" none)
	Dir          string // storage: the account key and the certificates, 0600 files in 0700 directories
	DirectoryURL string // "" Let's Encrypt's production directory (staging: its staging one)
	Staging      bool
	CARoot       string // a PEM file of roots to trust besides the system's, for the CA's API

	// HTTPPort and TLSPort are the ports of askrd's plain HTTP listener (the one Challenge
	// serves) and HTTPS listener (TLSConfig's), where the CA validates: 0 means 80 and 443.
	// certmagic binds the challenge port itself when nothing listens there, so askrd names
	// the ports it listens on for that not to happen. HTTPPort -1: askrd has no plain HTTP
	// listener, and only TLS-ALPN-01 is used.
	HTTPPort, TLSPort int
}

// Status is one certificate askrd serves, for /status and the metrics.
type Status struct {
	Source   string    `json:"source"`    // "files", "self-signed" or "acme"
	Names    []string  `json:"names"`     // the names it is for
	NotAfter time.Time `json:"not_after"` // zero while none has been obtained
	Issuer   string    `json:"issuer"`
	Error    string    `json:"error,omitempty"` // the last error obtaining, renewing or reading it ("" none)
}

// pollEvery is how often Start's goroutine looks at [tls]'s files for a change.
var pollEvery = 2 * time.Second

// Manager hands out the certificates.
type Manager struct {
	log        *slog.Logger
	source     string // "files", "self-signed" or "acme"
	cert, key  string // [tls]'s files
	served     atomic.Pointer[tls.Certificate]
	acme       *acmeManager // nil without ACME
	mu         sync.Mutex   // guards stamp and lastErr
	stamp      pairStamp    // the files as last read
	lastErr    string
	nextProtos []string

	life    sync.Mutex         // guards started, closed and stop
	started bool               // Start ran
	closed  bool               // Close ran
	stop    context.CancelFunc // ends what Start began
	running sync.WaitGroup     // Start's goroutine
}

// New prepares the certificates: it reads [tls]'s files (an error if they do not make a pair) or
// makes the self-signed one, or sets up ACME (without asking the CA anything yet).
func New(o Options) (*Manager, error) {
	m := &Manager{log: o.Logger, nextProtos: []string{"h2", "http/1.1"}}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.ACME != nil:
		m.source = "acme"
		a, err := newACME(*o.ACME, m.log)
		if err != nil {
			return nil, err
		}
		m.acme = a
		m.nextProtos = append(m.nextProtos, acmeTLS1)
	case o.SelfSigned:
		m.source = "self-signed"
		cert, err := selfSigned(o.Listen, time.Now())
		if err != nil {
			return nil, fmt.Errorf("tls.self_signed: %w", err)
		}
		m.served.Store(&cert)
	case o.Cert != "" || o.Key != "":
		m.source, m.cert, m.key = "files", o.Cert, o.Key
		stamp, cert, err := loadPair(o.Cert, o.Key)
		if err != nil {
			return nil, err
		}
		m.stamp = stamp
		m.served.Store(cert)
	default:
		return nil, errors.New("certificate: no [tls] files, self_signed or [acme]")
	}
	return m, nil
}

// TLSConfig is the configuration of the HTTPS listeners (h2 and http/1.1, and acme-tls/1 with
// ACME). Its GetCertificate hands out the certificate current at each handshake.
func (m *Manager) TLSConfig() *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: append([]string(nil), m.nextProtos...)}
	if m.acme != nil {
		c.GetCertificate = m.acme.cfg.GetCertificate
	} else {
		c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return m.served.Load(), nil }
	}
	return c
}

// Start begins, in the background, watching the files for changes, or obtaining the ACME
// certificates that storage does not hold yet and renewing them; it returns at once. ctx ends it
// (with ACME, certmagic's certificate cache stops then), and so does Close. A second call, or
// one after Close, does nothing.
func (m *Manager) Start(ctx context.Context) {
	m.life.Lock()
	defer m.life.Unlock()
	if m.started || m.closed {
		return
	}
	m.started = true
	ctx, m.stop = context.WithCancel(ctx)
	switch {
	case m.acme != nil:
		m.running.Go(func() { m.acme.run(ctx) })
	case m.source == "files":
		m.running.Go(func() { m.watch(ctx) })
	}
}

// Close ends what Start began and waits for it to stop; without Start, it stops the certmagic
// cache New started. The Manager hands out the certificates it has, but renews nothing after.
func (m *Manager) Close() {
	m.life.Lock()
	if m.closed {
		m.life.Unlock()
		return
	}
	m.closed = true
	started := m.started
	m.life.Unlock()
	if started {
		m.stop()
		m.running.Wait()
	} else if m.acme != nil {
		m.acme.cache.Stop()
	}
}

// Reload reads [tls]'s files again now (askrd reload); on an error the certificate served so far
// stays, and the error is returned for the caller to log. A new certificate is logged at INFO.
// Without [tls] files it does nothing.
func (m *Manager) Reload() error {
	if m.source != "files" {
		return nil
	}
	stamp, err := statPair(m.cert, m.key)
	if err == nil {
		_, err = m.replace(stamp)
	}
	return err
}

// Challenge answers ACME's HTTP-01 challenges and passes every other request to next.
func (m *Manager) Challenge(next http.Handler) http.Handler {
	if m.acme == nil {
		return next
	}
	return m.acme.issuer.HTTPChallengeHandler(next)
}

// Status reports the certificates.
func (m *Manager) Status() []Status {
	if m.acme != nil {
		return m.acme.status()
	}
	s := leafStatus(m.source, m.served.Load())
	m.mu.Lock()
	s.Error = m.lastErr
	m.mu.Unlock()
	return []Status{s}
}

// leafStatus describes cert (nil: none yet).
func leafStatus(source string, cert *tls.Certificate) Status {
	s := Status{Source: source}
	if cert == nil || cert.Leaf == nil {
		return s
	}
	s.Names = append(s.Names, cert.Leaf.DNSNames...)
	for _, ip := range cert.Leaf.IPAddresses {
		s.Names = append(s.Names, ip.String())
	}
	if len(s.Names) == 0 && cert.Leaf.Subject.CommonName != "" {
		s.Names = []string{cert.Leaf.Subject.CommonName}
	}
	s.NotAfter = cert.Leaf.NotAfter
	s.Issuer = cert.Leaf.Issuer.CommonName
	if s.Issuer == "" {
		s.Issuer = strings.Join(cert.Leaf.Issuer.Organization, ",")
	}
	return s
}
