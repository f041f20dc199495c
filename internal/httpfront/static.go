package httpfront

// The one static-file path of both modes, and the other answers askrd gives without PHP.

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
)

// answer answers a route that runs no PHP: a static file, a redirect or an error.
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, rt route) {
	switch rt.kind {
	case routeStatic:
		if rt.file == nil {
			w.Header().Set("Allow", "GET, HEAD")
			h.fail(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on a static file")
			return
		}
		defer rt.file.Close()
		serveFile(w, r, rt.file, rt.info)
	case routeRedirect:
		h.redirect(w, r, rt.location)
	case routeBad:
		h.fail(w, http.StatusBadRequest, "invalid path")
	case routeForbidden:
		h.fail(w, http.StatusForbidden, "not served")
	default:
		h.fail(w, http.StatusNotFound, "no such file")
	}
}

// serveFile serves an open regular file with its type, an ETag, Last-Modified, Range and 304.
func serveFile(w http.ResponseWriter, r *http.Request, f *os.File, fi os.FileInfo) {
	w.Header().Set("Etag", fmt.Sprintf(`"%x-%x"`, fi.ModTime().Unix(), fi.Size()))
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}

// redirect answers 301 with the URL of a directory (its path with a slash), keeping the query,
// as nginx does for a directory named without its slash.
func (h *Handler) redirect(w http.ResponseWriter, r *http.Request, location string) {
	scheme := "http"
	if isHTTPS(r, h.opt.HTTPS) {
		scheme = "https"
	}
	u := scheme + "://" + r.Host + (&url.URL{Path: location}).EscapedPath()
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	w.Header().Set("Location", u)
	h.fail(w, http.StatusMovedPermanently, "see "+u)
}
