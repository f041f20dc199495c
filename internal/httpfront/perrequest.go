package httpfront

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/fastcgi"
	"github.com/askr-php/askr/internal/pool"
)

// FastCGIBackend runs requests in php-cgi processes speaking FastCGI (per-request mode): the pool,
// which lends one process per request (pool.Pool.Call).
type FastCGIBackend interface {
	Call(ctx context.Context, call func(pool.Process) pool.Outcome) error
}

// FastCGIProcess is a process a FastCGIBackend lends (phpcgi.FastCGIProcess).
type FastCGIProcess interface {
	// Do runs one FastCGI request. reusable reports that the process can take another request
	// (it is idle again), reached that the request got to it at all.
	Do(ctx context.Context, req *fastcgi.Request) (reusable, reached bool, err error)
}

// NewPerRequest returns a Handler serving opt.Root in per-request mode: URLs are routed as nginx's
// try_files $uri $uri/ /front?$args does (see router), and PHP scripts run in the php-cgi
// processes of b. Close it when done.
func NewPerRequest(opt Options, b FastCGIBackend) (*Handler, error) {
	h, err := New(opt, nil)
	if err != nil {
		return nil, err
	}
	h.fcgi = b
	if h.routes.root, err = openTree(opt.Root); err != nil {
		h.Close()
		return nil, fmt.Errorf("open document root: %w", err)
	}
	h.routes.front = h.script
	return h, nil
}

// servePerRequest routes a request in per-request mode.
func (h *Handler) servePerRequest(w http.ResponseWriter, r *http.Request) {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	rt := h.routes.route(r.URL.Path, read)
	if rt.kind == routeScript {
		h.serveFastCGI(w, r, rt)
		return
	}
	h.answer(w, r, rt)
}

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

// serveAlias serves r from an alias if its path is under one (worker mode): true if it answered.
func (h *Handler) serveAlias(w http.ResponseWriter, r *http.Request) bool {
	p, ok := cleanPath(r.URL.Path)
	if !ok || hidden(p) {
		return false
	}
	for _, a := range h.routes.aliases {
		if !strings.HasPrefix(p, a.prefix) && p+"/" != a.prefix {
			continue
		}
		read := r.Method == http.MethodGet || r.Method == http.MethodHead
		h.answer(w, r, a.route(p, read)) // an alias never runs PHP
		return true
	}
	return false
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
	if r.TLS != nil || h.opt.HTTPS {
		scheme = "https"
	}
	u := scheme + "://" + r.Host + (&url.URL{Path: location}).EscapedPath()
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	w.Header().Set("Location", u)
	h.fail(w, http.StatusMovedPermanently, "see "+u)
}

// serveFastCGI runs the route's script: the body is read (into memory or a spool file, as in
// worker mode, but not parsed: PHP does that), then sent on FCGI_STDIN; the answer streams back.
func (h *Handler) serveFastCGI(w http.ResponseWriter, r *http.Request, rt route) {
	rc := http.NewResponseController(w)
	b, ok := h.takeBody(w, r, rc)
	defer b.cleanup(h.log)
	if !ok {
		return
	}
	params := make([]fastcgi.Param, 0, 28+len(r.Header))
	h.cgiVars(r, b.size, rt.script, rt.pathInfo, rt.docURI, true, func(k, v string) {
		params = append(params, fastcgi.Param{Name: k, Value: v})
	})
	rs := h.newResponder(w, r, rc)
	err := h.fcgi.Call(r.Context(), func(proc pool.Process) pool.Outcome {
		fp, ok := proc.(FastCGIProcess)
		if !ok {
			return pool.Outcome{Err: fmt.Errorf("process %d does not speak FastCGI", proc.PID()), Broken: true}
		}
		stdin, err := b.reader()
		if err != nil {
			return pool.Outcome{Err: fmt.Errorf("reopen the request body: %w", err)}
		}
		defer stdin.Close()
		hs := fastcgi.NewHeadSplitter(fastcgi.DefaultMaxHead, rs.cgiHead, fcgiBody{rs})
		reusable, reached, err := fp.Do(r.Context(), &fastcgi.Request{Params: params, Stdin: stdin, Stdout: hs})
		if err == nil {
			err = hs.Close()
		}
		if errors.Is(err, fastcgi.ErrBadHead) || errors.Is(err, fastcgi.ErrHeadTooLarge) ||
			errors.Is(err, fastcgi.ErrNoHead) || errors.Is(err, errBadStatus) {
			err = fmt.Errorf("%w: %v", pool.ErrBadResponse, err)
		}
		return pool.Outcome{Err: err, Broken: !reusable, Unsent: !reached}
	})
	h.finish(w, r, rs, err)
}

// errBadStatus is a Status header the response cannot have.
var errBadStatus = errors.New("status outside 200-999")

// cgiHead passes php-cgi's response head on (the Status header sets the status).
func (rs *responder) cgiHead(hd *fastcgi.Head) error {
	if hd.Status < 200 {
		return fmt.Errorf("%w: %d", errBadStatus, hd.Status)
	}
	hs := make([]channel.Header, 0, len(hd.Header))
	for name, values := range hd.Header {
		for _, v := range values {
			hs = append(hs, channel.Header{Name: name, Value: v})
		}
	}
	return rs.Head(hd.Status, hs)
}

// fcgiBody is the body side of a HeadSplitter: php-cgi's output goes to the responder, which
// holds up to 1 MiB until php-cgi pauses (Flush: it flushed, or is still working) or ends, and
// spools what a slow client has not taken yet.
type fcgiBody struct{ rs *responder }

func (f fcgiBody) Write(b []byte) (int, error) {
	if err := f.rs.Body(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (f fcgiBody) Flush() error { return f.rs.Flush() }

// reader opens the body for sending: the bytes in memory, or the spool file.
func (b *body) reader() (io.ReadCloser, error) {
	if b.file != "" {
		return os.Open(b.file)
	}
	return inlineBody{bytes.NewReader(b.inline)}, nil
}

// inlineBody is a body in memory; its Len lets the FastCGI client send a small one with the params.
type inlineBody struct{ *bytes.Reader }

func (inlineBody) Close() error { return nil }
