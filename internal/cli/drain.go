package cli

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/askr-php/askr/internal/pool"
)

// freshGrace is how long the drain waits for a connection's first request: net/http's Shutdown
// also takes a connection that has sent nothing for 5 s as idle.
const freshGrace = 5 * time.Second

// conns tracks the server's connections through http.Server.ConnState: those accepted whose first
// request has not been read yet (for the drain), and those serving a request (for a cut drain).
type conns struct {
	mu    sync.Mutex
	fresh map[net.Conn]time.Time // accepted at
	// pending are the connections whose first request has been read but whose handler has not
	// started yet (accepted at). net/http drops, unanswered, a request it finds Shutdown begun
	// for right after reading it, so the drain waits for these too.
	pending map[net.Conn]time.Time
	busy    map[net.Conn]bool // in StateActive
	changed chan struct{}     // a token after each change of fresh or pending
}

// connKey is the context key of a request's connection (set by ConnContext).
type connKey struct{}

// connMark is a connection as its requests' context holds it: started says that a handler has
// run on it.
type connMark struct {
	nc      net.Conn
	started atomic.Bool
}

// trackConns tracks srv's connections: ConnState, and a mark in every request's context that its
// handler (wrapped) sets when it starts.
func trackConns(srv *http.Server) *conns {
	c := &conns{fresh: map[net.Conn]time.Time{}, pending: map[net.Conn]time.Time{}, busy: map[net.Conn]bool{},
		changed: make(chan struct{}, 1)}
	srv.ConnState = c.hook
	srv.ConnContext = func(ctx context.Context, nc net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, &connMark{nc: nc})
	}
	h := srv.Handler
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m, ok := r.Context().Value(connKey{}).(*connMark); ok && !m.started.Load() {
			m.started.Store(true)
			c.started(m.nc)
		}
		h.ServeHTTP(w, r)
	})
	return c
}

// started notes that a handler runs on nc: it is no longer pending.
func (c *conns) started(nc net.Conn) {
	c.mu.Lock()
	_, was := c.pending[nc]
	delete(c.pending, nc)
	c.mu.Unlock()
	if was {
		c.signal()
	}
}

func (c *conns) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *conns) hook(nc net.Conn, st http.ConnState) {
	c.mu.Lock()
	if st == http.StateNew {
		c.fresh[nc] = time.Now()
	} else if at, ok := c.fresh[nc]; ok {
		delete(c.fresh, nc)
		if st == http.StateActive {
			c.pending[nc] = at
		}
	}
	if st == http.StateClosed || st == http.StateHijacked {
		delete(c.pending, nc)
	}
	if st == http.StateActive {
		c.busy[nc] = true
	} else {
		delete(c.busy, nc)
	}
	c.mu.Unlock()
	c.signal()
}

// waitFresh returns once every fresh connection has brought its request and its handler has
// started (or it closed), or it has waited longer than freshGrace; or with the cause of ctx's end.
func (c *conns) waitFresh(ctx context.Context) error {
	for {
		var left time.Duration // until the youngest fresh connection has had its grace
		now := time.Now()
		c.mu.Lock()
		for _, since := range c.fresh {
			left = max(left, freshGrace-now.Sub(since))
		}
		for _, since := range c.pending {
			left = max(left, freshGrace-now.Sub(since))
		}
		c.mu.Unlock()
		if left <= 0 {
			return nil
		}
		t := time.NewTimer(left)
		select {
		case <-c.changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		}
		t.Stop()
	}
}

// drain stops srv, serving on lns until now, without dropping a request that reached askrd:
//
//  1. It closes lns. Connections not accepted yet wait in the socket: under systemd it is
//     askr.socket's, which outlives askrd, and the next askrd accepts them.
//  2. It waits for the Serve loops (serving) to return, so every accepted connection is in c.
//  3. It turns keep-alive off: idle connections are closed now (a client that sends on one at
//     that moment retries, as after any server's idle close), and every response from now on
//     says Connection: close and ends its connection, as nginx does while it drains.
//  4. It waits for the connections accepted whose request has not been read yet, and for those
//     whose request has been read until its handler starts. Shutdown must not start before:
//     net/http closes, unanswered, a connection whose request it finds Shutdown begun for right
//     after reading it — a request the client sent on a fresh connection and will not retry.
//  5. srv.Shutdown waits for the requests in flight.
//
// ctx bounds the whole (shutdown_timeout); its end is returned as Shutdown's error.
func drain(ctx context.Context, srv *http.Server, lns []net.Listener, serving *sync.WaitGroup, c *conns) error {
	for _, ln := range lns {
		ln.Close()
	}
	serving.Wait()
	srv.SetKeepAlivesEnabled(false)
	if err := c.waitFresh(ctx); err != nil {
		return err
	}
	return srv.Shutdown(ctx)
}

// active counts the connections that are serving a request.
func (c *conns) active() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.busy)
}

// errDrainCut is Run's result when shutdown_timeout ended the drain (askrd exits ExitDrainCut).
var errDrainCut = errors.New("drain cut short")

// cutDrain ends a drain that shutdown_timeout cut short. Requests waiting for a worker never
// reached PHP: the pool refuses them, and they are answered 503 (Retry-After) before the
// connections close, which cuts the requests still running. It returns how many were refused and
// how many connections were still running a request when they were closed.
func cutDrain(srv *http.Server, p *pool.Pool, conns *conns) (refused, running int) {
	before := conns.active()
	p.Refuse()
	// Each refused request's connection closes once its 503 is out (keep-alive is off while the
	// server shuts down); wait for that, briefly.
	deadline := time.Now().Add(time.Second)
	for {
		st := p.Stats()
		if (st.Waiting == 0 && conns.active() <= before-st.Refused) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	running = conns.active()
	srv.Close()
	return p.Stats().Refused, running
}
