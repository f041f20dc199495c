package httpfront

// The CGI variables nginx's fastcgi_params give php-fpm, built once for both modes: the worker
// channel's payload (encode) and the FastCGI params (backend_fastcgi.go) carry the same ones.

import (
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/header"
)

// cgiEnv is what the CGI variables take from the configuration.
type cgiEnv struct {
	root     string // DOCUMENT_ROOT
	https    bool   // HTTPS=on even on plain HTTP
	software string // SERVER_SOFTWARE

	local atomic.Pointer[localAddr] // the last SERVER_ADDR and SERVER_PORT (serverAddr)
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

// payloadPool holds the buffers worker payloads are encoded in (encode); body.cleanup gives them
// back once the request is over (Exchange has copied the payload into its frame by then).
var payloadPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledPayload bounds the buffers payloadPool keeps: one that grew for a large body in memory
// is left to the garbage collector.
const maxPooledPayload = 64 << 10

// releasePayload gives the body's payload buffer back to payloadPool (body.cleanup).
func (b *body) releasePayload() {
	if p := b.payload; p != nil {
		b.payload = nil
		if cap(*p) <= maxPooledPayload {
			*p = (*p)[:0]
			payloadPool.Put(p)
		}
	}
}

// encode builds the worker channel's request payload: the CGI variables of the route's script
// (the front controller), the body, and the form fields and uploads askrd parsed. The payload is
// valid until b.cleanup.
func (c *cgiEnv) encode(r *http.Request, rt route, b *body) []byte {
	var arr [40]cgiVar
	vars := c.appendVars(arr[:0], r, rt, b.size, workerSAPI)

	bp := payloadPool.Get().(*[]byte)
	b.payload = bp
	s := channel.Serializer{B: (*bp)[:0]}
	s.Array(5)
	s.String("server")
	s.Array(len(vars) + 2)
	for i := range vars {
		v := &vars[i]
		switch {
		case v.header:
			s.B = appendHeaderKey(s.B, v.name)
			if len(v.values) == 1 {
				s.String(v.values[0])
			} else {
				s.Join(v.values, headerSep(v.name))
			}
		default:
			s.String(v.name)
			s.Concat(v.value, v.more)
		}
	}
	now := time.Now()
	s.String("REQUEST_TIME")
	s.Int(now.Unix())
	s.String("REQUEST_TIME_FLOAT")
	s.Seconds(now.UnixMicro())
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
		for j, v := range [...]string{f.field, f.name, f.typ, f.tmp} {
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
	*bp = s.B
	return s.B
}

// cgiVar is one CGI variable: name = value+more, or, for a request header, HTTP_ and the
// header's name upper-cased with "-" as "_" = its values joined (headerSep). Kept apart so that
// encode writes them without building a string of either.
type cgiVar struct {
	name, value, more string
	header            bool
	values            []string // a header's
}

// key is the variable's name.
func (v *cgiVar) key() string {
	if v.header {
		return headerKey(v.name)
	}
	return v.name
}

// val is the variable's value.
func (v *cgiVar) val() string {
	if v.header {
		if len(v.values) == 1 {
			return v.values[0]
		}
		return strings.Join(v.values, headerSep(v.name))
	}
	return v.value + v.more
}

// headerSep joins a header's values into one CGI variable: "; " for cookies (as PHP splits
// them), ", " for the rest.
func headerSep(name string) string {
	if name == "Cookie" {
		return "; "
	}
	return ", "
}

// commonKeys are the CGI names of the request headers most requests have, made once.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization",
		"Cache-Control", "Connection", "Content-Length", "Content-Type", "Cookie", "Dnt", "Origin", "Pragma",
		"Priority", "Referer", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform", "Sec-Fetch-Dest",
		"Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Te", "Upgrade-Insecure-Requests", "User-Agent",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Requested-With",
		"X-Csrf-Token", "X-Xsrf-Token", "If-Modified-Since", "If-None-Match", "Range"} {
		m[n] = string(appendHeaderName(nil, n))
	}
	return m
}()

// headerKey is the CGI variable of a request header: HTTP_ and its name upper-cased, "-" as "_".
func headerKey(name string) string {
	if k, ok := commonKeys[name]; ok {
		return k
	}
	return string(appendHeaderName(make([]byte, 0, 5+len(name)), name))
}

// appendHeaderName appends headerKey(name); name is header.ValidCGIName's (letters, digits, "-").
func appendHeaderName(b []byte, name string) []byte {
	b = append(b, "HTTP_"...)
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '-':
			c = '_'
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// appendHeaderKey appends headerKey(name) serialized as a string.
func appendHeaderKey(b []byte, name string) []byte {
	b = append(b, "s:"...)
	b = strconv.AppendInt(b, int64(5+len(name)), 10)
	b = append(b, ':', '"')
	b = appendHeaderName(b, name)
	return append(b, '"', ';')
}

// localAddr is the last address the CGI variables were reached on (SERVER_ADDR, SERVER_PORT),
// kept so that each request does not format it anew.
type localAddr struct {
	ap         netip.AddrPort
	addr, port string
}

// serverAddr returns SERVER_ADDR and SERVER_PORT: the address r came to.
func (c *cgiEnv) serverAddr(r *http.Request) (addr, port string) {
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return "", ""
	}
	ta, ok := la.(*net.TCPAddr)
	if !ok {
		addr, port, _ = net.SplitHostPort(la.String())
		return addr, port
	}
	ap := ta.AddrPort()
	if l := c.local.Load(); l != nil && l.ap == ap {
		return l.addr, l.port
	}
	addr, port, _ = net.SplitHostPort(la.String())
	c.local.Store(&localAddr{ap: ap, addr: addr, port: port})
	return addr, port
}

// vars passes add the CGI variables of a request for the route's script, in the order nginx's
// fastcgi_params sends them: what php-fpm gets behind nginx. size is the length of the body read;
// sapi says what the PHP on the other side computes itself.
func (c *cgiEnv) vars(r *http.Request, rt route, size int64, sapi sapi, add func(k, v string)) {
	var arr [40]cgiVar
	vars := c.appendVars(arr[:0], r, rt, size, sapi)
	for i := range vars {
		add(vars[i].key(), vars[i].val())
	}
}

// appendVars appends the CGI variables vars passes, in its order.
func (c *cgiEnv) appendVars(dst []cgiVar, r *http.Request, rt route, size int64, sapi sapi) []cgiVar {
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
	serverAddr, serverPort := c.serverAddr(r)
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
	add := func(k, v string) { dst = append(dst, cgiVar{name: k, value: v}) }

	add("QUERY_STRING", r.URL.RawQuery)
	add("REQUEST_METHOD", r.Method)
	add("CONTENT_TYPE", r.Header.Get("Content-Type"))
	add("CONTENT_LENGTH", cl)
	add("SCRIPT_NAME", rt.script)
	dst = append(dst, cgiVar{name: "SCRIPT_FILENAME", value: c.root, more: rt.script})
	add("PATH_INFO", rt.pathInfo)
	if sapi.phpSelf {
		dst = append(dst, cgiVar{name: "PHP_SELF", value: rt.script, more: rt.pathInfo})
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
	header := func(name string, values []string) {
		// As nginx (ignore_invalid_headers): only names of letters, digits and "-" pass; "_" or "."
		// would let a header pose as another (PHP turns "." into "_"). Proxy neither (httpoxy).
		if !header.ValidCGIName(name) || name == "Proxy" || len(values) == 0 {
			return
		}
		dst = append(dst, cgiVar{name: name, header: true, values: values})
	}
	if sapi.sortedHeaders {
		for _, name := range slices.Sorted(maps.Keys(r.Header)) {
			header(name, r.Header[name])
		}
	} else {
		for name, values := range r.Header {
			header(name, values)
		}
	}
	return dst
}
