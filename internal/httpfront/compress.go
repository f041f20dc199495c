package httpfront

// Response compression (Options.Compression): br or gzip, as the request's Accept-Encoding
// prefers, for a response of a compressible type of at least minCompressSize bytes — PHP's
// (responder.go; a streamed one flushed as PHP flushes) and a static file's (static.go, which also
// sends a precompressed file.br or file.gz when there is one). Never for a HEAD request, a Range
// request, a 1xx, 204, 206 or 304, a response that has a Content-Encoding already (PHP encoded it
// itself), or one with Cache-Control: no-transform. Every response of a compressible type gets
// Vary: Accept-Encoding, compressed or not; a compressed one loses its Content-Length and
// Accept-Ranges, and its strong ETag becomes weak (as nginx's gzip does), so that it differs from
// the uncompressed one's and If-None-Match still matches it.

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
)

// minCompressSize is the smallest body worth compressing: below it the encoding's framing and
// the CPU cost outweigh the bytes saved. Caddy's default; nginx's gzip_min_length is 20, the
// original askr's 1024. A small HTML page (headers and all over one 1460-byte TCP segment) then
// fits in one.
const minCompressSize = 512

// The encoders' levels, fast ones: dynamic content is compressed afresh for every request.
// Brotli 4 is about as fast as gzip 5 and 5-10 % smaller.
const (
	brLevel   = 4
	gzipLevel = 5
)

// coding is a content coding askrd can send.
type coding uint8

const (
	identity coding = iota
	gzipCoding
	brCoding
)

func (c coding) String() string {
	switch c {
	case brCoding:
		return "br"
	case gzipCoding:
		return "gzip"
	}
	return "identity"
}

// accepted is what an Accept-Encoding header allows of br and gzip: their q-values (0 refused).
type accepted struct{ br, gzip float64 }

// acceptEncoding reads the request's Accept-Encoding fields: "br;q=0.8, gzip", "*", "x-gzip".
// A coding not named gets the q of "*", if any, else 0; an element whose q cannot be read is
// ignored.
func acceptEncoding(values []string) accepted {
	br, gz, star := -1.0, -1.0, -1.0
	for _, v := range values {
		for v != "" {
			var elem string
			elem, v, _ = strings.Cut(v, ",")
			name, params, _ := strings.Cut(elem, ";")
			q, ok := qValue(params)
			if !ok {
				continue
			}
			switch name = strings.TrimSpace(name); {
			case strings.EqualFold(name, "br"):
				br = q
			case strings.EqualFold(name, "gzip"), strings.EqualFold(name, "x-gzip"):
				gz = q
			case name == "*":
				star = q
			}
		}
	}
	if br < 0 {
		br = max(star, 0)
	}
	if gz < 0 {
		gz = max(star, 0)
	}
	return accepted{br: br, gzip: gz}
}

// qValue reads the q parameter of an Accept-Encoding element's parameters (" q=0.5"); 1 if there
// is none.
func qValue(params string) (float64, bool) {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, val, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || q < 0 || q > 1 {
			return 0, false
		}
		return q, true
	}
	return 1, true
}

// best is the coding to send: the accepted one with the higher q, br on a tie, or identity.
func (a accepted) best() coding {
	switch {
	case a.br > 0 && a.br >= a.gzip:
		return brCoding
	case a.gzip > 0:
		return gzipCoding
	}
	return identity
}

// compressible reports whether a Content-Type is worth compressing: text, JSON, JavaScript, XML
// (SVG, RSS, Atom…), WebAssembly and the uncompressed font and icon formats. Images, audio,
// video, archives and WOFF fonts are compressed already.
func compressible(ctype string) bool {
	mt, _, _ := strings.Cut(ctype, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	if strings.HasPrefix(mt, "text/") || strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "+xml") {
		return true
	}
	switch mt {
	case "application/json", "application/x-ndjson", "application/javascript", "application/x-javascript",
		"application/ecmascript", "application/xml", "application/wasm", "application/yaml",
		"image/x-icon", "image/vnd.microsoft.icon", "image/bmp",
		"font/ttf", "font/otf", "application/x-font-ttf", "application/vnd.ms-fontobject":
		return true
	}
	return false
}

// addVary adds Accept-Encoding to the response's Vary header unless it is there already.
func addVary(h http.Header) {
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, "Accept-Encoding") {
				return
			}
		}
	}
	if _, ok := h["Vary"]; ok {
		h.Add("Vary", "Accept-Encoding")
		return
	}
	h["Vary"] = varyAccept[:1:1] // shared, never written: an Add appends to a copy (cap 1)
}

// varyAccept is the Vary of a response that had none, without an allocation per response.
var varyAccept = []string{"Accept-Encoding"}

// encoder is a br or gzip writer (brotli.Writer, gzip.Writer).
type encoder interface {
	io.Writer
	Flush() error
	Close() error
	Reset(io.Writer)
}

// The encoders are pooled: a brotli or gzip writer holds hundreds of KB of tables, which a
// request should not have to allocate.
var (
	brPool   = sync.Pool{New: func() any { return brotli.NewWriterLevel(nil, brLevel) }}
	gzipPool = sync.Pool{New: func() any {
		w, _ := gzip.NewWriterLevel(nil, gzipLevel) // the level is valid
		return w
	}}
)

func getEncoder(c coding, w io.Writer) encoder {
	var e encoder
	if c == brCoding {
		e = brPool.Get().(*brotli.Writer)
	} else {
		e = gzipPool.Get().(*gzip.Writer)
	}
	e.Reset(w)
	return e
}

func putEncoder(c coding, e encoder) {
	if c == brCoding {
		brPool.Put(e)
	} else {
		gzipPool.Put(e)
	}
}

// compressWriter is the ResponseWriter of a response that may be compressed: it decides when the
// head is written — at once if the headers decide (not compressible, or a Content-Length), else
// once minCompressSize bytes of body have come, or at PHP's first flush, or at close (a small body:
// sent as it is). At a flush before minCompressSize bytes, only an event stream is compressed
// (its events are small): any other response is sent as it is, because Symfony's and so
// Laravel's Response::send() ends every response with flush() — a small JSON answer is not a
// stream. A compressed response is flushed, encoder and connection, wherever PHP flushed.
type compressWriter struct {
	http.ResponseWriter
	coding coding // what the client prefers (identity: only Vary is added)
	noBody bool   // a HEAD request: never compressed
	ranged bool   // a Range request: never compressed
	state  cwState
	status int    // the status held while undecided
	held   []byte // the body held while undecided
	enc    encoder
}

type cwState uint8

const (
	cwStart      cwState = iota // no head yet
	cwHolding                   // a head that may be compressed, held until the body decides
	cwPassing                   // passed on as it is
	cwCompressed                // compressed by enc
)

// newCompressWriter wraps w for a response to r, which the client wants encoded with c. Under the
// request record (observed), the compressWriter is the record's own: it lives as long.
func newCompressWriter(w http.ResponseWriter, r *http.Request, c coding) *compressWriter {
	_, ranged := r.Header["Range"]
	if o, ok := w.(*observed); ok {
		o.cw = compressWriter{ResponseWriter: w, coding: c, noBody: r.Method == http.MethodHead, ranged: ranged}
		return &o.cw
	}
	return &compressWriter{ResponseWriter: w, coding: c, noBody: r.Method == http.MethodHead, ranged: ranged}
}

// compressor is the compressWriter of a response of PHP to r, or nil without Options.Compression.
func (h *Handler) compressor(w http.ResponseWriter, r *http.Request) *compressWriter {
	if !h.opt.Compression {
		return nil
	}
	return newCompressWriter(w, r, acceptEncoding(r.Header["Accept-Encoding"]).best())
}

// Unwrap gives http.ResponseController the connection's writer (deadlines).
func (cw *compressWriter) Unwrap() http.ResponseWriter { return cw.ResponseWriter }

func (cw *compressWriter) WriteHeader(code int) {
	if cw.state != cwStart || code < 200 { // a 1xx (103 Early Hints) goes as it is; the final head follows
		cw.ResponseWriter.WriteHeader(code)
		return
	}
	cw.status = code
	h := cw.Header()
	ct := h.Get("Content-Type")
	if !compressible(ct) {
		cw.pass()
		return
	}
	addVary(h)
	if cw.coding == identity || cw.noBody || cw.ranged || code == http.StatusNoContent ||
		code == http.StatusPartialContent || code == http.StatusNotModified || h.Get("Content-Range") != "" ||
		h.Get("Content-Encoding") != "" || noTransform(h) {
		cw.pass()
		return
	}
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err != nil || n < minCompressSize {
			cw.pass()
			return
		}
		cw.compress()
		return
	}
	cw.state = cwHolding
}

// eventStream reports a Content-Type of server-sent events.
func eventStream(ctype string) bool {
	mt, _, _ := strings.Cut(ctype, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

// noTransform reports Cache-Control: no-transform: no proxy may change the body's encoding.
func noTransform(h http.Header) bool {
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(d), "no-transform") {
				return true
			}
		}
	}
	return false
}

// pass sends the head as it is; the body follows unchanged.
func (cw *compressWriter) pass() {
	cw.state = cwPassing
	cw.ResponseWriter.WriteHeader(cw.status)
}

// compress sends the head of the compressed response and starts the encoder.
func (cw *compressWriter) compress() {
	cw.state = cwCompressed
	h := cw.Header()
	h.Del("Content-Length")
	h.Del("Accept-Ranges")
	h.Set("Content-Encoding", cw.coding.String())
	if et := h.Get("Etag"); et != "" && !strings.HasPrefix(et, "W/") {
		h.Set("Etag", "W/"+et)
	}
	cw.ResponseWriter.WriteHeader(cw.status)
	cw.enc = getEncoder(cw.coding, cw.ResponseWriter)
}

func (cw *compressWriter) Write(b []byte) (int, error) {
	if cw.state == cwStart {
		cw.WriteHeader(http.StatusOK)
	}
	switch cw.state {
	case cwHolding:
		if len(cw.held)+len(b) < minCompressSize {
			if cw.held == nil {
				cw.held = (*heldPool.Get().(*[minCompressSize]byte))[:0]
			}
			cw.held = append(cw.held, b...)
			return len(b), nil
		}
		cw.compress()
		if err := cw.release(); err != nil {
			return 0, err
		}
		return cw.enc.Write(b)
	case cwCompressed:
		return cw.enc.Write(b)
	}
	return cw.ResponseWriter.Write(b)
}

// release writes what was held, to the encoder or as it is.
func (cw *compressWriter) release() error {
	if len(cw.held) == 0 {
		return nil
	}
	var err error
	if cw.state == cwCompressed {
		_, err = cw.enc.Write(cw.held)
	} else {
		_, err = cw.ResponseWriter.Write(cw.held)
	}
	heldPool.Put((*[minCompressSize]byte)(cw.held[:minCompressSize]))
	cw.held = nil
	return err
}

// heldPool holds the buffers of the bodies a compressWriter holds back while undecided: once
// written (release), the connection's writer has copied them.
var heldPool = sync.Pool{New: func() any { return new([minCompressSize]byte) }}

// ReadFrom keeps net/http's sendfile for a static file sent as it is.
func (cw *compressWriter) ReadFrom(r io.Reader) (int64, error) {
	if cw.state == cwStart {
		cw.WriteHeader(http.StatusOK)
	}
	if rf, ok := cw.ResponseWriter.(io.ReaderFrom); ok && cw.state == cwPassing {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{cw}, r)
}

// FlushError is what http.ResponseController.Flush calls (PHP flushed): an undecided response is
// decided (see compressWriter); what was compressed so far goes out with the connection's flush.
func (cw *compressWriter) FlushError() error {
	if cw.state == cwStart {
		cw.WriteHeader(http.StatusOK)
	}
	if cw.state == cwHolding {
		if eventStream(cw.Header().Get("Content-Type")) {
			cw.compress()
		} else {
			cw.pass()
		}
		if err := cw.release(); err != nil {
			return err
		}
	}
	if cw.state == cwCompressed {
		if err := cw.enc.Flush(); err != nil {
			return err
		}
	}
	return http.NewResponseController(cw.ResponseWriter).Flush()
}

// Flush is http.Flusher's, for code that asks the writer directly.
func (cw *compressWriter) Flush() { cw.FlushError() }

// close ends the response once the handler is done with it: a body held back is sent as it is
// (it stayed under minCompressSize), a compressed one is ended. cw may be nil (no compression).
func (cw *compressWriter) close() error {
	if cw == nil {
		return nil
	}
	switch cw.state {
	case cwHolding:
		cw.pass()
		return cw.release()
	case cwCompressed:
		err := cw.enc.Close()
		putEncoder(cw.coding, cw.enc)
		cw.enc = nil
		return err
	}
	return nil
}
