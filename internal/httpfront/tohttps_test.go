package httpfront

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// RedirectToHTTPS, the handler of redirect-only listeners: 308 to the same URL on HTTPS, the
// Host's port replaced by the HTTPS one (none for 0 and 443); 400 without a usable Host.
func TestRedirectToHTTPS(t *testing.T) {
	for _, tc := range []struct {
		port                 int
		method, target, host string
		code                 int
		location             string
	}{
		{0, "GET", "/a/b?c=d&e=%2F", "example.com", 308, "https://example.com/a/b?c=d&e=%2F"},
		{443, "POST", "/form", "example.com:80", 308, "https://example.com/form"},
		{8443, "GET", "/", "Example.COM:8080", 308, "https://Example.COM:8443/"},
		{0, "GET", "/x", "[::1]:8080", 308, "https://[::1]/x"},
		{0, "GET", "/x", "192.0.2.1", 308, "https://192.0.2.1/x"},
		{0, "OPTIONS", "*", "example.com", 308, "https://example.com/"},
		{0, "GET", "/", "", 400, ""},
		{0, "GET", "/", "exa$mple.com", 400, ""},
	} {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		r.Host = tc.host
		w := httptest.NewRecorder()
		RedirectToHTTPS(tc.port).ServeHTTP(w, r)
		if w.Code != tc.code || w.Header().Get("Location") != tc.location {
			t.Errorf("RedirectToHTTPS(%d): %s %s (Host %q) = %d, Location %q; want %d, %q", tc.port, tc.method, tc.target, tc.host, w.Code, w.Header().Get("Location"), tc.code, tc.location)
		}
	}
	// Over a real connection: an HTTP/1.0 request without Host gets 400, not a redirect to nowhere.
	srv := httptest.NewServer(RedirectToHTTPS(0))
	defer srv.Close()
	for req, want := range map[string]string{
		"GET /p?q=1 HTTP/1.0\r\n\r\n":                      "HTTP/1.0 400 Bad Request",
		"GET /p?q=1 HTTP/1.0\r\nHost: example.com\r\n\r\n": "HTTP/1.0 308 Permanent Redirect",
	} {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		if got := resp.Proto + " " + resp.Status; got != want {
			t.Errorf("%q: %s; want %s", req, got, want)
		}
	}
}

// A request with a body gets its redirect at once, the connection closed after it: net/http
// would otherwise read the unread body (up to 256 KB, with no deadline) before answering, so a
// client sending it slowly, or not at all, would hold the connection, and askrd's drain, for as
// long as it likes.
func TestRedirectToHTTPSBodyNotAwaited(t *testing.T) {
	srv := httptest.NewServer(RedirectToHTTPS(443))
	defer srv.Close()
	for _, req := range []string{
		"POST /form HTTP/1.1\r\nHost: example.com\r\nContent-Length: 100000\r\n\r\nabc",
		"POST /form HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
	} {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close() // before srv.Close, which waits for the connection
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%q: no answer while the body is unsent: %v", req, err)
		}
		if resp.StatusCode != 308 || resp.Header.Get("Location") != "https://example.com/form" || !resp.Close {
			t.Errorf("%q: %d, Location %q, Close %v; want 308 to https://example.com/form and the connection closed", req, resp.StatusCode, resp.Header.Get("Location"), resp.Close)
		}
	}
}
