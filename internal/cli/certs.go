package cli

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"strings"

	"github.com/askr-php/askr/internal/activation"
	"github.com/askr-php/askr/internal/certificate"
	"github.com/askr-php/askr/internal/config"
)

// certs are the certificates askrd serves HTTPS with; nil without [tls] and [acme].
type certs struct {
	m *certificate.Manager
}

// newCertificates reads [tls]'s files, makes the self-signed certificate or sets up [acme], whose
// challenges the CA validates on the ports of lns.
func newCertificates(c config.Config, lns activation.Listeners, log *slog.Logger) (*certs, error) {
	if !c.HTTPS() {
		return nil, nil
	}
	o := certificate.Options{Cert: c.TLS.Cert, Key: c.TLS.Key, SelfSigned: c.TLS.SelfSigned, Listen: c.Server.Listen,
		Logger: log.With("component", "tls")}
	if a := c.ACME; a.Enabled {
		o.ACME = &certificate.ACME{Domains: a.Domains, Email: a.ACMEEmail(), Dir: a.Dir, DirectoryURL: a.DirectoryURL,
			Staging: a.Staging, CARoot: a.CARoot, HTTPPort: port(lns.HTTP), TLSPort: port(lns.HTTPS)}
		switch {
		case lns.HTTP == nil && len(lns.Redirect) > 0:
			o.ACME.HTTPPort = port(lns.Redirect[len(lns.Redirect)-1]) // acme.http, after http_redirect (addrs)
		case lns.HTTP == nil: // systemd passed only the https socket: TLS-ALPN-01 alone, no port 80 of certmagic's
			o.ACME.HTTPPort = -1
		}
		o.Logger = log.With("component", "acme")
	}
	m, err := certificate.New(o)
	if err != nil {
		key := "tls"
		if c.ACME.Enabled {
			key = "acme"
		}
		return nil, c.Err(key, "%v", err)
	}
	if c.TLS.SelfSigned {
		for _, st := range m.Status() {
			log.Warn("serving HTTPS with a self-signed certificate (tls.self_signed): for development only", "names", strings.Join(st.Names, ","))
		}
	}
	return &certs{m: m}, nil
}

// TLSConfig is the HTTPS listeners' configuration; nil without certificates.
func (cs *certs) TLSConfig() *tls.Config {
	if cs == nil {
		return nil
	}
	return cs.m.TLSConfig()
}

// Challenge answers ACME's HTTP-01 challenges before h.
func (cs *certs) Challenge(h http.Handler) http.Handler {
	if cs == nil {
		return h
	}
	return cs.m.Challenge(h)
}

// Start watches the files, or obtains and renews the certificates, until ctx ends (Close waits
// for that to stop).
func (cs *certs) Start(ctx context.Context) {
	if cs == nil {
		return
	}
	cs.m.Start(ctx)
	<-ctx.Done()
}

// Close stops what Start began, or without Start the certmagic cache New made (Run failing
// before it serves), and waits for that.
func (cs *certs) Close() {
	if cs != nil {
		cs.m.Close()
	}
}

// Reload reads [tls]'s files again (askrd reload); an error leaves the certificate served so far.
func (cs *certs) Reload(log *slog.Logger) {
	if cs == nil {
		return
	}
	if err := cs.m.Reload(); err != nil {
		log.Error("reload: cannot read the certificate files again; serving the certificate read before", "err", err)
	}
}

// Status reports the certificates for /status and the metrics; nil without any.
func (cs *certs) Status() []certificate.Status {
	if cs == nil {
		return nil
	}
	return cs.m.Status()
}
