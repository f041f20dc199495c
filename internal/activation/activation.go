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

// Addrs are the addresses to listen on when systemd passes no socket.
type Addrs struct {
	HTTP, HTTPS string // plain HTTP and HTTPS ("" none; not both)
	// Redirect are plain HTTP addresses that only redirect to HTTPS (and answer ACME's challenges).
	Redirect []string
}

// Listeners are the sockets to serve on.
type Listeners struct {
	HTTP, HTTPS net.Listener // either may be nil, not both
	// Redirect are the listeners of Addrs.Redirect (never from systemd).
	Redirect []net.Listener
	// Admin is the socket named "admin" systemd passed, for the admin API; nil if none.
	Admin     net.Listener
	Activated bool // they came from systemd
	// Closed names the sockets systemd passed that askrd does not serve on (unknown names, and of a
	// name passed more than once all but the first): Get closed them, so that none is held open
	// unanswered.
	Closed []string
}

// Close closes every listener.
func (l Listeners) Close() {
	for _, ln := range append([]net.Listener{l.HTTP, l.HTTPS, l.Admin}, l.Redirect...) {
		if ln != nil {
			ln.Close()
		}
	}
}

// Get returns systemd's sockets if it passed any, else listeners on a's addresses. LISTEN_* are
// removed from the environment either way.
func Get(a Addrs) (Listeners, error) {
	if os.Getenv("LISTEN_FDS") == "" {
		return open(a)
	}
	byName, err := activation.ListenersWithNames()
	if err != nil {
		return Listeners{}, fmt.Errorf("socket activation: %w", err)
	}
	l := Listeners{Activated: true}
	var names []string
	for name, lns := range byName {
		names = append(names, name)
		if name == HTTP || name == HTTPS || name == Admin {
			if countOpen(lns) > 1 { // first closes the others: systemd's copies wait unanswered
				l.Closed = append(l.Closed, name+" (all but the first)")
			}
		}
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

// countOpen is the number of lns that are not nil.
func countOpen(lns []net.Listener) int {
	n := 0
	for _, ln := range lns {
		if ln != nil {
			n++
		}
	}
	return n
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

// open listens on a's addresses; on an error it closes those it opened.
func open(a Addrs) (l Listeners, err error) {
	listen := func(addr string) net.Listener {
		if addr == "" || err != nil {
			return nil
		}
		ln, e := net.Listen("tcp", addr)
		if e != nil {
			err = fmt.Errorf("listen on %s: %w", addr, e)
		}
		return ln
	}
	l.HTTP, l.HTTPS = listen(a.HTTP), listen(a.HTTPS)
	for _, addr := range a.Redirect {
		if ln := listen(addr); ln != nil {
			l.Redirect = append(l.Redirect, ln)
		}
	}
	if err != nil {
		l.Close()
		return Listeners{}, err
	}
	return l, nil
}
