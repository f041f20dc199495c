package httpfront

import (
	"net"
	"net/http"
	"strings"
)

// Redirect sends the requests whose Host matches From to To, with their path and query: the
// [[redirect]] tables of askr.toml. It is answered before anything else.
type Redirect struct {
	From   string // a host name, or "*.example.com" for example.com and every name under it
	To     string // scheme and host, perhaps a path; the request's path and query are appended
	Status int    // 301, 302, 303, 307 or 308
}

// matches reports whether host (lower case, without a port) is r.From's.
func (r Redirect) matches(host string) bool {
	from := strings.ToLower(r.From)
	if suffix, ok := strings.CutPrefix(from, "*."); ok {
		return host == suffix || strings.HasSuffix(host, "."+suffix)
	}
	return host == from
}

// hostRedirect answers r with the first of h.opt.Redirects its Host matches, and reports whether one did.
func (h *Handler) hostRedirect(w http.ResponseWriter, r *http.Request) bool {
	if len(h.opt.Redirects) == 0 {
		return false
	}
	host := r.Host
	if hp, _, err := net.SplitHostPort(host); err == nil {
		host = hp
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, rd := range h.opt.Redirects {
		if rd.matches(host) {
			w.Header().Set("Location", strings.TrimRight(rd.To, "/")+r.URL.RequestURI())
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(rd.Status)
			return true
		}
	}
	return false
}
