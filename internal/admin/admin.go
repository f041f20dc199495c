// Package admin serves askrd's admin API and dashboard: /healthz, /readyz, /status, /metrics,
// /history, POST /reload and POST /workers/{pid}/recycle (and the original askr's /api/status and
// /api/reload), on the listeners it is given — a Unix socket whose peers it checks by their
// credentials (SO_PEERCRED: root and askrd's own user), or TCP with a bearer token. It reads the
// pool through a Source and never talks to a worker: it answers while every worker is busy or
// wedged, and it waits for the pool's owner loop only a bounded time. It does not open the
// public listener, and it owns no pool state.
package admin

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/askr-php/askr/internal/certificate"
	"github.com/askr-php/askr/internal/pool"
	"github.com/askr-php/askr/internal/sidecar"
)

// Source is what the admin API reads and asks of the pool (the cli implements it over a
// *pool.Pool and the CoW template).
type Source interface {
	Stats() pool.Stats
	// Workers lists the worker processes; it may block while the pool's owner loop is busy
	// (the server bounds the wait).
	Workers() []pool.WorkerInfo
	// Recycle retires the worker pid after its current request; pool.ErrNoSuchWorker if none has it.
	Recycle(pid int) error
	// Reload replaces every worker (a rolling reload) and returns once the canary serves or failed.
	Reload() error
	// TemplatePID is the CoW template's pid, or 0.
	TemplatePID() int
}

// Options configures a Server.
type Options struct {
	Mode       string    // "worker", "cow" or "per-request"
	Version    string    // askr's version
	Listen     string    // the public listen address(es), for /api/status
	Configured int       // the configured number of workers, for /api/status
	Started    time.Time // when askrd started (zero: when New was called)
	// Metrics serves GET /metrics (Prometheus text); nil: 404.
	Metrics http.Handler
	// History returns the recent requests/s, latency and exits for the dashboard (GET /history,
	// JSON); nil: an empty history.
	History func() any
	// Sidecars lists the sidecar, queue and scheduler processes for /status; nil: none.
	Sidecars func() []sidecar.Status
	// Certificates lists the certificates of HTTPS for /status; nil: none.
	Certificates func() []certificate.Status
	// WorkersTimeout bounds the wait for Source.Workers (default 500 ms); past it the last list
	// known is shown and the status says "partial".
	WorkersTimeout time.Duration
	Logger         *slog.Logger
}

// Server is the admin API; it serves on any number of listeners.
type Server struct {
	opt   Options
	src   Source
	log   *slog.Logger
	mux   *http.ServeMux
	snaps *snapshots
	euid  int
	owner string // the name of askrd's user, for refusals

	mu      sync.Mutex
	servers []*http.Server
	serving sync.WaitGroup
}

// New returns a server reading src.
func New(src Source, opt Options) *Server {
	if opt.Started.IsZero() {
		opt.Started = time.Now()
	}
	if opt.WorkersTimeout <= 0 {
		opt.WorkersTimeout = 500 * time.Millisecond
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opt: opt, src: src, log: opt.Logger, snaps: &snapshots{src: src}, euid: os.Geteuid()}
	s.owner = "uid " + strconv.Itoa(s.euid)
	if u, err := user.LookupId(strconv.Itoa(s.euid)); err == nil {
		s.owner = u.Username
	}
	s.mux = s.routes()
	return s
}

// Access is how a listener's peers are let in.
type Access int

const (
	// PeerCred lets in the peers of a Unix socket whose uid is 0 or askrd's euid.
	PeerCred Access = iota
	// Token lets in requests with "Authorization: Bearer <token>" (and anyone to /healthz and the
	// dashboard's page, which carries no data).
	Token
)

// Serve serves the API on ln, letting peers in by access (token for Token), until Close.
func (s *Server) Serve(ln net.Listener, access Access, token string) {
	var h http.Handler
	switch access {
	case Token:
		h = s.withToken(token)
	default:
		h = s.withPeerCred()
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		ConnContext:       connContext,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.mu.Lock()
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	s.serving.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("admin listener failed", "addr", ln.Addr().String(), "err", err)
		}
	})
}

// Close stops serving on every listener (closing them; a Unix socket's file is removed) and
// waits for the serve loops. Requests in progress are cut.
func (s *Server) Close() {
	s.mu.Lock()
	for _, srv := range s.servers {
		srv.Close()
	}
	s.mu.Unlock()
	s.serving.Wait()
}

// Handler is the API without access checks, for tests and proxies that check access themselves.
func (s *Server) Handler() http.Handler { return s.mux }

type peerKey struct{}

// peer is the credentials of a Unix socket's peer.
type peer struct {
	uid int
	err error
}

// connContext records the peer's credentials of a Unix connection in its context.
func connContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	uid, err := peerUID(uc)
	return context.WithValue(ctx, peerKey{}, peer{uid: uid, err: err})
}

// withPeerCred serves only peers whose uid is root's or askrd's.
func (s *Server) withPeerCred() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := r.Context().Value(peerKey{}).(peer)
		switch {
		case !ok: // not a Unix socket (a TCP socket systemd passed is served with Token)
			http.Error(w, "refused by askrd: the peer's credentials are unknown", http.StatusForbidden)
		case p.err != nil:
			http.Error(w, "refused by askrd: cannot read the peer's credentials: "+p.err.Error(), http.StatusForbidden)
		case p.uid != 0 && p.uid != s.euid:
			http.Error(w, "refused by askrd: "+s.refusal(p.uid), http.StatusForbidden)
		default:
			s.mux.ServeHTTP(w, r)
		}
	})
}

// refusal says who uid is not: "uid 1000 is neither root nor www-data".
func (s *Server) refusal(uid int) string {
	if s.euid == 0 {
		return fmt.Sprintf("uid %d is not root (askrd runs as root): run it as root (sudo)", uid)
	}
	return fmt.Sprintf("uid %d is neither root nor %s: run it as root (sudo) or as %s", uid, s.owner, s.owner)
}

// withToken serves requests that carry the bearer token; /healthz and the dashboard's page (no
// data: it asks for the rest with the token) need none.
func (s *Server) withToken(token string) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		open := r.URL.Path == "/healthz" || (r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead))
		got := []byte(strings.TrimSpace(r.Header.Get("Authorization")))
		if !open && (token == "" || subtle.ConstantTimeCompare(got, want) != 1) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="askr admin"`)
			http.Error(w, "refused by askrd: this listener needs \"Authorization: Bearer <token>\" with the token of [admin] token_file", http.StatusUnauthorized)
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}
