package cli

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/askr-php/askr/internal/pool"
)

// freshGrace is how long the drain waits for a connection's first request: net/http's Shutdown
// also takes a connection that has sent nothing for 5 s as idle.
const freshGrace = 5 * time.Second

// conns tracks the server's connections through http.Server.ConnState: those accepted whose first
// request has not been read yet (for the drain), and those serving a request (for a cut drain).
type conns struct {
	mu      sync.Mutex
	fresh   map[net.Conn]time.Time // accepted at
	busy    map[net.Conn]bool      // in StateActive
	changed chan struct{}          // a token after each change of fresh
}

func trackConns(srv *http.Server) *conns {
	c := &conns{fresh: map[net.Conn]time.Time{}, busy: map[net.Conn]bool{}, changed: make(chan struct{}, 1)}
	srv.ConnState = c.hook
	return c
}

func (c *conns) hook(nc net.Conn, st http.ConnState) {
	c.mu.Lock()
	if st == http.StateNew {
		c.fresh[nc] = time.Now()
	} else {
		delete(c.fresh, nc)
	}
	if st == http.StateActive {
		c.busy[nc] = true
	} else {
		delete(c.busy, nc)
	}
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// waitFresh returns once every fresh connection has brought its request (or closed), or has
// waited for it longer than freshGrace; or with the cause of ctx's end.
func (c *conns) waitFresh(ctx context.Context) error {
	for {
		var left time.Duration // until the youngest fresh connection has had its grace
		now := time.Now()
		c.mu.Lock()
		for _, since := range c.fresh {
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
//  4. It waits for the connections accepted whose request has not been read yet. Shutdown must not
//     start before: net/http closes, unanswered, a connection whose request it reads after
//     Shutdown began — a request the client sent on a fresh connection and will not retry.
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
