package httpfront

// The CGI variables nginx's fastcgi_params give php-fpm, built once for both modes: the worker
// channel's payload (encode) and the FastCGI params (backend_fastcgi.go) carry the same ones.

import (
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/header"
)

// cgiEnv is what the CGI variables take from the configuration.
type cgiEnv struct {
	root     string // DOCUMENT_ROOT
	https    bool   // HTTPS=on even on plain HTTP
	software string // SERVER_SOFTWARE
}

// sapi says what the PHP that gets the variables computes itself, and so what askrd sends: each
// backend has its own, fixed.
type sapi struct {
	phpSelf       bool // send PHP_SELF (php-cgi in FastCGI mode computes it)
	remoteUser    bool // send REMOTE_USER as nginx does
	sortedHeaders bool // send the headers in a stable (sorted) order
	exactLength   bool // CONTENT_LENGTH is exactly the body sent, never the declared length alone
}

// workerSAPI is the worker runtime's: it gets PHP_SELF from askrd. fastcgiSAPI is php-cgi's
// behind FastCGI, as php-fpm behind nginx.
var (
	workerSAPI  = sapi{phpSelf: true}
	fastcgiSAPI = sapi{remoteUser: true, sortedHeaders: true, exactLength: true}
)

// encode builds the worker channel's request payload: the CGI variables of the route's script
// (the front controller), the body, and the form fields and uploads askrd parsed.
func (c *cgiEnv) encode(r *http.Request, rt route, b *body) []byte {
	type kv struct{ k, v string }
	vars := make([]kv, 0, 24+len(r.Header))
	c.vars(r, rt, b.size, workerSAPI, func(k, v string) { vars = append(vars, kv{k, v}) })

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

// vars passes add the CGI variables of a request for the route's script, in the order nginx's
// fastcgi_params sends them: what php-fpm gets behind nginx. size is the length of the body read;
// sapi says what the PHP on the other side computes itself.
func (c *cgiEnv) vars(r *http.Request, rt route, size int64, sapi sapi, add func(k, v string)) {
	https := isHTTPS(r, c.https)
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
	} else if r.ContentLength > 0 && !sapi.exactLength {
		cl = strconv.FormatInt(r.ContentLength, 10)
	}

	add("QUERY_STRING", r.URL.RawQuery)
	add("REQUEST_METHOD", r.Method)
	add("CONTENT_TYPE", r.Header.Get("Content-Type"))
	add("CONTENT_LENGTH", cl)
	add("SCRIPT_NAME", rt.script)
	add("SCRIPT_FILENAME", c.root+rt.script)
	add("PATH_INFO", rt.pathInfo)
	if sapi.phpSelf {
		add("PHP_SELF", rt.script+rt.pathInfo)
	}
	add("REQUEST_URI", r.RequestURI)
	add("DOCUMENT_URI", rt.docURI)
	add("DOCUMENT_ROOT", c.root)
	add("SERVER_PROTOCOL", r.Proto)
	add("REQUEST_SCHEME", scheme)
	if https {
		add("HTTPS", "on")
	}
	add("GATEWAY_INTERFACE", "CGI/1.1")
	add("SERVER_SOFTWARE", c.software)
	add("REMOTE_ADDR", remoteAddr)
	add("REMOTE_PORT", remotePort)
	if sapi.remoteUser {
		user, _, _ := r.BasicAuth()
		add("REMOTE_USER", user)
	}
	add("SERVER_ADDR", serverAddr)
	add("SERVER_PORT", serverPort)
	add("SERVER_NAME", serverName)
	add("REDIRECT_STATUS", "200")
	add("HTTP_HOST", host)
	names := maps.Keys(r.Header)
	if sapi.sortedHeaders {
		names = slices.Values(slices.Sorted(names))
	}
	for name := range names {
		values := r.Header[name]
		// As nginx (ignore_invalid_headers): only names of letters, digits and "-" pass; "_" or "."
		// would let a header pose as another (PHP turns "." into "_"). Proxy neither (httpoxy).
		if !header.ValidCGIName(name) || name == "Proxy" || len(values) == 0 {
			continue
		}
		sep := ", "
		if name == "Cookie" {
			sep = "; "
		}
		add("HTTP_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_")), strings.Join(values, sep))
	}
}
