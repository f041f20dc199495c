package admin

import (
	"context"
	"crypto/subtle"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Client returns an HTTP client that sends every request to the admin socket path, whatever the
// URL's host (use http://askrd/…).
func Client(path string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: unixTransport(path)}
}

// ServerPID returns the pid of the process that serves the admin socket path (SO_PEERCRED).
func ServerPID(path string) (int, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, credErr
	}
	return int(cred.Pid), nil
}

func unixTransport(path string) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableCompression: true,
	}
}

// Proxy forwards to the admin socket path the requests that carry "Authorization: Bearer
// <token>" (the dashboard's page itself, which carries no data, needs none): `askrd dashboard`
// serves it on loopback, so that a browser reaches an API only root and askrd's user may use.
func Proxy(path, token string) http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host, r.Out.Host = "http", "askrd", "askrd"
			r.Out.Header.Del("Authorization")
		},
		Transport: unixTransport(path),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "askrd does not answer on "+path+": "+err.Error(), http.StatusBadGateway)
		},
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page := r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead)
		got := []byte(strings.TrimSpace(r.Header.Get("Authorization")))
		if !page && subtle.ConstantTimeCompare(got, want) != 1 {
			http.Error(w, "refused: open the URL askrd dashboard printed (it carries the token)", http.StatusUnauthorized)
			return
		}
		rp.ServeHTTP(w, r)
	})
}
