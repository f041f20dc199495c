// Package activation finds the listening sockets askrd serves on: those systemd passes (socket
// activation, LISTEN_FDS), looked up by their FileDescriptorName — never by position, since
// systemd's order is not stable — or, without systemd, the one address of the configuration.
// It opens sockets only when systemd passed none.
package activation

import (
	"fmt"
	"net"
	"os"
	"sort"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
)

// Names of the sockets askrd looks for.
const (
	HTTP  = "http"  // plain HTTP (or HTTPS when [tls] is set and no https socket is passed)
	HTTPS = "https" // HTTPS; needs [tls]
	Admin = "admin" // the admin API (internal/admin)
)

// Listeners are the sockets to serve on.
type Listeners struct {
	HTTP, HTTPS net.Listener // either may be nil, not both
	// Admin is the socket named "admin" systemd passed, for the admin API; nil if none.
	Admin     net.Listener
	Activated bool // they came from systemd
	// Closed names the sockets systemd passed that askrd does not serve on (unknown names): Get
	// closed them, so that none is held open unanswered.
	Closed []string
}

// Close closes every listener.
func (l Listeners) Close() {
	for _, ln := range []net.Listener{l.HTTP, l.HTTPS, l.Admin} {
		if ln != nil {
			ln.Close()
		}
	}
}

// Get returns systemd's sockets if it passed any, else a listener on addr. LISTEN_* are removed
// from the environment either way.
func Get(addr string) (Listeners, error) {
	if os.Getenv("LISTEN_FDS") == "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return Listeners{}, fmt.Errorf("listen on %s: %w", addr, err)
		}
		return Listeners{HTTP: ln}, nil
	}
	byName, err := activation.ListenersWithNames()
	if err != nil {
		return Listeners{}, fmt.Errorf("socket activation: %w", err)
	}
	l := Listeners{Activated: true}
	var names []string
	for name, lns := range byName {
		names = append(names, name)
		switch name {
		case HTTP:
			l.HTTP = first(lns)
		case HTTPS:
			l.HTTPS = first(lns)
		case Admin:
			l.Admin = first(lns)
		default:
			l.Closed = append(l.Closed, name)
			for _, ln := range lns {
				if ln != nil {
					ln.Close()
				}
			}
		}
	}
	sort.Strings(l.Closed)
	if l.HTTP == nil && l.HTTPS == nil {
		sort.Strings(names)
		l.Close()
		return Listeners{}, fmt.Errorf("systemd passed sockets named %s, but askrd serves only on sockets named %q or %q (FileDescriptorName= in the .socket unit)",
			strings.Join(names, ", "), HTTP, HTTPS)
	}
	return l, nil
}

func first(lns []net.Listener) net.Listener {
	for i, ln := range lns {
		if ln != nil {
			for _, extra := range lns[i+1:] {
				if extra != nil {
					extra.Close()
				}
			}
			return ln
		}
	}
	return nil
}
