// Package httpfront owns askr's HTTP side, one request path for both modes: a trusted proxy's
// X-Forwarded-* and force_https (forwarded.go), host redirects, one router (route.go; the document root and aliases with one symbolic-link policy, tree.go), static
// files (static.go), the request body (body.go: limits, memory or a spool file, multipart uploads
// parsed for the worker runtime), the CGI variables nginx + php-fpm would give PHP (cgi.go), a
// backend that runs PHP — the worker pool (backend_worker.go) or php-cgi over FastCGI
// (backend_fastcgi.go), chosen when the Handler is made — and the responder that passes PHP's
// answer on and spools what a slow client has not taken yet (responder.go). It does not open
// listeners (they are passed to Serve) and does not manage processes.
package httpfront

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/pool"
)

// Options configures the front.
type Options struct {
	Root           string // absolute document root
	Front          string // front controller, relative to Root
	MaxBodySize    int64
	BodyBufferSize int64
	SpoolDir       string        // request bodies, uploads and response spools; "" = os.TempDir()
	HTTPS          bool          // tell PHP HTTPS=on even on plain HTTP
	ClientTimeout  time.Duration // bound on each read of a body and each write of a response (0: none)
	Software       string        // SERVER_SOFTWARE
	Aliases        []Alias       // URL prefixes served from other directories (static files only)
	Redirects      []Redirect    // host redirects, answered before anything else; the first match wins
	Logger         *slog.Logger

	// Compression compresses responses with br or gzip as Accept-Encoding allows (compress.go).
	Compression bool
	// Immutable are URL prefixes whose static files get "Cache-Control: public, max-age=31536000,
	// immutable" (static.go).
	Immutable []string
	// Trusted are the peers whose X-Forwarded-For, -Proto and -Host askrd believes (forwarded.go).
	Trusted []netip.Prefix
	// ForceHTTPS answers plain HTTP requests (not ACME's challenges, which come before the
	// Handler) with a 308 redirect to HTTPS, on port HTTPSPort (0 or 443: none in the URL).
	ForceHTTPS bool
	HTTPSPort  int

	// ResponseSpoolSize bounds how much of one response waits for a slow client in a spool file
	// (in SpoolDir), beyond bufferSize in memory (0: none; PHP then waits for the client).
	ResponseSpoolSize int64

	// Observe, if set, is given every request once it has been answered (the access log and the
	// metrics). It runs on the request's goroutine and must not keep r.
	Observe func(r *Record)
}

// Record is one answered request, for Options.Observe.
type Record struct {
	Start      time.Time     // when the handler got the request
	Duration   time.Duration // until the response was written
	RemoteAddr string        // the client: the peer's host:port, or what a trusted proxy said (forwarded.go)
	Method     string
	URI        string // the request-target as sent
	Proto      string // "HTTP/1.1"
	Host       string
	Referer    string
	UserAgent  string
	User       string // the user of Basic authentication, if any
	Status     int
	BytesIn    int64 // the request body read
	BytesOut   int64 // the response body written
	// PHP is true if PHP answered (not a static file, a redirect or an error of askrd's before PHP);
	// Visit is then what the pool recorded (queue wait, PHP's time, the worker's pid).
	PHP   bool
	Visit pool.Visit
}

// Alias serves the URLs under Prefix (which ends in "/") from the directory Dir, as nginx's
// `location ^~ Prefix { alias Dir; }`: static files only, under the same rules as the root's.
type Alias struct {
	Prefix, Dir string
}

// Handler is the http.Handler of askr. One request path serves both modes: ServeHTTP → a trusted
// proxy's X-Forwarded-* (forwarded.go) → host redirects → force_https → the router → a static file (static.go), or PHP: the body (body.go) → the backend
// (backend_worker.go or backend_fastcgi.go, chosen when the Handler is made) → the responder
// (responder.go).
type Handler struct {
	opt     Options
	routes  atomic.Pointer[router]                // swapped by Reroot
	route   func(urlPath string, read bool) route // router.app (worker mode) or router.tryFiles (per-request), on routes
	backend backend
	cgi     cgiEnv
	log     *slog.Logger
}

// backend runs PHP scripts: the worker pool (workerBackend) or php-cgi over FastCGI
// (fastcgiBackend).
type backend interface {
	// forms returns the limits of PHP's configuration under which askrd parses multipart forms
	// into fields and uploaded files for PHP; ok is false if PHP parses them itself.
	forms() (lim channel.Limits, ok bool)
	// serve runs the route's script with the request's body; the answer goes to rs, and v is
	// given to the pool (pool.Pool.Call fills it in). Its errors wrap errTimeout, errBadResponse,
	// errWorkerDied or errUnavailable where they are such.
	serve(r *http.Request, rt route, b *body, rs *responder, v *pool.Visit) error
}

// Why a backend did not answer, as finish tells the client.
var (
	errTimeout     = errors.New("request timed out")
	errBadResponse = errors.New("invalid response")
	errWorkerDied  = errors.New("PHP process died")
	errUnavailable = errors.New("no PHP process available")
)

// New returns a Handler serving opt.Root in worker mode: what is not a static file goes to the
// worker pool b (router.app). Close it when done.
func New(opt Options, b Backend) (*Handler, error) {
	h, err := newHandler(opt)
	if err != nil {
		return nil, err
	}
	h.route = func(p string, read bool) route { return h.routes.Load().app(p, read) }
	h.backend = workerBackend{pool: b, cgi: &h.cgi, log: h.log}
	return h, nil
}

// NewPerRequest returns a Handler serving opt.Root in per-request mode: URLs are routed as nginx's
// try_files $uri $uri/ /front?$args does (router.tryFiles), and PHP scripts run in the php-cgi
// processes of b. Close it when done.
func NewPerRequest(opt Options, b FastCGIBackend) (*Handler, error) {
	h, err := newHandler(opt)
	if err != nil {
		return nil, err
	}
	h.route = func(p string, read bool) route { return h.routes.Load().tryFiles(p, read) }
	h.backend = fastcgiBackend{pool: b, cgi: &h.cgi}
	return h, nil
}

// newHandler opens the document root and the aliases.
func newHandler(opt Options) (*Handler, error) {
	if opt.SpoolDir == "" {
		opt.SpoolDir = os.TempDir()
	}
	h := &Handler{
		opt: opt,
		cgi: cgiEnv{root: opt.Root, https: opt.HTTPS, software: opt.Software},
		log: opt.Logger,
	}
	rt, err := openRouter(opt)
	if err != nil {
		return nil, err
	}
	h.routes.Store(rt)
	return h, nil
}

// openRouter opens the document root and the aliases' directories, longest prefix first, as the
// kernel finds them now.
func openRouter(opt Options) (*router, error) {
	root, err := openTree(opt.Root)
	if err != nil {
		return nil, fmt.Errorf("open document root: %w", err)
	}
	rt := &router{root: root, front: "/" + strings.TrimPrefix(opt.Front, "/")}
	as := slices.Clone(opt.Aliases)
	slices.SortStableFunc(as, func(a, b Alias) int { return len(b.Prefix) - len(a.Prefix) })
	for _, a := range as {
		t, err := openTree(a.Dir)
		if err != nil {
			rt.close()
			return nil, fmt.Errorf("alias %s: %w", a.Prefix, err)
		}
		rt.aliases = append(rt.aliases, alias{prefix: a.Prefix, t: t})
	}
	return rt, nil
}

// close releases the router's directories.
func (rt *router) close() error {
	for _, a := range rt.aliases {
		a.t.Close()
	}
	return rt.root.Close()
}

// sameDirs reports whether two routers serve the same directories.
func (rt *router) sameDirs(o *router) bool {
	if rt.root.dir != o.root.dir || len(rt.aliases) != len(o.aliases) {
		return false
	}
	for i, a := range rt.aliases {
		if a.t.dir != o.aliases[i].t.dir {
			return false
		}
	}
	return true
}

// retireAfter is how long a router Reroot replaced stays open: for the lookups already under way
// (a file they opened stays readable after).
const retireAfter = 10 * time.Second

// Reroot resolves the document root and the aliases again, for a reload after a deploy that
// switched a link (current -> releases/N): new requests are served from where they lead now. It
// reports whether they changed. On error the old ones go on serving.
func (h *Handler) Reroot() (bool, error) {
	rt, err := openRouter(h.opt)
	if err != nil {
		return false, err
	}
	if old := h.routes.Load(); old.sameDirs(rt) {
		rt.close()
		return false, nil
	}
	old := h.routes.Swap(rt)
	time.AfterFunc(retireAfter, func() { old.close() })
	return true, nil
}

// Close releases the document root and the aliases' directories.
func (h *Handler) Close() error { return h.routes.Load().close() }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = h.forwarded(r) // a trusted proxy's word on the client, for all that follows
	if h.opt.Observe != nil {
		o := h.observe(w, r)
		defer h.done(o, r) // also when the response is aborted (panic(http.ErrAbortHandler))
		h.serve(o, r)
		o.finished = true
		return
	}
	h.serve(w, r)
}

// serve is ServeHTTP's work, observed or not.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
		// A chunked request may have come with a Content-Length too, which net/http drops before
		// the handler could see it: a proxy in front may have framed the request by that length,
		// and taken what follows the last chunk for a request of its own. So the connection ends
		// with the answer (RFC 9112 §6.1) and nothing sent after the body is ever read.
		w.Header().Set("Connection", "close")
	}
	// Host redirects first: http://www.example.com goes to its target (https://example.com) in
	// one hop, not by way of https://www.example.com.
	if h.hostRedirect(w, r) || h.forceHTTPS(w, r) {
		return
	}
	rt := h.route(r.URL.Path, r.Method == http.MethodGet || r.Method == http.MethodHead)
	if rt.kind != routeScript {
		h.answer(w, r, rt)
		return
	}
	h.servePHP(w, r, rt)
}

// servePHP runs the route's script: the body is read (takeBody), the backend runs the script and
// its answer goes through the responder, and the compressor with Options.Compression.
func (h *Handler) servePHP(w http.ResponseWriter, r *http.Request, rt route) {
	// One ResponseController serves both: a compressWriter unwraps to w for the deadlines.
	cw := h.compressor(w, r)
	out := http.ResponseWriter(cw)
	if cw == nil {
		out = w
	}
	rc := http.NewResponseController(out)
	b, ok := h.takeBody(w, r, rc)
	defer b.cleanup(h.log)
	if !ok {
		return
	}
	v := visit(w, r)
	w = out
	rs := h.newResponder(w, r, rc)
	h.finish(w, r, rs, h.backend.serve(r, rt, b, rs, v))
	cw.close() // not when finish aborts the response: a cut one must not end as if it were whole
}

// finish completes a response after the backend returned err: the rest of what was buffered, or
// an error status if nothing was sent yet, or a cut connection if something was.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, rs *responder, err error) {
	werr := rs.end(err == nil) // the rest of the response reaches the client (or not) here
	if err == nil {
		if werr == nil {
			return
		}
		h.log.Debug("client did not take the response", "err", werr, "uri", r.RequestURI)
		if rs.spilled {
			panic(http.ErrAbortHandler) // a chunked body must not end as if it were whole
		}
		return
	}
	if rs.spilled {
		// Part of the response is out; cut the connection so the client cannot take it for whole.
		if r.Context().Err() != nil {
			h.log.Debug("client left during the response", "err", err, "uri", r.RequestURI) // as nginx, no warning
		} else {
			h.log.Warn("response cut short", "err", err, "uri", r.RequestURI)
		}
		panic(http.ErrAbortHandler)
	}
	switch {
	case errors.Is(err, errTimeout):
		h.log.Error("request timed out; worker killed", "uri", r.RequestURI)
		h.fail(w, http.StatusGatewayTimeout, "the application took too long")
	case errors.Is(err, errBadResponse):
		h.log.Error("PHP sent an invalid response", "err", err, "uri", r.RequestURI)
		h.fail(w, http.StatusBadGateway, "the application sent an invalid response")
	case errors.Is(err, errWorkerDied):
		h.log.Error("worker failed", "err", err, "uri", r.RequestURI)
		h.fail(w, http.StatusBadGateway, "the application failed")
	case errors.Is(err, errUnavailable):
		w.Header().Set("Retry-After", "1")
		h.fail(w, http.StatusServiceUnavailable, "no PHP worker available")
	case r.Context().Err() != nil:
		// the client left while waiting
	default:
		h.log.Error("serving request", "err", err, "uri", r.RequestURI)
		h.fail(w, http.StatusBadGateway, "the application failed")
	}
}

func (h *Handler) fail(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, "%d %s: %s\n", code, http.StatusText(code), msg)
}
