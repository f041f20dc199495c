package httpfront

// Behind a proxy: what a peer of Options.Trusted says of the client in X-Forwarded-For, -Proto and
// -Host (internal/forwarded decides what is believed) is applied to the request once, when the
// Handler gets it, so that everything after — PHP's variables in both backends (cgi.go), the
// access log's client, host redirects, force_https, a directory's redirect — sees the same
// client. As nginx's realip module: REMOTE_ADDR is the client, REMOTE_PORT its port if the entry
// gave one (else empty), SERVER_ADDR and SERVER_PORT stay those askrd was reached on. And as the
// usual `map $http_x_forwarded_proto $https` and `$http_x_forwarded_host` of such configs: HTTPS
// and REQUEST_SCHEME follow X-Forwarded-Proto, HTTP_HOST and SERVER_NAME X-Forwarded-Host.
// From any other peer the headers are ordinary headers (HTTP_X_FORWARDED_*) and change nothing.
// force_https is here too (its redirect is tohttps.go's).

import (
	"context"
	"net/http"

	"github.com/askr-php/askr/internal/forwarded"
)

// schemeKey is the context key of the scheme a trusted peer gave in X-Forwarded-Proto.
type schemeKey struct{}

// forwarded returns r as a trusted peer's X-Forwarded-* headers describe it: a shallow copy with
// the client's address as RemoteAddr ("ip:port", or the address alone if X-Forwarded-For gave no
// port), the forwarded host as Host and the forwarded scheme in its context. Without such a peer
// or such headers it returns r itself.
func (h *Handler) forwarded(r *http.Request) *http.Request {
	if len(h.opt.Trusted) == 0 {
		return r
	}
	s, ok := forwarded.Read(h.opt.Trusted, r.RemoteAddr, r.Header)
	if !ok || s == (forwarded.Seen{}) {
		return r
	}
	ctx := r.Context()
	if s.Proto != "" {
		ctx = context.WithValue(ctx, schemeKey{}, s.Proto)
	}
	r = r.WithContext(ctx)
	if s.Client.IsValid() {
		r.RemoteAddr = s.Client.Addr().String()
		if s.Client.Port() != 0 {
			r.RemoteAddr = s.Client.String()
		}
	}
	if s.Host != "" {
		r.Host = s.Host
	}
	return r
}

// isHTTPS reports whether r is to be treated as HTTPS: always (server.https) if always, else as
// a trusted peer's X-Forwarded-Proto says if it said, else whether the connection is TLS.
func isHTTPS(r *http.Request, always bool) bool {
	if always {
		return true
	}
	if s, ok := r.Context().Value(schemeKey{}).(string); ok {
		return s == "https"
	}
	return r.TLS != nil
}

// forceHTTPS answers a plain HTTP request with its redirect to HTTPS if force_https is on, and
// reports whether it did. The redirect goes to askrd's HTTPS port, but to the default one (443)
// for a request a trusted proxy said came over http: HTTPS is the proxy's to serve there.
func (h *Handler) forceHTTPS(w http.ResponseWriter, r *http.Request) bool {
	if !h.opt.ForceHTTPS || isHTTPS(r, h.opt.HTTPS) {
		return false
	}
	port := h.opt.HTTPSPort
	if _, proxied := r.Context().Value(schemeKey{}).(string); proxied {
		port = 0
	}
	redirectHTTPS(w, r, port)
	return true
}
