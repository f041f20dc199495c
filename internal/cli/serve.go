package cli

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/askr-php/askr/internal/activation"
	"github.com/askr-php/askr/internal/config"
	"github.com/askr-php/askr/internal/forwarded"
	"github.com/askr-php/askr/internal/phpext"
)

// serve resolves the extension and takes the listeners (from systemd, or opened on listen), then
// runs askrd until ctx is cancelled and the drain has ended.
func serve(ctx context.Context, c config.Config, reload, reopen <-chan struct{}, log *slog.Logger) error {
	ini, err := c.Worker.INIArgs()
	if err != nil {
		return err
	}
	binary := c.Worker.PHPCGI // config.Check found it and made it absolute
	if c.PerRequest() {
		c.Worker.Extension = phpext.None // php-cgi in FastCGI mode does natively what askr.so adds
	} else if c.Worker.Extension, err = extension(ctx, c, binary, ini, log); err != nil {
		return err
	}
	if c.Worker.Cow && c.Server.MaxRSS > 0 {
		log.Warn("max_rss counts the pages a CoW worker shares with its template, so it may recycle workers that hold little of their own; max_private_memory does not count them",
			"max_rss", c.Server.MaxRSS)
	}
	lns, err := listeners(c, log)
	if err != nil {
		return err
	}
	defer lns.Close()
	return Run(ctx, c, lns, reload, reopen, binary, ini, log)
}

// listeners takes the sockets systemd passed, or opens those of the configuration (addrs), and
// settles which serves what: HTTP plain, HTTPS with the certificates, Redirect only redirecting.
func listeners(c config.Config, log *slog.Logger) (activation.Listeners, error) {
	if os.Getenv("LISTEN_FDS") == "" {
		if err := distinctAddrs(c); err != nil {
			return activation.Listeners{}, err
		}
	}
	lns, err := activation.Get(addrs(c))
	if err != nil {
		return lns, err
	}
	if lns.Activated {
		log.Info("serving on the sockets systemd passed; listen, https_listen, http_redirect and acme.http from the configuration are not used", "listen", c.Server.Listen)
		if len(lns.Closed) > 0 {
			log.Warn("closed the sockets systemd passed that askrd does not serve on; systemd still listens on them and their connections wait unanswered: remove them from the socket units",
				"names", strings.Join(lns.Closed, ","))
		}
		switch {
		case lns.HTTPS != nil && !c.HTTPS():
			err = &config.Error{Key: "tls", Msg: "systemd passes an \"https\" socket but askrd has no certificate: set [tls] cert and key, or [acme]"}
		case lns.HTTPS == nil && c.ACME.Enabled:
			err = &config.Error{Key: "acme.enabled", Msg: "systemd passes no \"https\" socket to serve the certificate on: systemctl enable askr-https.socket && systemctl restart askr"}
		case lns.HTTPS == nil && c.HTTPS():
			lns.HTTPS, lns.HTTP = lns.HTTP, nil // [tls] and one socket: HTTPS on it
		}
		if err != nil {
			lns.Close()
			return activation.Listeners{}, err
		}
	}
	if c.Server.ProxyProtocol {
		t, hrt := c.Server.TrustedPrefixes(), c.Server.HeaderReadTimeout.D()
		for _, ln := range []*net.Listener{&lns.HTTP, &lns.HTTPS} {
			if *ln != nil {
				*ln = forwarded.Listen(*ln, t, hrt)
			}
		}
		for i, ln := range lns.Redirect {
			lns.Redirect[i] = forwarded.Listen(ln, t, hrt)
		}
	}
	return lns, nil
}

// addrs are the addresses askrd listens on without systemd: listen alone without a certificate;
// with one, listen plain and https_listen HTTPS, or listen HTTPS and, to redirect to it,
// http_redirect and (with [acme], for its challenges) acme.http.
func addrs(c config.Config) activation.Addrs {
	s := c.Server
	switch {
	case !c.HTTPS():
		return activation.Addrs{HTTP: s.Listen}
	case s.HTTPSListen != "":
		a := activation.Addrs{HTTP: s.Listen, HTTPS: s.HTTPSListen}
		if s.HTTPRedirect != "" && s.HTTPRedirect != s.Listen {
			a.Redirect = []string{s.HTTPRedirect}
		}
		return a
	}
	a := activation.Addrs{HTTPS: s.Listen}
	for _, r := range []string{s.HTTPRedirect, map[bool]string{true: c.ACME.HTTP}[c.ACME.Enabled]} {
		if r != "" && !slices.Contains(a.Redirect, r) {
			a.Redirect = append(a.Redirect, r)
		}
	}
	return a
}

// signals turns SIGTERM and SIGINT (and SIGHUP in CoW mode) into the cancellation of ctx, the one
// place where signals are handled; in worker mode SIGHUP arrives on reload instead, and SIGUSR1
// (reopen the access log) on reopen. stop ends the handling and returns once its goroutine has.
func signals(cow bool, log *slog.Logger) (ctx context.Context, reload, reopen <-chan struct{}, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan struct{}, 1)
	usr1 := make(chan struct{}, 1)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sig := range sigs {
			switch {
			case sig == syscall.SIGHUP && !cow:
				select {
				case hup <- struct{}{}:
				default: // a reload is already pending
				}
			case sig == syscall.SIGUSR1:
				select {
				case usr1 <- struct{}{}:
				default: // a reopen is already pending
				}
			default:
				log.Info("signal: draining", "signal", sig.String())
				cancel()
			}
		}
	}()
	// Once signal.Stop returns, nothing is sent on sigs: closing it ends the goroutine.
	return ctx, hup, usr1, sync.OnceFunc(func() { signal.Stop(sigs); close(sigs); <-done; cancel() })
}

// extension resolves [worker] extension to the askr.so the workers load (phpext.None for none) and
// has php-cgi load it once. A path that was asked for and does not load is a configuration error;
// "auto" falls back to none with one warning saying what PHP code loses.
func extension(ctx context.Context, c config.Config, phpCGI string, ini []string, log *slog.Logger) (string, error) {
	setting := c.Worker.Extension
	exe, err := os.Executable()
	if err != nil {
		exe = ""
	}
	path, err := phpext.Find(setting, exe)
	if errors.Is(err, phpext.ErrNotFound) {
		log.Warn("askr PHP extension not found, workers run without it: "+phpext.Degraded, "err", err)
		return phpext.None, nil
	}
	if err == nil && path != "" {
		err = phpext.Check(ctx, phpCGI, path, ini)
		if err != nil && setting == phpext.Auto {
			log.Warn("askr PHP extension does not load, workers run without it: "+phpext.Degraded, "err", err)
			return phpext.None, nil
		}
	}
	if err != nil {
		return "", c.Err("worker.extension", "%v", err)
	}
	if path == "" {
		return phpext.None, nil
	}
	return path, nil
}

// distinctAddrs reports, as the error of the key that set it, an address addrs would listen on
// twice (same port, same host or a wildcard): "address already in use" would blame another program.
func distinctAddrs(c config.Config) error {
	a, s := addrs(c), c.Server
	type bound struct{ key, addr string }
	var all []bound
	if a.HTTP != "" {
		all = append(all, bound{"server.listen", a.HTTP})
	}
	if a.HTTPS != "" {
		all = append(all, bound{map[bool]string{true: "server.https_listen", false: "server.listen"}[a.HTTPS == s.HTTPSListen], a.HTTPS})
	}
	for _, r := range a.Redirect {
		all = append(all, bound{map[bool]string{true: "server.http_redirect", false: "acme.http"}[r == s.HTTPRedirect], r})
	}
	for i, b := range all {
		for _, earlier := range all[:i] {
			if sameSocket(b.addr, earlier.addr) {
				why := ""
				if earlier.key == "server.listen" && a.HTTP == "" {
					why = " (listen serves HTTPS, with a certificate and no https_listen)"
				}
				return c.Err(b.key, "%q: askrd listens there already for %s%s; give each its own port", b.addr, earlier.key, why)
			}
		}
	}
	return nil
}

// sameSocket reports whether listening on a and on b collide: one port, and one host or a
// wildcard ("", 0.0.0.0, ::) on either side.
func sameSocket(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wild(ha) || wild(hb)
}
