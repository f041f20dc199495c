package httpfront

// Redirects to HTTPS: force_https's (forwarded.go decides when) and every request of a
// redirect-only listener (server.http_redirect, acme.http).

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/askr-php/askr/internal/forwarded"
)

// RedirectToHTTPS is the handler of a listener that only redirects (server.http_redirect,
// acme.http): every request gets a 308 to the same URL on HTTPS, on port (0 or 443: none in the
// URL); one without a usable Host gets 400. ACME's challenges are answered before it
// (certificate.Manager.Challenge).
func RedirectToHTTPS(port int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { redirectHTTPS(w, r, port) })
}

// redirectHTTPS answers 308 with r's URL on HTTPS: r's host without its port, then port unless
// it is 0 or 443, then r's path and query. The request's method and body are kept by the client
// (308), so a POST is not turned into a GET.
func redirectHTTPS(w http.ResponseWriter, r *http.Request, port int) {
	host := r.Host
	if hn, _, err := net.SplitHostPort(host); err == nil {
		host = hn
	}
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]" // an IPv6 address, without the brackets SplitHostPort took off
	}
	if !forwarded.ValidHost(host) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte("400 Bad Request: no host to redirect to HTTPS\n"))
		return
	}
	if port != 0 && port != 443 {
		host += ":" + strconv.Itoa(port)
	}
	uri := r.URL.RequestURI()
	if !strings.HasPrefix(uri, "/") {
		uri = "/" // OPTIONS *, or an authority-form target
	}
	w.Header().Set("Location", "https://"+host+uri)
	w.Header().Set("Content-Length", "0")
	if r.ProtoMajor == 1 && r.ContentLength != 0 {
		// The body is not read: net/http would read it before answering (up to 256 KB, with no
		// deadline), so a client sending it slowly would hold the connection and the drain.
		w.Header().Set("Connection", "close")
	}
	w.WriteHeader(http.StatusPermanentRedirect)
}
