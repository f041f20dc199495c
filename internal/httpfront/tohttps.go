package httpfront

import "net/http"

// RedirectToHTTPS answers every request with a 308 redirect to the same URL on HTTPS, on port
// (0 or 443: none in the URL). (Stub; the proxy part implements it.)
func RedirectToHTTPS(port int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not implemented", http.StatusNotImplemented)
	})
}
