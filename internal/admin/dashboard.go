package admin

import (
	_ "embed"
	"net/http"
)

// dashboardPage is GET /: one page, no external assets, that reads /status?full and /history
// every 2 s (with the bearer token from its URL's fragment, #token=…, if there is one).
//
//go:embed dashboard.html
var dashboardPage []byte

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:")
	h.Set("X-Frame-Options", "DENY")
	w.Write(dashboardPage)
}
