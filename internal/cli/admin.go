package cli

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/askr-php/askr/internal/activation"
	"github.com/askr-php/askr/internal/admin"
	"github.com/askr-php/askr/internal/config"
	"github.com/askr-php/askr/internal/notify"
	"github.com/askr-php/askr/internal/pool"
	"github.com/askr-php/askr/internal/sidecar"
)

// adminSocketEnv, when set, replaces [admin] socket ("" serves none): for running several
// askrd side by side (the integration tests give each its own socket).
const adminSocketEnv = "ASKR_ADMIN_SOCKET"

// adminSocket is the admin socket of c, or ASKR_ADMIN_SOCKET's if set.
func adminSocket(c config.Config) string {
	if v, ok := os.LookupEnv(adminSocketEnv); ok {
		return v
	}
	return c.Admin.Socket
}

// poolSource is what the admin API reads: the pool, the CoW template's pid, and the reloads.
type poolSource struct {
	p        *pool.Pool
	template func() int
	queue    int // queue_size, until the pool reports it
	reloader *reloader
}

func (s poolSource) Stats() pool.Stats {
	st := s.p.Stats()
	if st.QueueSize == 0 {
		st.QueueSize = s.queue
	}
	return st
}
func (s poolSource) Workers() []pool.WorkerInfo { return s.p.Workers() }
func (s poolSource) Recycle(pid int) error      { return s.p.Recycle(pid) }
func (s poolSource) Reload() error              { return s.reloader.reload("admin API") }
func (s poolSource) TemplatePID() int           { return s.template() }

// reloader runs one rolling reload at a time, whether SIGHUP or the admin API asked, telling
// systemd RELOADING=1 … READY=1 around it. Once the new generation is committed, reroot resolves
// the document root again (a deploy that switched current -> releases/N).
type reloader struct {
	mu     sync.Mutex
	p      *pool.Pool
	sd     *notify.Notifier
	log    *slog.Logger
	reroot func() (bool, error) // set once the front exists (under mu); nil before
	// sidecars are restarted on the new code once a reload has been committed (nil: none), on a
	// goroutine of restarts: a queue worker may take its grace to finish its job, and neither the
	// reload's answer nor the next reload waits for that.
	sidecars *sidecar.Supervisor
	restarts sync.WaitGroup
	certs    *certs // [tls]'s files are read again on every reload (nil: no HTTPS)
}

// wait waits for the sidecar restarts under way; they end once the Supervisor has stopped.
func (r *reloader) wait() { r.restarts.Wait() }

// setReroot gives the reloader the front's Reroot.
func (r *reloader) setReroot(f func() (bool, error)) {
	r.mu.Lock()
	r.reroot = f
	r.mu.Unlock()
}

func (r *reloader) reload(by string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.locked(by)
}

// tryReload is SIGHUP's reload: none is started while another runs (the signal is folded into it).
func (r *reloader) tryReload(by string) {
	if !r.mu.TryLock() {
		r.log.Info(by + ": a reload is already running; no second one is started")
		return
	}
	defer r.mu.Unlock()
	r.locked(by)
}

func (r *reloader) locked(by string) error {
	r.log.Info(by + ": rolling reload")
	r.sd.Reloading()
	defer r.sd.Ready()
	r.certs.Reload(r.log)
	err := r.p.Reload()
	if err != nil {
		r.log.Error("reload failed; the old workers go on serving", "err", err)
		return err
	}
	if r.reroot != nil {
		switch changed, err := r.reroot(); {
		case err != nil:
			r.log.Error("reload: cannot resolve the document root again; static files are served from where it led before", "err", err)
		case changed:
			r.log.Info("reload: the document root leads elsewhere now; static files are served from there")
		}
	}
	if r.sidecars != nil {
		r.log.Info("reload: restarting the sidecars on the new code")
		r.restarts.Go(r.sidecars.Restart)
	}
	return nil
}

// startAdmin serves the admin API: on the socket named "admin" systemd passed, else on [admin]
// socket, and on [admin] listen with the token of [admin] token_file. A default socket that
// cannot be made is a warning; one configured is an error, as are a token file that cannot be
// read and a listen address that cannot be bound.
func startAdmin(c config.Config, lns activation.Listeners, src admin.Source, opt admin.Options, log *slog.Logger) (*admin.Server, error) {
	srv := admin.New(src, opt)
	ok := false
	defer func() {
		if !ok {
			srv.Close()
		}
	}()
	token := ""
	if c.Admin.TokenFile != "" {
		var err error
		if token, err = readToken(c.Admin.TokenFile); err != nil {
			return nil, c.Err("admin.token_file", "%v", err)
		}
	}
	if err := serveAdminSocket(srv, c, lns.Admin, token, log); err != nil {
		return nil, err
	}
	if a := c.Admin.Listen; a != "" {
		if token == "" {
			log.Warn("[admin] listen is not served: it needs [admin] token_file, a file holding the bearer token every request must carry", "listen", a)
		} else {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				return nil, c.Err("admin.listen", "%v", err)
			}
			srv.Serve(ln, admin.Token, token)
			log.Info("admin API on TCP, with a bearer token", "listen", ln.Addr().String())
			if host, _, _ := net.SplitHostPort(a); !isLoopback(host) {
				log.Warn("[admin] listen is not a loopback address: the bearer token and the status cross the network unencrypted; prefer loopback and ssh -L, or TLS in front", "listen", a)
			}
		}
	}
	ok = true
	return srv, nil
}

// serveAdminSocket serves systemd's "admin" socket ln if passed, else [admin] socket.
func serveAdminSocket(srv *admin.Server, c config.Config, ln net.Listener, token string, log *slog.Logger) error {
	if ln != nil {
		if _, unix := ln.(*net.UnixListener); unix {
			srv.Serve(ln, admin.PeerCred, "")
			log.Info("admin API on the socket systemd passed", "socket", ln.Addr().String())
		} else if token != "" {
			srv.Serve(ln, admin.Token, token)
			log.Info("admin API on the TCP socket systemd passed, with a bearer token", "listen", ln.Addr().String())
		} else {
			ln.Close()
			log.Warn("closed the TCP socket named \"admin\" systemd passed: a TCP admin socket is served only with [admin] token_file; systemd still listens on it, so remove it from the socket unit or set token_file",
				"listen", ln.Addr().String())
		}
		return nil
	}
	path := adminSocket(c)
	if path == "" {
		return nil
	}
	_, explicit := os.LookupEnv(adminSocketEnv)
	explicit = explicit || path != config.Defaults().Admin.Socket
	uln, err := admin.ListenUnix(path)
	switch {
	case errors.Is(err, admin.ErrInUse):
		log.Warn("the admin socket is in use by another askrd; not serving the admin API here (give each askrd its own [admin] socket)", "socket", path)
		return nil
	case err != nil && !explicit:
		log.Warn("cannot create the admin socket; the admin API (askrd status) is not served: set [admin] socket to a path askrd may create, or \"\" for none",
			"socket", path, "err", err)
		return nil
	case err != nil:
		return c.Err("admin.socket", "%v", err)
	}
	srv.Serve(uln, admin.PeerCred, "")
	log.Info("admin API on the socket (askrd status)", "socket", path)
	return nil
}

// readToken reads the first line of the token file.
func readToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("%s: no token in its first line", path)
	}
	if line = strings.TrimSpace(line); line == "" {
		return "", fmt.Errorf("%s: its first line is empty; want the bearer token", path)
	}
	return line, nil
}

// isLoopback reports whether host (an IP or a name) is a loopback address; a name other than
// localhost counts as not.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
