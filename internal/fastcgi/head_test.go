package fastcgi

import (
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// split feeds out to a HeadSplitter in pieces of n bytes (all at once if n is 0) and returns the
// head, the body and the first error.
func split(out string, n, max int) (*Head, string, error) {
	var body bytes.Buffer
	var head *Head
	calls := 0
	s := NewHeadSplitter(max, func(h *Head) error {
		calls++
		head = h
		return nil
	}, &body)
	for len(out) > 0 {
		k := len(out)
		if n > 0 {
			k = min(n, k)
		}
		if m, err := s.Write([]byte(out[:k])); err != nil {
			return nil, body.String(), err
		} else if m != k {
			return nil, body.String(), errors.New("short write")
		}
		out = out[k:]
	}
	if err := s.Close(); err != nil {
		return nil, body.String(), err
	}
	if calls != 1 || s.Head() != head {
		return nil, "", errors.New("onHead not called exactly once with Head()")
	}
	return head, body.String(), nil
}

func TestHeadSplitter(t *testing.T) {
	tests := []struct {
		name   string
		out    string
		status int
		reason string
		header http.Header
		body   string
	}{
		{
			name:   "php-cgi",
			out:    "Status: 404 Not Found\r\nX-Multi: one\r\nX-Multi: two\r\nContent-type: text/html; charset=UTF-8\r\n\r\nnot here\n",
			status: 404, reason: "Not Found",
			header: http.Header{"X-Multi": {"one", "two"}, "Content-Type": {"text/html; charset=UTF-8"}},
			body:   "not here\n",
		},
		{
			name:   "bare newlines",
			out:    "Content-Type: text/plain\nLocation: /x\n\nbody\r\n\r\nmore",
			status: 200,
			header: http.Header{"Content-Type": {"text/plain"}, "Location": {"/x"}},
			body:   "body\r\n\r\nmore",
		},
		{
			name:   "mixed line ends, spaces around values, no reason",
			out:    "Status:201\r\nX-A:  spaced \t\nX-Empty:\r\n\nrest",
			status: 201,
			header: http.Header{"X-A": {"spaced"}, "X-Empty": {""}},
			body:   "rest",
		},
		{name: "no fields", out: "\r\nbody", status: 200, header: http.Header{}, body: "body"},
		{name: "no fields, bare newline", out: "\n", status: 200, header: http.Header{}, body: ""},
		{
			name:   "colon in value, lower-case status",
			out:    "status: 302 Found\r\nLocation: http://example.com:8080/a\r\n\r\n",
			status: 302, reason: "Found",
			header: http.Header{"Location": {"http://example.com:8080/a"}},
		},
	}
	for _, tt := range tests {
		for _, n := range []int{0, 1, 2, 7} {
			h, body, err := split(tt.out, n, 1024)
			if err != nil {
				t.Errorf("%s, pieces of %d: error = %v", tt.name, n, err)
				continue
			}
			if h.Status != tt.status || h.Reason != tt.reason || !reflect.DeepEqual(h.Header, tt.header) {
				t.Errorf("%s, pieces of %d: head = %d %q %v; want %d %q %v", tt.name, n, h.Status, h.Reason, h.Header, tt.status, tt.reason, tt.header)
			}
			if body != tt.body {
				t.Errorf("%s, pieces of %d: body = %q; want %q", tt.name, n, body, tt.body)
			}
		}
	}
}

func TestHeadSplitterErrors(t *testing.T) {
	tests := []struct {
		name string
		out  string
		max  int
		want error
		msg  string
	}{
		{"no blank line", "A: b\r\nC: d\r\n", 1024, ErrNoHead, "(12 bytes of output)"},
		{"empty output", "", 1024, ErrNoHead, "(0 bytes of output)"},
		{"too large", strings.Repeat("X-Long: 0123456789\r\n", 10) + "\r\nbody", 100, ErrHeadTooLarge, "within 100 bytes"},
		{"blank line just past the bound", "A: 0123\r\n\r\n", 10, ErrHeadTooLarge, "within 10 bytes"},
		{"no colon", "Content-Type text/html\r\n\r\n", 1024, ErrBadHead, `line 1: no colon in "Content-Type text/html"`},
		{"space in name", "X A: b\r\n\r\n", 1024, ErrBadHead, `line 1: invalid field name "X A"`},
		{"empty name", ": b\r\n\r\n", 1024, ErrBadHead, `line 1: invalid field name ""`},
		{"continuation line", "X-A: b\r\n  c\r\n\r\n", 1024, ErrBadHead, `line 2: no colon`},
		{"control character", "X-A: a\x00b\r\n\r\n", 1024, ErrBadHead, `line 1: invalid value of X-A`},
		{"stray CR", "X-A: a\rb\r\n\r\n", 1024, ErrBadHead, `line 1: invalid value of X-A`},
		{"bad status", "Status: abc\r\n\r\n", 1024, ErrBadHead, `line 1: invalid Status "abc"`},
		{"short status", "Status: 20\r\n\r\n", 1024, ErrBadHead, `invalid Status "20"`},
		{"status below 100", "Status: 099 Low\r\n\r\n", 1024, ErrBadHead, `invalid Status "099 Low"`},
		{"two statuses", "Status: 200\r\nStatus: 404\r\n\r\n", 1024, ErrBadHead, "line 2: second Status field"},
	}
	for _, tt := range tests {
		for _, n := range []int{0, 1} {
			_, _, err := split(tt.out, n, tt.max)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("%s, pieces of %d: error = %v; want %v with %q", tt.name, n, err, tt.want, tt.msg)
			}
		}
	}
}

// The head is held back until it is complete; the body then goes straight through, and errors
// from onHead and from the body's writer stop the splitting.
func TestHeadSplitterStreams(t *testing.T) {
	var body bytes.Buffer
	var head *Head
	s := NewHeadSplitter(64, func(h *Head) error { head = h; return nil }, &body)
	s.Write([]byte("Status: 200 OK\r\n"))
	if head != nil || body.Len() != 0 {
		t.Fatalf("after a partial head: head %v, body %q; want nothing yet", head, body.String())
	}
	s.Write([]byte("\r\nfirst"))
	if head == nil || body.String() != "first" {
		t.Fatalf("after the blank line: head %v, body %q; want the head and %q", head, body.String(), "first")
	}
	// The body is not subject to the head's bound.
	big := strings.Repeat("b", 1000)
	if n, err := s.Write([]byte(big)); n != len(big) || err != nil {
		t.Errorf("Write(1000 bytes of body) = %d, %v; want 1000, nil", n, err)
	}

	boom := errors.New("boom")
	s = NewHeadSplitter(64, func(*Head) error { return boom }, &body)
	if _, err := s.Write([]byte("\r\nx")); err != boom {
		t.Errorf("Write with a failing onHead error = %v; want %v", err, boom)
	}
	if _, err := s.Write([]byte("more")); err != boom {
		t.Errorf("Write after a failure error = %v; want %v again", err, boom)
	}
	if err := s.Close(); err != boom {
		t.Errorf("Close after a failure = %v; want %v", err, boom)
	}

	s = NewHeadSplitter(64, func(*Head) error { return nil }, failingWriter{boom})
	if _, err := s.Write([]byte("\r\nx")); err != boom {
		t.Errorf("Write with a failing body error = %v; want %v", err, boom)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestHeadSplitterBoundIsInclusive(t *testing.T) {
	out := "A: 012\r\n\r\nbody" // a head of exactly 10 bytes
	for _, n := range []int{0, 1} {
		if h, body, err := split(out, n, 10); err != nil || h.Header.Get("A") != "012" || body != "body" {
			t.Errorf("split(%q, max 10), pieces of %d = %v, %q, %v; want the head and %q", out, n, h, body, err, "body")
		}
	}
}

// Flush reaches the body only once the head is complete.
func TestHeadSplitterFlush(t *testing.T) {
	n := 0
	body := &flushBody{onFlush: func(string) error { n++; return nil }}
	s := NewHeadSplitter(DefaultMaxHead, func(*Head) error { return nil }, body)
	s.Write([]byte("Status: 200 OK\r\n"))
	if err := s.Flush(); err != nil || n != 0 {
		t.Errorf("Flush() inside the head = %v with %d body flushes; want nil and none", err, n)
	}
	s.Write([]byte("\r\nhi"))
	if err := s.Flush(); err != nil || n != 1 || body.String() != "hi" {
		t.Errorf("Flush() after the head = %v with %d body flushes, body %q; want nil, 1, \"hi\"", err, n, body.String())
	}
}
