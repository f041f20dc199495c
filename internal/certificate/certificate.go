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
	"log/slog"
	"net/http"
	"time"
)

// Options says where the certificates come from: Cert and Key, SelfSigned, or ACME.
type Options struct {
	Cert, Key  string // PEM files of [tls]
	SelfSigned bool   // [tls] self_signed
	Listen     string // the listen address, whose host a self-signed certificate names too
	ACME       *ACME  // nil: no ACME
	Logger     *slog.Logger
}

// ACME is [acme].
type ACME struct {
	Domains      []string
	Email        string // the account's contact ("" none)
	Dir          string // storage: the account key and the certificates, 0600 files in 0700 directories
	DirectoryURL string // "" Let's Encrypt's production directory (staging: its staging one)
	Staging      bool
	CARoot       string // a PEM file of roots to trust besides the system's, for the CA's API
}

// Status is one certificate askrd serves, for /status and the metrics.
type Status struct {
	Source   string    `json:"source"`    // "files", "self-signed" or "acme"
	Names    []string  `json:"names"`     // the names it is for
	NotAfter time.Time `json:"not_after"` // zero while none has been obtained
	Issuer   string    `json:"issuer"`
	Error    string    `json:"error,omitempty"` // the last error obtaining, renewing or reading it
}

// Manager hands out the certificates.
type Manager struct{}

// New prepares the certificates: it reads [tls]'s files (an error if they do not make a pair) or
// makes the self-signed one, or sets up ACME (without asking the CA anything yet).
func New(o Options) (*Manager, error) { return nil, errors.New("certificate: not implemented") }

// TLSConfig is the configuration of the HTTPS listeners (h2 and http/1.1, and acme-tls/1 with ACME).
func (m *Manager) TLSConfig() *tls.Config { return nil }

// Start begins, in the background, watching the files for changes, or obtaining the ACME
// certificates that storage does not hold yet and renewing them; it returns at once. ctx ends it.
func (m *Manager) Start(ctx context.Context) {}

// Reload reads [tls]'s files again now (askrd reload); on an error the certificate served so far stays.
func (m *Manager) Reload() error { return nil }

// Challenge answers ACME's HTTP-01 challenges and passes every other request to next.
func (m *Manager) Challenge(next http.Handler) http.Handler { return next }

// Status reports the certificates.
func (m *Manager) Status() []Status { return nil }
