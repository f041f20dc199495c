package httpfront

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/askr-php/askr/internal/channel"
)

// Worker mode's payload (cgiEnv.encode): the CGI variables nginx's fastcgi_params give php-fpm for
// the front controller (PHP_SELF too, which the worker runtime cannot compute), REQUEST_TIME, and
// the body, in memory or in its spool file.
func TestEncodeWorkerPayload(t *testing.T) {
	for _, tc := range []struct {
		name           string
		method, target string
		body           string
		header         []string
		https          bool
		want           map[string]string // $_SERVER
		absent         []string
		inline, file   string // the body in the payload, the body file's content
	}{
		{
			name: "front controller with PATH_INFO", method: "GET", target: "/index.php/extra/path?q=1&r=%2F",
			header: []string{"Host", "example.org:8080", "X-Foo", "bar", "X_Under", "dropped", "X.Dot", "dropped", "Proxy", "http://evil", "Authorization", "Basic dXNlcjpwdw=="},
			want: map[string]string{
				"SCRIPT_NAME": "/index.php", "PATH_INFO": "/extra/path", "PHP_SELF": "/index.php/extra/path",
				"DOCUMENT_URI": "/index.php/extra/path", "REQUEST_URI": "/index.php/extra/path?q=1&r=%2F",
				"QUERY_STRING": "q=1&r=%2F", "REQUEST_METHOD": "GET", "CONTENT_LENGTH": "", "CONTENT_TYPE": "",
				"SERVER_NAME": "example.org", "HTTP_HOST": "example.org:8080", "HTTP_X_FOO": "bar",
				"SERVER_SOFTWARE": "askr/test", "GATEWAY_INTERFACE": "CGI/1.1", "REDIRECT_STATUS": "200",
				"REQUEST_SCHEME": "http", "HTTP_AUTHORIZATION": "Basic dXNlcjpwdw==",
			},
			absent: []string{"HTTP_X_UNDER", "HTTP_X_DOT", "HTTP_PROXY", "HTTPS", "REMOTE_USER"},
		},
		{
			name: "an app route", method: "GET", target: "/2024/hello-world/?p=1",
			want: map[string]string{"SCRIPT_NAME": "/index.php", "PATH_INFO": "", "PHP_SELF": "/index.php",
				"DOCUMENT_URI": "/index.php", "REQUEST_URI": "/2024/hello-world/?p=1", "QUERY_STRING": "p=1"},
		},
		{
			name: "a name that only starts like the front controller", method: "GET", target: "/index.phpx/y",
			want: map[string]string{"SCRIPT_NAME": "/index.php", "PATH_INFO": "", "PHP_SELF": "/index.php"},
		},
		{
			name: "a form body in memory", method: "POST", target: "/login", body: "a=1&b=2",
			header: []string{"Content-Type", "application/x-www-form-urlencoded"},
			want:   map[string]string{"CONTENT_LENGTH": "7", "CONTENT_TYPE": "application/x-www-form-urlencoded", "REQUEST_METHOD": "POST"},
			inline: "a=1&b=2",
		},
		{
			name: "a body over body_buffer_size, spooled", method: "PUT", target: "/upload", body: strings.Repeat("x", 5000),
			want: map[string]string{"CONTENT_LENGTH": "5000", "REQUEST_METHOD": "PUT"},
			file: strings.Repeat("x", 5000),
		},
		{
			name: "https", method: "GET", target: "/", https: true,
			want: map[string]string{"HTTPS": "on", "REQUEST_SCHEME": "https"},
		},
		{
			name: "cookies joined as PHP splits them", method: "GET", target: "/",
			header: []string{"Cookie", "a=1", "Cookie", "b=2", "Accept", "x/y", "Accept", "z/w"},
			want:   map[string]string{"HTTP_COOKIE": "a=1; b=2", "HTTP_ACCEPT": "x/y, z/w"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakePool{}
			h, root := workerHandler(t, f, Options{BodyBufferSize: 1024, HTTPS: tc.https})
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			w := serve(h, tc.method, tc.target, body, tc.header...)
			if w.Code != 200 || f.calls != 1 {
				t.Fatalf("%s %s = %d, %d calls to PHP; want 200 from one", tc.method, tc.target, w.Code, f.calls)
			}
			server := f.got.server
			if got := server.str("SCRIPT_FILENAME"); got != root+"/index.php" {
				t.Errorf("SCRIPT_FILENAME = %q; want %q", got, root+"/index.php")
			}
			for k, v := range tc.want {
				if got := server.str(k); got != v {
					t.Errorf("$_SERVER[%s] = %q; want %q", k, got, v)
				}
			}
			for _, k := range tc.absent {
				if _, ok := server.get(k); ok {
					t.Errorf("$_SERVER[%s] set; want it absent", k)
				}
			}
			var names []string
			for _, kv := range server[:4] {
				names = append(names, kv.k.(string))
			}
			if got := strings.Join(names, " "); got != "QUERY_STRING REQUEST_METHOD CONTENT_TYPE CONTENT_LENGTH" {
				t.Errorf("first variables %s; want nginx's order", got)
			}
			last := server[len(server)-2:]
			if _, ok := last[0].v.(int64); !ok || last[0].k != "REQUEST_TIME" {
				t.Errorf("next to last variable %v = %v; want REQUEST_TIME, an int", last[0].k, last[0].v)
			}
			if _, ok := last[1].v.(float64); !ok || last[1].k != "REQUEST_TIME_FLOAT" {
				t.Errorf("last variable %v = %v; want REQUEST_TIME_FLOAT, a float", last[1].k, last[1].v)
			}
			if f.got.body != tc.inline || f.got.bodyRead != tc.file || (tc.file != "") != (f.got.bodyFile != "") {
				t.Errorf("body %q, body_file %q holding %d bytes; want %q and %d bytes in a file", f.got.body, f.got.bodyFile, len(f.got.bodyRead), tc.inline, len(tc.file))
			}
			if len(f.got.post) != 0 || len(f.got.files) != 0 {
				t.Errorf("post %v, files %v; want none (PHP parses what is not multipart)", f.got.post, f.got.files)
			}
		})
	}
}

// A header's CGI name is HTTP_ and its name upper-cased with "-" as "_", made once for the common
// ones and written straight into the payload by encode.
func TestHeaderKey(t *testing.T) {
	names := []string{"X-Foo", "x-lower-Case", "A1-b2", "Accept", "Z"}
	for n := range commonKeys {
		names = append(names, n)
	}
	for _, n := range names {
		want := "HTTP_" + strings.ToUpper(strings.ReplaceAll(n, "-", "_"))
		if got := headerKey(n); got != want {
			t.Errorf("headerKey(%q) = %q; want %q", n, got, want)
		}
		var s channel.Serializer
		s.String(want)
		if got := string(appendHeaderKey(nil, n)); got != string(s.B) {
			t.Errorf("appendHeaderKey(%q) = %q; want %q", n, got, s.B)
		}
	}
}

// SERVER_ADDR and SERVER_PORT follow the address each request came to, whichever was last.
func TestServerAddrPerRequest(t *testing.T) {
	var c cgiEnv
	for _, tc := range []struct {
		la         net.Addr
		addr, port string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, "127.0.0.1", "8080"},
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, "127.0.0.1", "8080"},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 8443}, "::1", "8443"},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 8080}, "10.0.0.2", "8080"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: "eth0"}, "fe80::1%eth0", "80"},
		{&net.UnixAddr{Name: "/run/askr.sock", Net: "unix"}, "", ""},
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, "127.0.0.1", "8080"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, tc.la))
		if addr, port := c.serverAddr(r); addr != tc.addr || port != tc.port {
			t.Errorf("serverAddr for %v = %q, %q; want %q, %q", tc.la, addr, port, tc.addr, tc.port)
		}
	}
}
