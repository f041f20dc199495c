package httpfront

// The request record (Options.Observe): every request, whatever answers it — a static file, a
// redirect, an error of askrd's, PHP — is measured by one ResponseWriter wrapper and reported once,
// after the handler is done with it.

import (
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/askr-php/askr/internal/pool"
)

// observed is one request being recorded: the ResponseWriter the handler writes to, which counts
// the status and the body bytes, and the Record it fills. They are pooled (observedPool).
type observed struct {
	http.ResponseWriter
	rec      Record
	finished bool           // the handler returned (it did not panic)
	cw       compressWriter // the response's, if it may be compressed (newCompressWriter)
}

// Unwrap gives http.ResponseController the connection's writer (deadlines, Flush, Hijack).
func (o *observed) Unwrap() http.ResponseWriter { return o.ResponseWriter }

// WriteHeader notes the final status (a 1xx, such as 103 Early Hints, is not one).
func (o *observed) WriteHeader(code int) {
	if o.rec.Status == 0 && code >= 200 {
		o.rec.Status = code
	}
	o.ResponseWriter.WriteHeader(code)
}

func (o *observed) Write(b []byte) (int, error) {
	if o.rec.Status == 0 {
		o.rec.Status = http.StatusOK
	}
	n, err := o.ResponseWriter.Write(b)
	o.rec.BytesOut += int64(n)
	return n, err
}

// ReadFrom keeps net/http's sendfile for static files (http.ServeContent copies with io.Copy).
func (o *observed) ReadFrom(r io.Reader) (int64, error) {
	if o.rec.Status == 0 {
		o.rec.Status = http.StatusOK
	}
	rf, ok := o.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{o}, r) // through Write, which counts
	}
	n, err := rf.ReadFrom(r)
	o.rec.BytesOut += n
	return n, err
}

// FlushError is what http.ResponseController.Flush calls: the connection's flush, with its error
// (the responder stops a response whose flush failed).
func (o *observed) FlushError() error {
	if o.rec.Status == 0 {
		o.rec.Status = http.StatusOK // a flush sends the head
	}
	switch f := o.ResponseWriter.(type) {
	case interface{ FlushError() error }:
		return f.FlushError()
	case http.Flusher:
		f.Flush()
		return nil
	}
	return http.ErrNotSupported
}

// Flush is http.Flusher's, for code that asks the writer directly.
func (o *observed) Flush() { o.FlushError() }

// observedPool holds the records of requests that are over: done gives one back once the handler
// has returned (not after a panic, when a writer goroutine of the response might still hold it).
var observedPool = sync.Pool{New: func() any { return new(observed) }}

// observe starts the record of r; done completes it and hands it to Options.Observe.
func (h *Handler) observe(w http.ResponseWriter, r *http.Request) *observed {
	o := observedPool.Get().(*observed)
	*o = observed{ResponseWriter: w, rec: Record{Start: time.Now(), RemoteAddr: r.RemoteAddr, Method: r.Method,
		URI: r.RequestURI, Proto: r.Proto, Host: r.Host}}
	return o
}

// statusClientGone is what the record says of a request whose client left before any answer was
// written (nginx's 499).
const statusClientGone = 499

// done completes the record once the handler is over (also when it aborts the connection with
// http.ErrAbortHandler: a response cut short is logged with what was sent of it).
func (h *Handler) done(o *observed, r *http.Request) {
	rec := &o.rec
	rec.Duration = time.Since(rec.Start)
	switch {
	case rec.Status != 0:
	case r.Context().Err() != nil:
		rec.Status = statusClientGone
	case !o.finished:
		rec.Status = http.StatusInternalServerError // a panic: net/http drops the connection
	default:
		rec.Status = http.StatusOK // what net/http sends for a handler that wrote nothing
	}
	if r.Method == http.MethodHead {
		rec.BytesOut = 0 // net/http discards a HEAD response's body but counts it as written
	}
	rec.Referer = r.Header.Get("Referer")
	rec.UserAgent = r.Header.Get("User-Agent")
	if _, ok := r.Header["Authorization"]; ok {
		rec.User, _, _ = r.BasicAuth()
	}
	h.opt.Observe(rec)
	if o.finished {
		*o = observed{}
		observedPool.Put(o)
	}
}

// rawWriter is the connection's own writer under the record's wrapper: http.MaxBytesReader tells
// it (through an unexported method no wrapper can forward) to close the connection after a body
// that was too large.
func rawWriter(w http.ResponseWriter) http.ResponseWriter {
	if o, ok := w.(*observed); ok {
		return o.ResponseWriter
	}
	return w
}

// countBody notes in the record, if there is one, how much of the body was read.
func countBody(w http.ResponseWriter, n int64) {
	if o, ok := w.(*observed); ok {
		o.rec.BytesIn = n
	}
}

// visit is the pool's record of a PHP request: the Record's own if the request is observed.
func visit(w http.ResponseWriter, r *http.Request) *pool.Visit {
	if o, ok := w.(*observed); ok {
		o.rec.PHP = true
		o.rec.Visit = pool.Visit{Method: r.Method, URI: r.RequestURI, Start: o.rec.Start}
		return &o.rec.Visit
	}
	return &pool.Visit{Method: r.Method, URI: r.RequestURI, Start: time.Now()}
}
