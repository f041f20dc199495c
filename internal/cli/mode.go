package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/askr-php/askr/internal/config"
	"github.com/askr-php/askr/internal/httpfront"
	"github.com/askr-php/askr/internal/metrics"
	"github.com/askr-php/askr/internal/notify"
	"github.com/askr-php/askr/internal/phpcgi"
	"github.com/askr-php/askr/internal/phpext"
	"github.com/askr-php/askr/internal/pool"
	"github.com/askr-php/askr/internal/sidecar"
	"github.com/askr-php/askr/internal/template"
)

// mode is what one way of running PHP needs, and all that Run knows of the differences between
// them: how the pool starts a process, how the front talks to it, what boots before serving and
// what ends after the pool has stopped.
type mode struct {
	name     string           // "worker", "cow" or "per-request", for the log and systemd's STATUS
	launcher *phpcgi.Launcher // starts php-cgi; its Owns tells the reaper which processes are PHP's
	starter  pool.Starter
	// handler makes the front, speaking to p in this mode's protocol.
	handler func(opt httpfront.Options, p *pool.Pool) (*httpfront.Handler, error)
	boot    func(sd *notify.Notifier) error // before serving, once the pool exists
	pid     func() int                      // the CoW template's pid, or 0
	// role starts a [queue] or [scheduler] script: a fork of the template told to run it (CoW
	// mode), else php-cli.
	role  func(role, script string) (sidecar.Proc, error)
	close func() // after the pool has stopped its workers
}

// newMode sets up the mode c asks for. pc is how php-cgi starts in every mode; dir is askrd's
// private runtime directory; rotate is called when a CoW template has been replaced by a new one.
func newMode(c config.Config, pc phpcgi.Config, dir string, log *slog.Logger, rotate func(), mx *metrics.Metrics) (*mode, error) {
	m := &mode{
		handler: func(opt httpfront.Options, p *pool.Pool) (*httpfront.Handler, error) { return httpfront.New(opt, p) },
		boot:    func(*notify.Notifier) error { return nil },
		pid:     func() int { return 0 },
		close:   func() {},
	}
	script := filepath.Base(c.Worker.Script)
	switch {
	case c.PerRequest(): // php-cgi in FastCGI mode, one request per process, sockets in dir/fastcgi
		if c.Worker.Paranoid {
			log.Info("paranoid: nothing to watch in per-request mode, where every request starts a fresh PHP; the state-bleed detector watches worker scripts only")
		}
		pc.SocketDir = filepath.Join(dir, "fastcgi")
		if err := os.Mkdir(pc.SocketDir, 0o700); err != nil {
			return nil, fmt.Errorf("per-request mode: %w", err)
		}
		pc.Logger = log.With("php", "per-request")
		m.name, m.launcher = "per-request", phpcgi.NewLauncher(pc)
		m.starter = fastcgiStarter{m.launcher}
		m.handler = func(opt httpfront.Options, p *pool.Pool) (*httpfront.Handler, error) {
			return httpfront.NewPerRequest(opt, p)
		}
	case c.Worker.Cow: // one template boots the app; the workers are its forks
		pc.Paranoid = paranoid(c, log)
		pc.Extra = append(template.Env(dir), "ASKR_FORK_SAFETY="+c.Worker.ForkSafety)
		if php, err := exec.LookPath(c.Worker.PHPCLI); err == nil {
			// php-cgi is no php for a command a scheduler run starts (Laravel's
			// $schedule->command(): Symfony's PhpExecutableFinder reads PHP_BINARY first).
			pc.Extra = append(pc.Extra, "PHP_BINARY="+php)
		}
		pc.DeathSignal = syscall.SIGTERM // the template then kills the workers it forked
		pc.Logger = log.With("template", script)
		m.name, m.launcher = "cow", phpcgi.NewLauncher(pc)
		tmpl, err := template.New(template.Options{
			Launcher: m.launcher, Dir: dir, BootTimeout: c.Worker.BootTimeout.D(), Logger: log.With("component", "template"),
			WorkerLog: log.With("worker", script), RoleLog: log, NewGeneration: rotate,
			Forked: mx.Forked, TemplateBooted: mx.TemplateBooted, Spare: c.Worker.CowSpare,
		})
		if err != nil {
			return nil, err
		}
		m.starter, m.pid, m.close = tmpl, tmpl.PID, func() { tmpl.Close() }
		m.role = func(role, script string) (sidecar.Proc, error) { return tmpl.StartRole(role, script, nil) }
		m.boot = func(sd *notify.Notifier) error { return bootTemplate(tmpl, sd) }
	default: // php-cgi processes that each boot the worker script
		pc.Paranoid = paranoid(c, log)
		m.name, m.launcher = "worker", phpcgi.NewLauncher(pc)
		m.starter = starter{m.launcher}
	}
	if m.role == nil {
		l := m.launcher
		m.role = func(role, script string) (sidecar.Proc, error) {
			p, err := l.StartCLI(c.Worker.PHPCLI, script, role)
			if err != nil {
				return nil, err
			}
			return p, nil
		}
	}
	return m, nil
}

// phpConfig is how php-cgi starts in every mode; newMode adds what its mode needs.
func phpConfig(c config.Config, runtime, phpCGI string, ini []string, log *slog.Logger) phpcgi.Config {
	pc := phpcgi.Config{
		Binary: phpCGI, Runtime: runtime, Script: c.Worker.Script, AppBase: c.Worker.AppBase,
		INI: ini, Env: os.Environ(), Logger: log.With("worker", filepath.Base(c.Worker.Script)), RoleLogger: log,
	}
	if ext := c.Worker.Extension; ext != phpext.Auto && ext != phpext.None {
		pc.Extension = ext // resolved by serve
	}
	return pc
}

// paranoid reports whether worker scripts look for state a request leaves behind.
func paranoid(c config.Config, log *slog.Logger) bool {
	if c.Worker.Paranoid {
		log.Warn("paranoid mode on: every worker looks for state a request leaves behind and logs it (\"askr paranoid:\"); for development and staging, it costs throughput")
	}
	return c.Worker.Paranoid
}

// bootTemplate boots the CoW template, asking systemd for more start-up time while it boots the
// whole app before any worker exists.
func bootTemplate(tmpl *template.Template, sd *notify.Notifier) error {
	booted := make(chan struct{})
	extending := make(chan struct{})
	go func() { extendWhileBooting(sd, booted); close(extending) }()
	err := tmpl.Boot()
	close(booted)
	<-extending
	if err != nil {
		return fmt.Errorf("CoW template: %w", err)
	}
	return nil
}

// starter starts the php-cgi processes of worker mode.
type starter struct{ l *phpcgi.Launcher }

func (s starter) Start() (pool.Process, error) {
	p, err := s.l.Start()
	if err != nil {
		return nil, err
	}
	return p, nil
}

// fastcgiStarter starts the php-cgi processes of per-request mode.
type fastcgiStarter struct{ l *phpcgi.Launcher }

func (s fastcgiStarter) Start() (pool.Process, error) {
	p, err := s.l.StartFastCGI()
	if err != nil {
		return nil, err
	}
	return p, nil
}
