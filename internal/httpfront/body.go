package httpfront

// The one body reader of both modes: limits (max_body_size, client_timeout), small bodies in
// memory, the rest in a spool file, and, for a backend that wants them (worker mode), multipart
// forms parsed into fields and uploaded files as PHP's own parser would.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/askr-php/askr/internal/channel"
)

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
// apart from askrd's own (writing the spool file): 400, not 500. It counts what it read (the
// request record's BytesIn).
type clientBody struct {
	r io.ReadCloser
	n int64
}

func (c *clientBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		err = &clientError{err}
	}
	return n, err
}

func (c *clientBody) Close() error { return c.r.Close() }

// clientError is an error reading the request body from the client.
type clientError struct{ err error }

func (e *clientError) Error() string { return "read request body: " + e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }

// takeBody applies the body limits and reads the body (readBody); if it cannot, it answers the
// client itself and ok is false. Clean the body up in any case.
func (h *Handler) takeBody(w http.ResponseWriter, r *http.Request, rc *http.ResponseController) (b *body, ok bool) {
	if r.ContentLength > h.opt.MaxBodySize {
		h.fail(w, http.StatusRequestEntityTooLarge, "request body too large")
		return &body{}, false
	}
	if r.Body == nil || r.Body == http.NoBody {
		return &body{}, true // nothing to read, bound or time (most GETs)
	}
	r.Body = http.MaxBytesReader(rawWriter(w), r.Body, h.opt.MaxBodySize)
	if h.opt.ClientTimeout > 0 {
		r.Body = deadlineReader{r.Body, rc, h.opt.ClientTimeout}
	}
	cb := &clientBody{r: r.Body}
	r.Body = cb
	req, err := h.readBody(r)
	countBody(w, cb.n)
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

var errBadRequest = errors.New("bad request")

// body is what askrd read of a request before handing it to PHP.
type body struct {
	inline []byte
	file   string // spooled body
	size   int64  // bytes in inline or file
	fields [][2]string
	files  []upload
	temp   []string // files to remove after the request

	payload *[]byte // the worker payload's buffer (cgiEnv.encode), pooled again by cleanup
}

type upload struct {
	field, name, typ, tmp, fullPath string
	size                            int64
	err                             int
}

func (b *body) cleanup(log *slog.Logger) {
	b.releasePayload()
	for _, f := range b.temp {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("removing temporary file", "err", err)
		}
	}
}

// readBody reads the request body into memory or a spool file; a POST multipart body is parsed
// into fields and files instead if the backend asks for it (worker mode: see backend.forms).
func (h *Handler) readBody(r *http.Request) (*body, error) {
	b := &body{}
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return b, nil
	}
	if r.Method == http.MethodPost {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
			if lim, ok := h.backend.forms(); ok {
				return b, h.readMultipart(r, lim, b)
			}
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
func (h *Handler) readMultipart(r *http.Request, lim channel.Limits, b *body) error {
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
		if err := h.readFilePart(r, part, lim, name, filename, &files, formMax, b); err != nil {
			return err
		}
	}
	if lim.PostMaxSize > 0 && count.n > lim.PostMaxSize {
		// A chunked body of unknown length turned out too large: as PHP, keep nothing of it.
		b.cleanup(h.log)
		b.temp, b.fields, b.files = nil, nil, nil
	}
	b.size = count.n
	return nil
}

// readFilePart stores a file part of a multipart body (with its field name and file name) under
// the limits of PHP's configuration and the form's MAX_FILE_SIZE, formMax; files counts the files
// offered so far, as max_file_uploads does.
func (h *Handler) readFilePart(r *http.Request, part *multipart.Part, lim channel.Limits, name, filename string, files *int, formMax int64, b *body) error {
	defer part.Close()
	up := upload{field: name, name: path.Base(strings.ReplaceAll(filename, `\`, "/")), fullPath: filename}
	if filename == "" {
		up.name, up.err = "", 4 // UPLOAD_ERR_NO_FILE
		b.files = append(b.files, up)
		return nil
	}
	if lim.Known && !lim.FileUploads {
		return nil
	}
	if *files++; lim.Known && *files > lim.MaxFiles {
		if *files == lim.MaxFiles+1 {
			h.log.Warn("Maximum number of allowable file uploads has been exceeded (max_file_uploads)", "max", lim.MaxFiles, "uri", r.RequestURI)
		}
		return nil
	}
	up.typ = part.Header.Get("Content-Type")
	if up.typ == "" {
		up.typ = "application/octet-stream"
	}
	if err := h.storeUpload(partReader{part}, &up, lim.MaxFileSize, formMax, b); err != nil {
		return err
	}
	b.files = append(b.files, up)
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
