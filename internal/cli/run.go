package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/askr-php/askr/internal/activation"
	"github.com/askr-php/askr/internal/admin"
	"github.com/askr-php/askr/internal/config"
	"github.com/askr-php/askr/internal/httpfront"
	"github.com/askr-php/askr/internal/notify"
	"github.com/askr-php/askr/internal/phpruntime"
	"github.com/askr-php/askr/internal/pool"
	"github.com/askr-php/askr/internal/reaper"
	"github.com/askr-php/askr/internal/sidecar"
	"github.com/askr-php/askr/internal/version"
)

// Run serves on lns until ctx is cancelled, then stops accepting, lets in-flight requests finish
// (bounded by shutdown_timeout) and stops the workers; each SIGUSR1 (reopen) reopens the access
// log. The workers load c.Worker.Extension when it is a path (serve resolves "auto"). newMode
// holds what differs between the modes. Every goroutine Run starts has ended when it returns.
func Run(ctx context.Context, c config.Config, lns activation.Listeners, reload, reopen <-chan struct{}, phpCGI string, ini []string, log *slog.Logger) error {
	alog, err := openAccessLog(c, log)
	if err != nil {
		return err
	}
	if alog != nil {
		defer alog.Close() // after the drain and every goroutine Run started
	}
	started := time.Now()
	certs, err := newCertificates(c, lns, log)
	if err != nil {
		return err
	}
	defer certs.Close() // also when Run fails before it serves: certmagic's cache runs from New on
	rt, removeRuntime, err := phpruntime.Install("")
	if err != nil {
		return err
	}
	defer removeRuntime()
	dir := filepath.Dir(rt) // private to this askrd: the CoW socket, FastCGI sockets and log FIFOs go here too
	if err := reaper.Become(); err != nil {
		log.Warn("cannot become child subreaper; orphans of PHP go to init", "err", err)
	}
	var p *pool.Pool
	mx := newMetrics(c) // metrics.go
	pc := phpConfig(c, rt, phpCGI, ini, log)
	m, err := newMode(c, pc, dir, log, func() { p.Rotate() }, mx)
	if err != nil {
		return err
	}
	defer reap(m.launcher.Owns, log.With("component", "reaper"))() // the sidecars' keepers too (newSidecars)
	defer m.close()                                                // after the pool has stopped the workers (deferred later, so run earlier)

	sd := notify.New(log.With("component", "systemd"))
	opt := withMetrics(poolOptions(c, log), mx)
	slowOptions(&opt, c, phpCGI, log)
	p = pool.New(opt, m.starter)
	mx.Watch(p, m.pid)
	sc := newSidecars(c, m.launcher, m.role, log.With("component", "sidecar"))
	rl := &reloader{p: p, sd: sd, log: log, sidecars: sc, certs: certs}
	ao := admin.Options{
		Mode: m.name, Version: version.Version, Listen: listenAddrs(lns), Configured: c.Server.WorkerCount(),
		Started: started, Logger: log.With("component", "admin"), Metrics: mx.Handler(), History: mx.History,
	}
	if sc != nil {
		defer rl.wait()
		defer sc.Stop() // before the template goes (m.close), if Run ends before the drain
		ao.Sidecars = sc.Status
		mx.WatchSidecars(sc.Status)
	}
	if certs != nil {
		ao.Certificates = certs.Status
		mx.WatchCertificates(certs.Status)
	}
	adm, err := startAdmin(c, lns, poolSource{p: p, template: m.pid, queue: c.Server.QueueSize, reloader: rl}, ao, log.With("component", "admin"))
	if err != nil {
		return err
	}
	defer adm.Close()
	if err := m.boot(sd); err != nil {
		return err
	}
	fo := frontOptions(c, log)
	fo.HTTPSPort = port(lns.HTTPS)
	fo.Observe = append(requestObservers(alog), mx.Observe).observe()
	h, err := m.handler(fo, p)
	if err != nil {
		return err
	}
	defer h.Close()
	rl.setReroot(h.Reroot)
	srv := newServer(c, certs.Challenge(h), certs.TLSConfig(), log)
	var redirect *http.Server
	if len(lns.Redirect) > 0 {
		redirect = newServer(c, certs.Challenge(httpfront.RedirectToHTTPS(fo.HTTPSPort)), nil, log)
	}

	pr := runPool(p, c.Worker.MemoryReportInterval.D(), m.pid, log.With("component", "pool"))
	defer pr.stop()
	sv := startServing(srv, redirect, lns)
	defer sv.close()
	var workers any = c.Server.WorkerCount()
	if lo, start, hi := c.Server.WorkerBounds(); lo != hi {
		workers = fmt.Sprintf("%d (scaling %d to %d)", start, lo, hi)
	}
	attrs := []any{"version", version.Version, "listen", strings.Join(sv.addrs, ","), "mode", m.name,
		"workers", workers, "root", c.Server.Root, "tls", c.HTTPS()}
	if c.Worker.Script != "" {
		attrs = append(attrs, "script", c.Worker.Script, "extension", pc.Extension)
	}
	log.Info("askrd serving", attrs...)
	lifeCtx, endLife := context.WithCancel(ctx)
	var living sync.WaitGroup
	living.Go(func() { life(lifeCtx, p, sd, m.name, c, reload, rl, mx.RequestsPerSecond, log) })
	living.Go(func() { reopenAccessLog(lifeCtx, alog, reopen, log) })
	living.Go(func() { mx.Run(lifeCtx) })
	living.Go(func() { certs.Start(lifeCtx) })
	if sc != nil {
		living.Go(func() { startSidecars(lifeCtx, p.Ready(), sc) })
	}
	defer living.Wait()
	defer endLife()

	select {
	case err := <-sv.served:
		return fmt.Errorf("http server: %w", err)
	case <-pr.done:
		// No worker could boot (PHP's error is in pr.err): fail before READY=1, as a CoW template
		// that cannot boot does, rather than serve 503s forever.
		return fmt.Errorf("%s mode: %w", m.name, pr.err)
	case <-ctx.Done():
	}
	sd.Stopping()
	sd.Status("draining")
	err = stopServing(sv, p, c.Server.ShutdownTimeout, log)
	if sc != nil {
		sc.Stop() // after the HTTP drain: a queue worker finishes its job
	}
	pr.stop()
	log.Info("stopped")
	return err
}

// startSidecars starts the sidecars once the HTTP workers serve (READY=1 does not wait for them),
// unless askrd stops first.
func startSidecars(ctx context.Context, ready <-chan struct{}, sc *sidecar.Supervisor) {
	select {
	case <-ready:
		sc.Start()
	case <-ctx.Done():
	}
}

// listenAddrs is the public listeners' addresses, for the admin API.
func listenAddrs(lns activation.Listeners) string {
	var addrs []string
	for _, ln := range []net.Listener{lns.HTTP, lns.HTTPS} {
		if ln != nil {
			addrs = append(addrs, ln.Addr().String())
		}
	}
	return strings.Join(addrs, ",")
}

// reap makes the reaper collect PHP's orphans while askrd runs. The function it returns ends what
// PHP started and left running, once the workers and the template have stopped (as askrd's
// subreaper orphans they would outlive it otherwise), then stops the reaper.
func reap(owned func(pid int) bool, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { reaper.Run(ctx, owned, 5*time.Second, log) })
	return func() {
		if pids := reaper.Sweep(owned, time.Second); len(pids) > 0 {
			log.Info("ended processes PHP left running", "pids", fmt.Sprint(pids))
		}
		cancel()
		wg.Wait()
	}
}

func poolOptions(c config.Config, log *slog.Logger) pool.Options {
	s := c.Server
	lo, start, hi := s.WorkerBounds()
	return pool.Options{
		Workers: start, MinWorkers: lo, MaxWorkers: hi, ScaleDownAfter: s.ScaleDownAfter.D(), MaxRequests: s.MaxRequests, RequestTimeout: s.RequestTimeout.D(),
		QueueSize: s.QueueSize, QueueTimeout: s.QueueTimeout.D(), BootTimeout: c.Worker.BootTimeout.D(),
		Logger: log.With("component", "pool"),
		MaxRSS: uint64(max(s.MaxRSS, 0)) << 20, MaxPrivate: uint64(max(s.MaxPrivateMemory, 0)), SlowAfter: s.RequestSlowlogTimeout.D(),
		ReforkAfter: c.Worker.ReforkAfter,
		Canary: pool.Canary{Enabled: c.Reload.Canary, Window: c.Reload.CanaryWindow.D(), MinRequests: c.Reload.CanaryMinRequests,
			MaxErrorRate: c.Reload.CanaryMaxErrorRate, MaxLatencyFactor: c.Reload.CanaryMaxLatencyFactor},
	}
}

func frontOptions(c config.Config, log *slog.Logger) httpfront.Options {
	s := c.Server
	opt := httpfront.Options{
		Root: s.Root, Front: s.Front, MaxBodySize: int64(s.MaxBodySize), BodyBufferSize: int64(s.BodyBufferSize),
		HTTPS: s.HTTPS, ClientTimeout: s.ClientTimeout.D(), Software: "askr/" + version.Version, Logger: log.With("component", "http"),
		ResponseSpoolSize: int64(s.ResponseSpoolSize),
		Compression:       s.Compression, Immutable: s.StaticImmutable, Trusted: s.TrustedPrefixes(), ForceHTTPS: s.ForceHTTPS,
	}
	for _, a := range s.Aliases() {
		opt.Aliases = append(opt.Aliases, httpfront.Alias{Prefix: a[0], Dir: a[1]})
	}
	for _, r := range c.Redirect {
		opt.Redirects = append(opt.Redirects, httpfront.Redirect{From: r.From, To: r.To, Status: r.Status})
	}
	return opt
}

// newServer makes an HTTP server around h; tc is its TLS configuration (nil: plain HTTP only).
func newServer(c config.Config, h http.Handler, tc *tls.Config, log *slog.Logger) *http.Server {
	s := c.Server
	return &http.Server{
		TLSConfig:         tc,
		Handler:           h,
		ReadHeaderTimeout: s.HeaderReadTimeout.D(),
		IdleTimeout:       s.IdleTimeout.D(),
		MaxHeaderBytes:    int(s.MaxHeaderSize),
		ErrorLog:          slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelWarn),
	}
}

// port is ln's TCP port (0 for none), the port of the redirects to HTTPS.
func port(ln net.Listener) int {
	if ln == nil {
		return 0
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// poolRun is the pool running: its owner loop and the memory report.
type poolRun struct {
	done <-chan struct{} // closed when p.Run has returned
	err  error           // p.Run's, once done is closed: a first generation of which no worker booted
	stop func()          // ends both and waits for them; idempotent
}

// runPool starts p and, if every > 0, a memory report every interval. template returns the CoW
// template's pid, or 0.
func runPool(p *pool.Pool, every time.Duration, template func() int, log *slog.Logger) *poolRun {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	pr := &poolRun{done: done}
	var wg sync.WaitGroup
	wg.Go(func() { pr.err = p.Run(ctx); close(done) })
	if every > 0 {
		wg.Go(func() { reportMemory(ctx, every, p, template, log) })
	}
	pr.stop = sync.OnceFunc(func() { cancel(); wg.Wait() })
	return pr
}

// serving is srv serving plain HTTP on the http listener and HTTPS on the https one, and
// redirect (nil without them) on the redirect-only listeners.
type serving struct {
	srv, redirect *http.Server
	conns         *conns
	listening     []net.Listener
	addrs         []string
	served        chan error     // what a Serve loop returned
	loops         sync.WaitGroup // srv's Serve loops
	redirects     sync.WaitGroup // redirect's
}

func startServing(srv, redirect *http.Server, lns activation.Listeners) *serving {
	sv := &serving{srv: srv, redirect: redirect, conns: trackConns(srv), served: make(chan error, 2+len(lns.Redirect))}
	for _, l := range []struct {
		ln  net.Listener
		tls bool
	}{{lns.HTTP, false}, {lns.HTTPS, true}} {
		if l.ln == nil {
			continue
		}
		sv.addrs = append(sv.addrs, l.ln.Addr().String())
		sv.listening = append(sv.listening, l.ln)
		sv.loops.Go(func() {
			if l.tls {
				sv.served <- srv.ServeTLS(l.ln, "", "")
			} else {
				sv.served <- srv.Serve(l.ln)
			}
		})
	}
	for _, ln := range lns.Redirect {
		sv.addrs = append(sv.addrs, ln.Addr().String()+" (redirect)")
		sv.redirects.Go(func() {
			if err := redirect.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				sv.served <- err
			}
		})
	}
	return sv
}

// close ends the server at once, if stopServing has not, and waits for its Serve loops.
func (sv *serving) close() {
	sv.srv.Close()
	sv.loops.Wait()
	if sv.redirect != nil {
		sv.redirect.Close()
		sv.redirects.Wait()
	}
}

// stopServing drains sv (see drain), bounded by timeout; when the timeout cuts requests, it
// returns errDrainCut.
func stopServing(sv *serving, p *pool.Pool, timeout config.Duration, log *slog.Logger) error {
	log.Info("draining", "timeout", timeout.String())
	ctx, cancel := context.WithTimeoutCause(context.Background(), timeout.D(), errors.New("shutdown_timeout reached"))
	defer cancel()
	if sv.redirect != nil { // a redirect is answered at once: its server just stops with the drain
		var stopped sync.WaitGroup
		defer stopped.Wait()
		stopped.Go(func() { sv.redirect.Shutdown(ctx); sv.redirects.Wait() })
	}
	if err := drain(ctx, sv.srv, sv.listening, &sv.loops, sv.conns); err == nil {
		return nil
	}
	refused, running := cutDrain(sv.srv, p, sv.conns)
	if refused+running == 0 {
		// Only connections that never sent a request were left (a browser's preconnect): nothing
		// was lost.
		log.Info("drain ended at shutdown_timeout; connections without a request closed", "timeout", timeout.String())
		return nil
	}
	log.Error("drain cut short: shutdown_timeout reached; requests waiting for a worker got 503, requests still running were cut",
		"timeout", timeout.String(), "refused", refused, "cut", running)
	return errDrainCut
}
