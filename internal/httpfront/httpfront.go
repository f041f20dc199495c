// Package httpfront owns askr's HTTP side: it serves static files from the document root and its
// aliases, refuses what must never be served, enforces request limits, buffers or spools request
// bodies, builds the CGI variables nginx + php-fpm would give PHP, and hands every other request to
// PHP: in worker mode to the worker pool (uploads parsed into temporary files first), in per-request
// mode to a php-cgi process over FastCGI, routed as nginx's try_files does; PHP's answers reach the
// client through a responder that spools what a slow client has not taken yet (responder.go). It
// does not open listeners (they are passed to Serve) and does not manage processes.
package httpfront

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"mime"
	"net"
	"net/http"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/pool"
)

// Backend runs a request in PHP (the worker pool).
type Backend interface {
	// Serve runs the request (once: a request whose worker died while it had it is not run again).
	Serve(ctx context.Context, payload []byte, resp pool.Response) error
	// Limits returns the upload limits of PHP's configuration (zero until a worker reported them).
	Limits() channel.Limits
}

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

	// ResponseSpoolSize bounds how much of one response waits for a slow client in a spool file
	// (in SpoolDir), beyond bufferSize in memory (0: none; PHP then waits for the client).
	ResponseSpoolSize int64
}

// Alias serves the URLs under Prefix (which ends in "/") from the directory Dir, as nginx's
// `location ^~ Prefix { alias Dir; }`: static files only, under the same rules as the root's.
type Alias struct {
	Prefix, Dir string
}

// Handler is the http.Handler of askr.
type Handler struct {
	opt     Options
	root    *os.Root
	backend Backend        // worker mode
	fcgi    FastCGIBackend // per-request mode
	routes  router
	log     *slog.Logger
	script  string // SCRIPT_NAME
}

// New returns a Handler serving opt.Root in worker mode: what is not a static file goes to the
// worker pool b. Close it when done.
func New(opt Options, b Backend) (*Handler, error) {
	root, err := os.OpenRoot(opt.Root)
	if err != nil {
		return nil, fmt.Errorf("open document root: %w", err)
	}
	if opt.SpoolDir == "" {
		opt.SpoolDir = os.TempDir()
	}
	h := &Handler{opt: opt, root: root, backend: b, log: opt.Logger, script: "/" + strings.TrimPrefix(opt.Front, "/")}
	if err := h.openAliases(); err != nil {
		root.Close()
		return nil, err
	}
	return h, nil
}

// openAliases opens the alias directories, longest prefix first.
func (h *Handler) openAliases() error {
	as := slices.Clone(h.opt.Aliases)
	slices.SortStableFunc(as, func(a, b Alias) int { return len(b.Prefix) - len(a.Prefix) })
	for _, a := range as {
		t, err := openTree(a.Dir)
		if err != nil {
			h.closeAliases()
			return fmt.Errorf("alias %s: %w", a.Prefix, err)
		}
		h.routes.aliases = append(h.routes.aliases, alias{prefix: a.Prefix, t: t})
	}
	return nil
}

func (h *Handler) closeAliases() {
	for _, a := range h.routes.aliases {
		a.t.Close()
	}
	h.routes.aliases = nil
}

// Close releases the document root.
func (h *Handler) Close() error {
	h.closeAliases()
	if h.routes.root != nil {
		h.routes.root.Close()
	}
	return h.root.Close()
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
		// A chunked request may have come with a Content-Length too, which net/http drops before
		// the handler could see it: a proxy in front may have framed the request by that length,
		// and taken what follows the last chunk for a request of its own. So the connection ends
		// with the answer (RFC 9112 §6.1) and nothing sent after the body is ever read.
		w.Header().Set("Connection", "close")
	}
	if h.hostRedirect(w, r) {
		return
	}
	if h.fcgi != nil {
		h.servePerRequest(w, r)
		return
	}
	if len(h.routes.aliases) > 0 && h.serveAlias(w, r) {
		return
	}
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && h.serveStatic(w, r) {
		return
	}
	h.servePHP(w, r)
}

// serveStatic serves r from the document root if its path names a regular file that may be served.
// Dotfiles (but .well-known), PHP sources, editor leftovers (servable) and anything outside the
// root never are. A path that names such a file gets 404 from askrd itself, except a .php script,
// which goes to the front controller as any path that is no file does (/index.php is the front
// controller's own URL).
func (h *Handler) serveStatic(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.Path
	if p == "" || p[0] != '/' || p[len(p)-1] == '/' || strings.ContainsRune(p, 0) {
		return false
	}
	rel := strings.TrimPrefix(path.Clean(p), "/")
	if rel == "" || rel == "." {
		return false
	}
	if !servable(rel) {
		if strings.HasSuffix(strings.ToLower(rel), ".php") {
			return false
		}
		if _, err := h.root.Lstat(rel); err != nil {
			return false // not a file: a route of the app (which may look like one)
		}
		http.NotFound(w, r)
		return true
	}
	f, err := h.root.Open(rel)
	if err != nil {
		return false // most often: a route of the app, not a file
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || !targetServable(h.opt.Root, rel) {
		return false
	}
	w.Header().Set("Etag", fmt.Sprintf(`"%x-%x"`, st.ModTime().Unix(), st.Size()))
	http.ServeContent(w, r, st.Name(), st.ModTime(), f)
	return true
}

// deadlineReader bounds each read of a request body, as nginx's client_body_timeout does.
type deadlineReader struct {
	r       io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
}

func (d deadlineReader) Read(p []byte) (int, error) {
	d.rc.SetReadDeadline(time.Now().Add(d.timeout))
	return d.r.Read(p)
}

func (d deadlineReader) Close() error { return d.r.Close() }

// clientBody marks the errors of reading a request body from the client (net/http's errors for a
// malformed chunked body, an unexpected EOF, a read deadline) as clientError, so that they are told
// apart from askrd's own (writing the spool file): 400, not 500.
type clientBody struct{ r io.ReadCloser }

func (c clientBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		err = &clientError{err}
	}
	return n, err
}

func (c clientBody) Close() error { return c.r.Close() }

// clientError is an error reading the request body from the client.
type clientError struct{ err error }

func (e *clientError) Error() string { return "read request body: " + e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }

func (h *Handler) servePHP(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	req, ok := h.takeBody(w, r, rc)
	defer req.cleanup(h.log)
	if !ok {
		return
	}
	payload := h.encode(r, req)
	rs := h.newResponder(w, r, rc)
	h.finish(w, r, rs, h.backend.Serve(r.Context(), payload, rs))
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
	case errors.Is(err, pool.ErrTimeout):
		h.log.Error("request timed out; worker killed", "uri", r.RequestURI)
		h.fail(w, http.StatusGatewayTimeout, "the application took too long")
	case errors.Is(err, pool.ErrBadResponse):
		h.log.Error("PHP sent an invalid response", "err", err, "uri", r.RequestURI)
		h.fail(w, http.StatusBadGateway, "the application sent an invalid response")
	case errors.Is(err, pool.ErrWorkerDied):
		h.log.Error("worker failed", "err", err, "uri", r.RequestURI)
		h.fail(w, http.StatusBadGateway, "the application failed")
	case errors.Is(err, pool.ErrQueueFull), errors.Is(err, pool.ErrQueueTimout),
		errors.Is(err, pool.ErrUnavailable), errors.Is(err, pool.ErrClosed):
		w.Header().Set("Retry-After", "1")
		h.fail(w, http.StatusServiceUnavailable, "no PHP worker available")
	case r.Context().Err() != nil:
		// the client left while waiting
	default:
		h.log.Error("serving request", "err", err, "uri", r.RequestURI)
		h.fail(w, http.StatusBadGateway, "the application failed")
	}
}

// takeBody applies the body limits and reads the body (readBody); if it cannot, it answers the
// client itself and ok is false. Clean the body up in any case.
func (h *Handler) takeBody(w http.ResponseWriter, r *http.Request, rc *http.ResponseController) (b *body, ok bool) {
	if r.ContentLength > h.opt.MaxBodySize {
		h.fail(w, http.StatusRequestEntityTooLarge, "request body too large")
		return &body{}, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.opt.MaxBodySize)
	if h.opt.ClientTimeout > 0 {
		r.Body = deadlineReader{r.Body, rc, h.opt.ClientTimeout}
	}
	r.Body = clientBody{r.Body}
	req, err := h.readBody(r)
	if err != nil {
		// Whatever the body still holds is not read: the connection ends with the answer.
		w.Header().Set("Connection", "close")
		var tooBig *http.MaxBytesError
		var fromClient *clientError
		switch {
		case errors.As(err, &tooBig):
			h.fail(w, http.StatusRequestEntityTooLarge, "request body too large")
		case errors.Is(err, errBadRequest):
			h.fail(w, http.StatusBadRequest, err.Error())
		case errors.As(err, &fromClient):
			// A malformed chunked body, a client that stopped sending or was too slow
			// (client_timeout): its error, not the server's.
			h.log.Debug("bad request body", "err", err, "uri", r.RequestURI)
			h.fail(w, http.StatusBadRequest, "incomplete or malformed request body")
		default:
			h.log.Error("reading request body", "err", err, "uri", r.RequestURI)
			h.fail(w, http.StatusInternalServerError, "could not store the request body")
		}
		return req, false
	}
	if h.opt.ClientTimeout > 0 {
		rc.SetReadDeadline(time.Time{})
	}
	return req, true
}

func (h *Handler) fail(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, "%d %s: %s\n", code, http.StatusText(code), msg)
}

var errBadRequest = errors.New("bad request")

// body is what askrd read of a request before handing it to PHP.
type body struct {
	inline []byte
	file   string // spooled body
	size   int64  // bytes in inline or file
	fields [][2]string
	files  []upload
	temp   []string // files to remove after the request
}

type upload struct {
	field, name, typ, tmp, fullPath string
	size                            int64
	err                             int
}

func (b *body) cleanup(log *slog.Logger) {
	for _, f := range b.temp {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("removing temporary file", "err", err)
		}
	}
}

// readBody reads the request body into memory or a spool file; in worker mode, a POST multipart
// body is parsed into fields and files instead (in per-request mode PHP parses it).
func (h *Handler) readBody(r *http.Request) (*body, error) {
	b := &body{}
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return b, nil
	}
	if r.Method == http.MethodPost && h.fcgi == nil {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
			return b, h.readMultipart(r, b)
		}
	}
	// Small bodies stay in memory; the rest go to a file, never whole in RAM.
	limit := h.opt.BodyBufferSize
	if r.ContentLength > limit {
		return b, h.spool(r.Body, nil, b)
	}
	head, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return b, err
	}
	if int64(len(head)) <= limit {
		b.inline, b.size = head, int64(len(head))
		return b, nil
	}
	return b, h.spool(r.Body, head, b)
}

// spool writes head and the rest of body to a temporary file.
func (h *Handler) spool(body io.Reader, head []byte, b *body) error {
	f, err := os.CreateTemp(h.opt.SpoolDir, "askr-body-*")
	if err != nil {
		return fmt.Errorf("spool body: %w", err)
	}
	b.temp = append(b.temp, f.Name())
	b.file = f.Name()
	n, err := f.Write(head)
	if err == nil {
		var m int64
		m, err = io.Copy(f, body)
		b.size = int64(n) + m
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readMultipart stores a multipart/form-data body's fields and files as PHP's own parser would,
// with the limits of PHP's configuration: post_max_size, file_uploads, max_file_uploads,
// upload_max_filesize and a MAX_FILE_SIZE field before the file (error codes as in $_FILES).
func (h *Handler) readMultipart(r *http.Request, b *body) error {
	lim := h.backend.Limits()
	if lim.PostMaxSize > 0 && r.ContentLength > lim.PostMaxSize {
		// PHP ignores such a body (and warns, see the runtime): drain it, store nothing.
		n, err := io.Copy(io.Discard, r.Body)
		b.size = n
		return err
	}
	count := &countingReader{r: r.Body}
	r.Body = struct {
		io.Reader
		io.Closer
	}{count, r.Body}
	mr, err := r.MultipartReader()
	if err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	var formMax int64 // MAX_FILE_SIZE
	files := 0
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return err
			}
			return fmt.Errorf("%w: malformed multipart body: %v", errBadRequest, err)
		}
		_, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
		if err != nil {
			return fmt.Errorf("%w: multipart part with a malformed Content-Disposition: %v", errBadRequest, err)
		}
		name := params["name"]
		if name == "" {
			part.Close()
			continue
		}
		filename, isFile := params["filename"]
		if !isFile {
			v, err := io.ReadAll(partReader{part})
			if err != nil {
				return err
			}
			b.fields = append(b.fields, [2]string{name, string(v)})
			if strings.EqualFold(name, "MAX_FILE_SIZE") {
				formMax, _ = strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
			}
			continue
		}
		up := upload{field: name, name: path.Base(strings.ReplaceAll(filename, `\`, "/")), fullPath: filename}
		if filename == "" {
			up.name, up.err = "", 4 // UPLOAD_ERR_NO_FILE
			part.Close()
			b.files = append(b.files, up)
			continue
		}
		if lim.Known && !lim.FileUploads {
			part.Close()
			continue
		}
		if files++; lim.Known && files > lim.MaxFiles {
			if files == lim.MaxFiles+1 {
				h.log.Warn("Maximum number of allowable file uploads has been exceeded (max_file_uploads)", "max", lim.MaxFiles, "uri", r.RequestURI)
			}
			part.Close()
			continue
		}
		up.typ = part.Header.Get("Content-Type")
		if up.typ == "" {
			up.typ = "application/octet-stream"
		}
		if err := h.storeUpload(partReader{part}, &up, lim.MaxFileSize, formMax, b); err != nil {
			return err
		}
		b.files = append(b.files, up)
	}
	if lim.PostMaxSize > 0 && count.n > lim.PostMaxSize {
		// A chunked body of unknown length turned out too large: as PHP, keep nothing of it.
		b.cleanup(h.log)
		b.temp, b.fields, b.files = nil, nil, nil
	}
	b.size = count.n
	return nil
}

// partReader reads a multipart part. Its errors that are neither the client's (clientError) nor a
// body over max_body_size are the body's own: a body that ends inside a part, which the multipart
// reader reports as io.ErrUnexpectedEOF, is a bad request (400), not askrd's failure.
type partReader struct{ r io.Reader }

func (p partReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err != nil && err != io.EOF {
		var fromClient *clientError
		var tooBig *http.MaxBytesError
		if !errors.As(err, &fromClient) && !errors.As(err, &tooBig) {
			err = fmt.Errorf("%w: malformed multipart body: %v", errBadRequest, err)
		}
	}
	return n, err
}

// storeUpload writes one file part to a temporary file. A file over upload_max_filesize
// (UPLOAD_ERR_INI_SIZE) or over the form's MAX_FILE_SIZE (UPLOAD_ERR_FORM_SIZE) is not kept.
func (h *Handler) storeUpload(part io.Reader, up *upload, iniMax, formMax int64, b *body) error {
	f, err := os.CreateTemp(h.opt.SpoolDir, "askr-upload-*")
	if err != nil {
		return fmt.Errorf("spool upload: %w", err)
	}
	b.temp = append(b.temp, f.Name())
	limit := int64(math.MaxInt64)
	if iniMax > 0 {
		limit = iniMax
	}
	if formMax > 0 && formMax < limit {
		limit = formMax
	}
	up.size, err = io.Copy(f, io.LimitReader(part, limit))
	if err == nil && up.size == limit {
		var more int64
		more, err = io.Copy(io.Discard, part)
		if more > 0 {
			up.err = 1 // UPLOAD_ERR_INI_SIZE
			if limit == formMax && (iniMax == 0 || formMax < iniMax) {
				up.err = 2 // UPLOAD_ERR_FORM_SIZE
			}
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if up.err != 0 {
		up.size = 0
		return os.Remove(f.Name())
	}
	up.tmp = f.Name()
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// encode builds the request frame's payload: the CGI variables nginx's fastcgi_params give php-fpm
// for a front controller, and the body.
func (h *Handler) encode(r *http.Request, b *body) []byte {
	type kv struct{ k, v string }
	vars := make([]kv, 0, 24+len(r.Header))
	scriptName, pathInfo := h.script, ""
	if rest, ok := strings.CutPrefix(r.URL.Path, h.script); ok && strings.HasPrefix(rest, "/") {
		pathInfo = rest
	}
	h.cgiVars(r, b.size, scriptName, pathInfo, scriptName+pathInfo, false, func(k, v string) { vars = append(vars, kv{k, v}) })

	var s channel.Serializer
	s.B = make([]byte, 0, 1024+len(b.inline))
	s.Array(5)
	s.String("server")
	s.Array(len(vars) + 2)
	for _, v := range vars {
		s.Pair(v.k, v.v)
	}
	now := time.Now()
	s.String("REQUEST_TIME")
	s.Int(now.Unix())
	s.String("REQUEST_TIME_FLOAT")
	s.Float(float64(now.UnixMicro()) / 1e6)
	s.Close()
	s.String("body")
	s.Bytes(b.inline)
	s.String("body_file")
	s.String(b.file)
	s.String("post")
	s.Array(len(b.fields))
	for i, f := range b.fields {
		s.Int(int64(i))
		s.Array(2)
		s.Int(0)
		s.String(f[0])
		s.Int(1)
		s.String(f[1])
		s.Close()
	}
	s.Close()
	s.String("files")
	s.Array(len(b.files))
	for i, f := range b.files {
		s.Int(int64(i))
		s.Array(7)
		for j, v := range []string{f.field, f.name, f.typ, f.tmp} {
			s.Int(int64(j))
			s.String(v)
		}
		s.Int(4)
		s.Int(f.size)
		s.Int(5)
		s.Int(int64(f.err))
		s.Int(6)
		s.String(f.fullPath)
		s.Close()
	}
	s.Close()
	s.Close()
	return s.B
}

// cgiVars passes add the CGI variables of a request for the script at the URL path script, in the
// order nginx's fastcgi_params sends them: what php-fpm gets behind nginx. size is the length of
// the body read. fpm is set for php-cgi in FastCGI mode (per-request mode), which computes PHP_SELF
// itself and gets REMOTE_USER and the headers (sorted) as nginx sends them; worker mode's runtime
// gets PHP_SELF from askrd.
// cgiVars passes add the CGI variables of a request for the script at the URL path scriptName, in
// the order nginx's fastcgi_params sends them: what php-fpm gets behind nginx. size is the length
// of the body read. fpm is set for php-cgi in FastCGI mode (per-request mode), which computes
// PHP_SELF itself, gets REMOTE_USER as nginx sends it, the headers in a stable order, and a
// CONTENT_LENGTH that is exactly the body sent; worker mode's runtime gets PHP_SELF from askrd.
func (h *Handler) cgiVars(r *http.Request, size int64, scriptName, pathInfo, docURI string, fpm bool, add func(k, v string)) {
	https := r.TLS != nil || h.opt.HTTPS
	scheme := "http"
	if https {
		scheme = "https"
	}
	host := r.Host
	serverName := host
	if hn, _, err := net.SplitHostPort(host); err == nil {
		serverName = hn
	}
	serverAddr, serverPort := "", ""
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		serverAddr, serverPort, _ = net.SplitHostPort(la.String())
	}
	remoteAddr, remotePort, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		remoteAddr = r.RemoteAddr
	}
	// As nginx, which buffers chunked bodies too: the length of what was read, or the declared one.
	cl := ""
	if size > 0 {
		cl = strconv.FormatInt(size, 10)
	} else if r.ContentLength > 0 && !fpm {
		cl = strconv.FormatInt(r.ContentLength, 10)
	}

	add("QUERY_STRING", r.URL.RawQuery)
	add("REQUEST_METHOD", r.Method)
	add("CONTENT_TYPE", r.Header.Get("Content-Type"))
	add("CONTENT_LENGTH", cl)
	add("SCRIPT_NAME", scriptName)
	add("SCRIPT_FILENAME", h.opt.Root+scriptName)
	add("PATH_INFO", pathInfo)
	if !fpm {
		add("PHP_SELF", scriptName+pathInfo)
	}
	add("REQUEST_URI", r.RequestURI)
	add("DOCUMENT_URI", docURI)
	add("DOCUMENT_ROOT", h.opt.Root)
	add("SERVER_PROTOCOL", r.Proto)
	add("REQUEST_SCHEME", scheme)
	if https {
		add("HTTPS", "on")
	}
	add("GATEWAY_INTERFACE", "CGI/1.1")
	add("SERVER_SOFTWARE", h.opt.Software)
	add("REMOTE_ADDR", remoteAddr)
	add("REMOTE_PORT", remotePort)
	if fpm {
		user, _, _ := r.BasicAuth()
		add("REMOTE_USER", user)
	}
	add("SERVER_ADDR", serverAddr)
	add("SERVER_PORT", serverPort)
	add("SERVER_NAME", serverName)
	add("REDIRECT_STATUS", "200")
	add("HTTP_HOST", host)
	names := maps.Keys(r.Header)
	if fpm {
		names = slices.Values(slices.Sorted(names))
	}
	for name := range names {
		values := r.Header[name]
		// As nginx (ignore_invalid_headers): only names of letters, digits and "-" pass; "_" or "."
		// would let a header pose as another (PHP turns "." into "_"). Proxy neither (httpoxy).
		if !validHeaderName(name) || name == "Proxy" || len(values) == 0 {
			continue
		}
		sep := ", "
		if name == "Cookie" {
			sep = "; "
		}
		add("HTTP_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_")), strings.Join(values, sep))
	}
}

// validHeaderName reports whether a request header's name is made of ASCII letters, digits and "-".
func validHeaderName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return name != ""
}
