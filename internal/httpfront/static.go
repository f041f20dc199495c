package httpfront

// The one static-file path of both modes, and the other answers askrd gives without PHP.

import (
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
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
		h.serveStatic(w, r, rt)
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

// immutableCache is the Cache-Control of the static files under Options.Immutable.
const immutableCache = "public, max-age=31536000, immutable"

// serveStatic serves a static file's route: with Cache-Control for immutable build output, and
// with Options.Compression a precompressed sibling the client accepts (file.br, file.gz), else the
// file compressed on the fly if its type is compressible (compress.go).
func (h *Handler) serveStatic(w http.ResponseWriter, r *http.Request, rt route) {
	if h.immutable(r.URL.Path) {
		w.Header().Set("Cache-Control", immutableCache)
	}
	if !h.opt.Compression {
		serveFile(w, r, rt.file, rt.info, "")
		return
	}
	ctype, err := fileType(rt.file, rt.info.Name())
	if err != nil {
		h.log.Warn("reading a static file failed", "err", err, "uri", r.RequestURI)
		h.fail(w, http.StatusInternalServerError, "the file cannot be read")
		return
	}
	w.Header().Set("Content-Type", ctype)
	acc := acceptEncoding(r.Header["Accept-Encoding"])
	if h.servePrecompressed(w, r, rt, acc) {
		return
	}
	if !compressible(ctype) {
		serveFile(w, r, rt.file, rt.info, "")
		return
	}
	addVary(w.Header())
	cw := newCompressWriter(w, r, acc.best())
	serveFile(cw, r, rt.file, rt.info, "")
	cw.close()
}

// immutable reports whether a URL path is under a prefix of Options.Immutable.
func (h *Handler) immutable(urlPath string) bool {
	if len(h.opt.Immutable) == 0 {
		return false
	}
	p := path.Clean(urlPath)
	for _, pre := range h.opt.Immutable {
		if strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}

// servePrecompressed serves the file's sibling file.br or file.gz, of a coding the client
// accepts (the one it prefers first), as nginx's gzip_static does: as the file's own
// representation in that coding, with the file's type, its own length, ETag and Last-Modified,
// ranges and 304. It reports false if there is none.
func (h *Handler) servePrecompressed(w http.ResponseWriter, r *http.Request, rt route, acc accepted) bool {
	if rt.tree == nil {
		return false
	}
	order := [2]coding{brCoding, gzipCoding}
	if acc.best() == gzipCoding {
		order = [2]coding{gzipCoding, brCoding}
	}
	for _, c := range order {
		if c == brCoding && acc.br <= 0 || c == gzipCoding && acc.gzip <= 0 {
			continue
		}
		f, fi, ok := rt.tree.sibling(rt.rel, c)
		if !ok {
			continue
		}
		hdr := w.Header()
		addVary(hdr)
		hdr.Set("Content-Encoding", c.String())
		// ServeContent leaves out the length of a whole response with a Content-Encoding.
		hdr.Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
		serveFile(w, r, f, fi, "-"+c.String())
		f.Close()
		return true
	}
	return false
}

// precompressedExt are the names of a file's precompressed siblings: file.br, file.gz.
var precompressedExt = map[coding]string{brCoding: ".br", gzipCoding: ".gz"}

// sibling opens the precompressed sibling of the file at rel in coding c, if there is one that
// may be served (a regular file, under the tree's rules: see static).
func (t *tree) sibling(rel string, c coding) (*os.File, fs.FileInfo, bool) {
	name := rel + precompressedExt[c]
	f, err := t.open(name)
	if err != nil {
		return nil, nil, false
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || !servable(name) || !targetServable(t.dir, name) {
		f.Close()
		return nil, nil, false
	}
	return f, fi, true
}

// fileType is the Content-Type http.ServeContent would send for the file: by the name's
// extension, else sniffed from its first 512 bytes.
func fileType(f *os.File, name string) (string, error) {
	if ct := mime.TypeByExtension(filepath.Ext(name)); ct != "" {
		return ct, nil
	}
	var buf [512]byte
	n, err := io.ReadFull(f, buf[:])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return "", err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	return http.DetectContentType(buf[:n]), nil
}

// serveFile serves an open regular file with its type, an ETag (its mtime and size, and tag),
// Last-Modified, Range and 304.
func serveFile(w http.ResponseWriter, r *http.Request, f *os.File, fi os.FileInfo, tag string) {
	w.Header().Set("Etag", fmt.Sprintf(`"%x-%x%s"`, fi.ModTime().Unix(), fi.Size(), tag))
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
