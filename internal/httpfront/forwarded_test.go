package httpfront

import (
	"crypto/tls"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// httptest.NewRequest's peer is 192.0.2.1:1234.
var (
	trustPeer   = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	trustOthers = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
)

// phpVars runs GET / through a Handler of the backend (worker or per-request) with opt and
// returns the CGI variables PHP got; tls makes the request come over TLS.
func phpVars(t *testing.T, perRequest bool, opt Options, tls bool, header ...string) map[string]string {
	t.Helper()
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "example.org"
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	if tls {
		r.TLS = tlsState
	}
	w := httptest.NewRecorder()
	vars := map[string]string{}
	if perRequest {
		f := &fakeFCGI{}
		h, _ := perRequestHandler(t, f, opt)
		h.ServeHTTP(w, r)
		vars = f.params
	} else {
		f := &fakePool{}
		h, _ := workerHandler(t, f, opt)
		h.ServeHTTP(w, r)
		for _, kv := range f.got.server {
			if k, ok := kv.k.(string); ok {
				s, _ := kv.v.(string)
				vars[k] = s
			}
		}
	}
	if w.Code/100 != 2 || len(vars) == 0 {
		t.Fatalf("GET / = %d, %d variables; want PHP's answer", w.Code, len(vars))
	}
	return vars
}

var tlsState = &tls.ConnectionState{HandshakeComplete: true}

// What PHP sees of a request from a trusted proxy and from anyone else, the same in both backends.
func TestForwardedVars(t *testing.T) {
	spoof := []string{"X-Forwarded-For", "198.51.100.1, 203.0.113.7, 192.0.2.9", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "shop.example:8443"}
	unset := "<unset>"
	for _, tc := range []struct {
		name   string
		opt    Options
		tls    bool
		header []string
		want   map[string]string // "<unset>": absent
	}{
		{"trusted peer", Options{Trusted: trustPeer}, false, spoof, map[string]string{
			"REMOTE_ADDR": "203.0.113.7", "REMOTE_PORT": "", "HTTPS": "on", "REQUEST_SCHEME": "https",
			"HTTP_HOST": "shop.example:8443", "SERVER_NAME": "shop.example",
			"HTTP_X_FORWARDED_FOR": "198.51.100.1, 203.0.113.7, 192.0.2.9", "HTTP_X_FORWARDED_PROTO": "https",
		}},
		{"untrusted peer", Options{Trusted: trustOthers}, false, spoof, map[string]string{
			"REMOTE_ADDR": "192.0.2.1", "REMOTE_PORT": "1234", "HTTPS": unset, "REQUEST_SCHEME": "http",
			"HTTP_HOST": "example.org", "SERVER_NAME": "example.org",
			"HTTP_X_FORWARDED_FOR": "198.51.100.1, 203.0.113.7, 192.0.2.9", "HTTP_X_FORWARDED_PROTO": "https",
			"HTTP_X_FORWARDED_HOST": "shop.example:8443",
		}},
		{"no trusted_proxies", Options{}, false, spoof, map[string]string{
			"REMOTE_ADDR": "192.0.2.1", "REMOTE_PORT": "1234", "HTTPS": unset, "HTTP_HOST": "example.org",
		}},
		{"a port in X-Forwarded-For", Options{Trusted: trustPeer}, false, []string{"X-Forwarded-For", "[2001:db8::7]:5555"}, map[string]string{
			"REMOTE_ADDR": "2001:db8::7", "REMOTE_PORT": "5555", "HTTPS": unset, "HTTP_HOST": "example.org",
		}},
		{"junk in X-Forwarded-For", Options{Trusted: trustPeer}, false, []string{"X-Forwarded-For", "203.0.113.7, junk"}, map[string]string{
			"REMOTE_ADDR": "192.0.2.1", "REMOTE_PORT": "1234",
		}},
		{"an invalid X-Forwarded-Host", Options{Trusted: trustPeer}, false, []string{"X-Forwarded-Host", "evil/x", "X-Forwarded-Proto", "https"}, map[string]string{
			"HTTP_HOST": "example.org", "SERVER_NAME": "example.org", "HTTPS": "on", "REMOTE_ADDR": "192.0.2.1",
		}},
		{"TLS without X-Forwarded-Proto", Options{Trusted: trustPeer}, true, []string{"X-Forwarded-For", "203.0.113.7"}, map[string]string{
			"HTTPS": "on", "REMOTE_ADDR": "203.0.113.7",
		}},
		{"X-Forwarded-Proto http over TLS", Options{Trusted: trustPeer}, true, []string{"X-Forwarded-Proto", "http"}, map[string]string{
			"HTTPS": unset, "REQUEST_SCHEME": "http",
		}},
		{"server.https wins", Options{Trusted: trustPeer, HTTPS: true}, false, []string{"X-Forwarded-Proto", "http"}, map[string]string{
			"HTTPS": "on", "REQUEST_SCHEME": "https",
		}},
	} {
		for _, perRequest := range []bool{false, true} {
			vars := phpVars(t, perRequest, tc.opt, tc.tls, tc.header...)
			for k, want := range tc.want {
				got, ok := vars[k]
				if !ok {
					got = unset
				}
				if got != want {
					t.Errorf("%s (per-request %v): %s = %q; want %q", tc.name, perRequest, k, got, want)
				}
			}
		}
	}
}

// The record (the access log) has the client a trusted proxy names, as nginx's realip logs it.
func TestRecordBehindProxy(t *testing.T) {
	for _, tc := range []struct {
		trusted        []netip.Prefix
		remote, host   string
		wantRemoteAddr string
	}{
		{trustPeer, "203.0.113.7", "shop.example", "203.0.113.7"},
		{trustOthers, "192.0.2.1:1234", "example.org", "192.0.2.1:1234"},
	} {
		var rec Record
		h, _ := workerHandler(t, &fakePool{}, Options{Trusted: tc.trusted, Observe: func(r *Record) { rec = *r }})
		w := serve(h, "GET", "/style.css", nil, "Host", "example.org", "X-Forwarded-For", "203.0.113.7", "X-Forwarded-Host", "shop.example")
		if w.Code != 200 || rec.RemoteAddr != tc.remote || rec.Host != tc.host {
			t.Errorf("trusted %v: %d, record RemoteAddr %q Host %q; want 200, %q, %q", tc.trusted, w.Code, rec.RemoteAddr, rec.Host, tc.remote, tc.host)
		}
	}
}

// A directory's redirect (nginx's, to the name with a slash) has the forwarded scheme and host.
func TestDirectoryRedirectBehindProxy(t *testing.T) {
	h, _ := workerHandler(t, &fakePool{}, Options{Trusted: trustPeer})
	w := serve(h, "GET", "/wp-content?x=1", nil, "Host", "internal:8080", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "www.example.com")
	if loc := w.Header().Get("Location"); w.Code != 301 || loc != "https://www.example.com/wp-content/?x=1" {
		t.Errorf("GET /wp-content = %d, Location %q; want 301, https://www.example.com/wp-content/?x=1", w.Code, loc)
	}
}

// force_https: a plain request gets 308 to HTTPS before static files and PHP, after host redirects;
// a request that is HTTPS (TLS, server.https, a trusted X-Forwarded-Proto) is served.
func TestForceHTTPS(t *testing.T) {
	rules := []Redirect{{From: "www.example.com", To: "https://example.com", Status: 301}}
	for _, tc := range []struct {
		name         string
		opt          Options
		method, path string
		tls          bool
		header       []string // "Host" included
		code         int
		location     string
	}{
		{"plain, static file", Options{}, "GET", "/style.css?v=2", false, []string{"Host", "example.com:8080"}, 308, "https://example.com/style.css?v=2"},
		{"plain, PHP", Options{}, "POST", "/info.php/x?y=%20", false, []string{"Host", "example.com"}, 308, "https://example.com/info.php/x?y=%20"},
		{"HTTPS on a port", Options{HTTPSPort: 8443}, "GET", "/", false, []string{"Host", "example.com:8080"}, 308, "https://example.com:8443/"},
		{"HTTPS on 443", Options{HTTPSPort: 443}, "GET", "/", false, []string{"Host", "example.com"}, 308, "https://example.com/"},
		{"an IPv6 host", Options{}, "GET", "/a", false, []string{"Host", "[2001:db8::1]:80"}, 308, "https://[2001:db8::1]/a"},
		{"host redirects first", Options{Redirects: rules}, "GET", "/p", false, []string{"Host", "www.example.com"}, 301, "https://example.com/p"},
		{"no Host", Options{}, "GET", "/", false, []string{"Host", ""}, 400, ""},
		{"TLS", Options{}, "GET", "/style.css", true, []string{"Host", "example.com"}, 200, ""},
		{"server.https", Options{HTTPS: true}, "GET", "/style.css", false, []string{"Host", "example.com"}, 200, ""},
		{"trusted X-Forwarded-Proto https", Options{Trusted: trustPeer}, "GET", "/style.css", false, []string{"Host", "example.com", "X-Forwarded-Proto", "https"}, 200, ""},
		{"untrusted X-Forwarded-Proto https", Options{Trusted: trustOthers}, "GET", "/style.css", false, []string{"Host", "example.com", "X-Forwarded-Proto", "https"}, 308, "https://example.com/style.css"},
		{"trusted X-Forwarded-Proto http over TLS", Options{Trusted: trustPeer}, "GET", "/", true, []string{"Host", "example.com", "X-Forwarded-Proto", "http"}, 308, "https://example.com/"},
		{"trusted X-Forwarded-Host", Options{Trusted: trustPeer}, "GET", "/", false, []string{"Host", "backend:8080", "X-Forwarded-Host", "shop.example:8080"}, 308, "https://shop.example/"},
		{"trusted X-Forwarded-Proto http: the proxy's 443", Options{Trusted: trustPeer, HTTPSPort: 8443}, "GET", "/", false, []string{"Host", "shop.example", "X-Forwarded-Proto", "http"}, 308, "https://shop.example/"},
		{"untrusted X-Forwarded-Proto http: askrd's port", Options{Trusted: trustOthers, HTTPSPort: 8443}, "GET", "/", false, []string{"Host", "shop.example", "X-Forwarded-Proto", "http"}, 308, "https://shop.example:8443/"},
	} {
		for _, perRequest := range []bool{false, true} {
			tc.opt.ForceHTTPS = true
			fp, ff := &fakePool{}, &fakeFCGI{}
			var h *Handler
			if perRequest {
				h, _ = perRequestHandler(t, ff, tc.opt)
			} else {
				h, _ = workerHandler(t, fp, tc.opt)
			}
			r := httptest.NewRequest(tc.method, tc.path, nil)
			for i := 0; i+1 < len(tc.header); i += 2 {
				if tc.header[i] == "Host" {
					r.Host = tc.header[i+1]
				} else {
					r.Header.Add(tc.header[i], tc.header[i+1])
				}
			}
			if tc.tls {
				r.TLS = tlsState
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.code || w.Header().Get("Location") != tc.location {
				t.Errorf("%s (per-request %v): %s %s = %d, Location %q; want %d, %q", tc.name, perRequest, tc.method, tc.path, w.Code, w.Header().Get("Location"), tc.code, tc.location)
			}
			if tc.code != 200 && fp.calls+ff.calls != 0 {
				t.Errorf("%s (per-request %v): PHP ran for a redirected request", tc.name, perRequest)
			}
		}
	}
}
