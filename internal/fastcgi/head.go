package fastcgi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/askr-php/askr/internal/header"
)

// DefaultMaxHead is a bound for a response head suitable for php-cgi: PHP's own headers plus a
// generous allowance for cookies.
const DefaultMaxHead = 64 << 10

// ErrHeadTooLarge is returned by HeadSplitter when no blank line ends the head within its bound.
var ErrHeadTooLarge = errors.New("fastcgi: response head too large")

// ErrNoHead is returned by HeadSplitter.Close when the output ended before the head did.
var ErrNoHead = errors.New("fastcgi: response ended inside its head")

// ErrBadHead is wrapped by the errors HeadSplitter returns for a malformed head.
var ErrBadHead = errors.New("fastcgi: malformed response head")

// Head is a CGI response head: header lines ("Name: value"), each ending in "\r\n" or "\n", then
// a blank line. php-cgi writes, for example:
//
//	Status: 404 Not Found\r\n
//	X-Powered-By: PHP/8.2.36\r\n
//	Content-type: text/html; charset=UTF-8\r\n
//	\r\n
type Head struct {
	Status int         // from the Status header; 200 without one
	Reason string      // the text after the code in the Status header, if any ("Not Found")
	Header http.Header // the other fields: names canonicalized, each name's values in the order sent
}

// HeadSplitter is an io.Writer for Request.Stdout that splits a CGI response into its head and
// body as the output streams in: it holds output until the blank line that ends the head (at most
// maxHead bytes), parses the head and calls onHead once, then passes everything after the blank
// line to body, without buffering. Call Close after the request to detect a response that ended
// inside its head.
type HeadSplitter struct {
	max     int
	onHead  func(*Head) error
	body    io.Writer
	buf     []byte // the head so far, while head is nil
	line    int    // where the line being scanned starts in buf
	scanned int    // how far buf has been scanned for "\n"
	head    *Head
	err     error // sticky
}

// NewHeadSplitter returns a HeadSplitter that hands the parsed head to onHead and the body to
// body. An error from onHead is returned by Write and ends the splitting.
func NewHeadSplitter(maxHead int, onHead func(*Head) error, body io.Writer) *HeadSplitter {
	return &HeadSplitter{max: maxHead, onHead: onHead, body: body}
}

// Head returns the parsed head, or nil while it is incomplete.
func (s *HeadSplitter) Head() *Head { return s.head }

// Write consumes output. It reports len(p) bytes written unless the head is malformed or too
// large, onHead fails, or body's Write fails.
func (s *HeadSplitter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.head != nil {
		return s.body.Write(p)
	}
	n := min(len(p), s.max-len(s.buf))
	s.buf = append(s.buf, p[:n]...)
	end, err := s.scan()
	if err != nil {
		s.err = err
		return 0, err
	}
	if end < 0 {
		if n < len(p) || len(s.buf) >= s.max {
			s.err = fmt.Errorf("%w: no blank line within %d bytes", ErrHeadTooLarge, s.max)
			return 0, s.err
		}
		return len(p), nil
	}
	h, err := parseHead(s.buf[:end])
	if err == nil {
		err = s.onHead(h)
	}
	if err != nil {
		s.err = err
		return 0, err
	}
	s.head = h
	// The body's first bytes: what followed the head in buf, then the rest of p.
	rest := s.buf[end:]
	s.buf = nil
	if len(rest) > 0 {
		if _, err := s.body.Write(rest); err != nil {
			s.err = err
			return 0, err
		}
	}
	if n < len(p) {
		if _, err := s.body.Write(p[n:]); err != nil {
			s.err = err
			return 0, err
		}
	}
	return len(p), nil
}

// scan looks for the blank line in the unscanned part of buf and returns the offset just after
// it, or -1.
func (s *HeadSplitter) scan() (int, error) {
	for {
		i := bytes.IndexByte(s.buf[s.scanned:], '\n')
		if i < 0 {
			s.scanned = len(s.buf)
			return -1, nil
		}
		nl := s.scanned + i
		s.scanned = nl + 1
		line := s.buf[s.line:nl]
		s.line = nl + 1
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			return nl + 1, nil
		}
	}
}

// Flush flushes body, if it has a Flush() error method, once the head has been passed on; before
// that it does nothing. Conn.Do calls it when the application paused.
func (s *HeadSplitter) Flush() error {
	if s.err != nil {
		return s.err
	}
	if s.head == nil {
		return nil
	}
	if f, ok := s.body.(flusher); ok {
		return f.Flush()
	}
	return nil
}

// Close reports ErrNoHead if the output ended before its head did, or the error that stopped the
// splitting. It does not close body.
func (s *HeadSplitter) Close() error {
	if s.err != nil {
		return s.err
	}
	if s.head == nil {
		return fmt.Errorf("%w (%d bytes of output)", ErrNoHead, len(s.buf))
	}
	return nil
}

// parseHead parses a complete head, blank line included.
func parseHead(b []byte) (*Head, error) {
	h := &Head{Status: http.StatusOK, Header: http.Header{}}
	status := false
	for n := 1; ; n++ {
		i := bytes.IndexByte(b, '\n')
		line := b[:i]
		b = b[i+1:]
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			return h, nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return nil, fmt.Errorf("%w: line %d: no colon in %q", ErrBadHead, n, line)
		}
		name, value := line[:colon], strings.Trim(string(line[colon+1:]), " \t")
		if !header.ValidName(name) {
			return nil, fmt.Errorf("%w: line %d: invalid field name %q", ErrBadHead, n, name)
		}
		if !validValue(value) {
			return nil, fmt.Errorf("%w: line %d: invalid value of %s: %q", ErrBadHead, n, name, value)
		}
		key := textproto.CanonicalMIMEHeaderKey(string(name))
		if key != "Status" {
			h.Header[key] = append(h.Header[key], value)
			continue
		}
		if status {
			return nil, fmt.Errorf("%w: line %d: second Status field", ErrBadHead, n)
		}
		status = true
		code, reason, _ := strings.Cut(value, " ")
		c, err := strconv.Atoi(code)
		if err != nil || len(code) != 3 || c < 100 {
			return nil, fmt.Errorf("%w: line %d: invalid Status %q", ErrBadHead, n, value)
		}
		h.Status, h.Reason = c, strings.TrimLeft(reason, " ")
	}
}

// validValue reports whether s has no control characters other than HTAB (RFC 9110 section 5.5).
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
