// Package forwarded decides what askrd believes about a request that came through a proxy: the
// peers of trusted_proxies, whose X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host give
// the client's address, scheme and host (Read), and the PROXY protocol header (v1 or v2) they may
// send on a connection (Listen). It only decides; httpfront applies what it says to the request
// (PHP's REMOTE_ADDR, HTTPS, HTTP_HOST and the access log), and internal/cli wraps the listeners.
package forwarded

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/pires/go-proxyproto"
)

// Trusts reports whether a is one of trusted's: an IPv4-mapped IPv6 address (::ffff:10.0.0.1, as
// a dual-stack socket reports an IPv4 peer) counts as its IPv4 address, and a zone is ignored.
func Trusts(trusted []netip.Prefix, a netip.Addr) bool {
	a = a.WithZone("")
	u := a.Unmap()
	for _, p := range trusted {
		if p.Contains(u) || p.Contains(a) {
			return true
		}
	}
	return false
}

// trustsPeer reports whether a connection's remote address (a *net.TCPAddr, or a request's
// RemoteAddr "ip:port") is a trusted one. Anything else (a Unix socket's peer) is not.
func trustsPeer(trusted []netip.Prefix, peer net.Addr) bool {
	if len(trusted) == 0 || peer == nil {
		return false
	}
	if t, ok := peer.(*net.TCPAddr); ok {
		a, ok := netip.AddrFromSlice(t.IP)
		return ok && Trusts(trusted, a)
	}
	ap, err := netip.ParseAddrPort(peer.String())
	return err == nil && Trusts(trusted, ap.Addr())
}

// Seen is what a trusted peer's X-Forwarded-* headers say of the client. A field is zero where
// the header is absent or not believable.
type Seen struct {
	// Client is X-Forwarded-For's client: walking the list from the right, the first address
	// that is not a trusted proxy; the leftmost if all are. Its port is 0 unless the entry gave
	// one. Not valid if the header is absent, or if an entry met on the way is not an address.
	Client netip.AddrPort
	// Proto is X-Forwarded-Proto: "http" or "https", or "" for anything else (a list too).
	Proto string
	// Host is X-Forwarded-Host if it is one valid host[:port] (ValidHost), or "".
	Host string
}

// Read returns what h, a request's header, says of the client if peer, the request's RemoteAddr
// ("ip:port", the PROXY header's source if there was one), is trusted. ok is false, and nothing
// is read, for any other peer.
func Read(trusted []netip.Prefix, peer string, h http.Header) (s Seen, ok bool) {
	if len(trusted) == 0 {
		return Seen{}, false
	}
	ap, err := netip.ParseAddrPort(peer)
	if err != nil || !Trusts(trusted, ap.Addr()) {
		return Seen{}, false
	}
	s.Client = client(trusted, h.Values("X-Forwarded-For"))
	if p, ok := single(h.Values("X-Forwarded-Proto")); ok {
		if p = strings.ToLower(p); p == "http" || p == "https" {
			s.Proto = p
		}
	}
	if host, ok := single(h.Values("X-Forwarded-Host")); ok && ValidHost(host) {
		s.Host = host
	}
	return s, true
}

// client walks X-Forwarded-For (every field line, in order, as one list) from the right.
func client(trusted []netip.Prefix, values []string) netip.AddrPort {
	var hops []string
	for _, v := range values {
		hops = append(hops, strings.Split(v, ",")...)
	}
	var last netip.AddrPort
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue // an empty list element, which HTTP allows
		}
		ap, ok := parseHop(hop)
		if !ok {
			return netip.AddrPort{} // a chain with junk in it: believe none of it
		}
		last = ap
		if !Trusts(trusted, ap.Addr()) {
			return ap
		}
	}
	return last
}

// parseHop parses one X-Forwarded-For entry: an IP address, perhaps with a port ("1.2.3.4:5678",
// "[2001:db8::1]:5678") or in brackets ("[2001:db8::1]"). The address comes back unmapped.
func parseHop(s string) (netip.AddrPort, bool) {
	var ap netip.AddrPort
	if a, err := netip.ParseAddr(s); err == nil {
		ap = netip.AddrPortFrom(a, 0)
	} else if in, ok := strings.CutPrefix(s, "["); ok && strings.HasSuffix(in, "]") {
		a, err := netip.ParseAddr(in[:len(in)-1])
		if err != nil || !a.Is6() {
			return netip.AddrPort{}, false
		}
		ap = netip.AddrPortFrom(a, 0)
	} else if ap, err = netip.ParseAddrPort(s); err != nil {
		return netip.AddrPort{}, false
	}
	if ap.Addr().Zone() != "" {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// single returns the one value of a header that must have one: not repeated, not a list. Of a
// list, which element is whose cannot be told (a proxy may append to what the client sent).
func single(values []string) (string, bool) {
	if len(values) != 1 || strings.Contains(values[0], ",") {
		return "", false
	}
	v := strings.TrimSpace(values[0])
	return v, v != ""
}

// ValidHost reports whether s is a host[:port] fit for a URL and for HTTP_HOST: a DNS name
// (letters, digits, "-", "_" and dots), an IPv4 address or an IPv6 address in brackets, and a
// port of 1 to 65535 if there is one.
func ValidHost(s string) bool {
	host, port := s, ""
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.HasSuffix(s, "]") {
		host, port = s[:i], s[i+1:]
		if !validPort(port) {
			return false
		}
	}
	if strings.HasPrefix(host, "[") {
		a, err := netip.ParseAddr(strings.TrimSuffix(host[1:], "]"))
		return err == nil && strings.HasSuffix(host, "]") && a.Is6() && a.Zone() == ""
	}
	return validName(host)
}

// validPort reports whether p is a port number, 1 to 65535, in at most five digits.
func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for _, c := range []byte(p) {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= 1 && n <= 65535
}

// validName reports whether h is a DNS name or an IPv4 address: labels of letters, digits, "-"
// and "_", none empty (a trailing dot is allowed), 253 characters at most.
func validName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Listen wraps ln so that a connection from a peer of trusted reads a PROXY protocol header (v1
// or v2) if it sends one, bounded by timeout, and takes its RemoteAddr from it; other peers'
// connections are served as they are. The header is read in the connection's first Read or
// RemoteAddr call (in net/http, on the connection's goroutine, never in Accept). A trusted
// peer's connection without a header, or whose header does not come within timeout, is served
// with its own address; one whose header is malformed fails its reads (net/http closes it). From
// any other peer nothing is parsed: a PROXY line it sends reaches HTTP as it is, a bad request.
// timeout <= 0 leaves the wait unbounded.
func Listen(ln net.Listener, trusted []netip.Prefix, timeout time.Duration) net.Listener {
	if timeout <= 0 {
		timeout = -1 // proxyproto: no deadline (0 would be its default of 10s)
	}
	return &proxyproto.Listener{
		Listener: ln,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if trustsPeer(trusted, o.Upstream) {
				return proxyproto.USE, nil
			}
			return proxyproto.SKIP, nil
		},
		ReadHeaderTimeout: timeout,
	}
}
