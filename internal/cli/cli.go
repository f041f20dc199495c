// Package cli owns askrd's command line: the subcommands (serve, config-check, version), the
// flags of the original askr, how flags, the config file and the environment combine, and the exit
// codes. It wires the other packages together for `serve`; it holds no server logic of its own.
package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/askr-php/askr/internal/activation"
	"github.com/askr-php/askr/internal/config"
	"github.com/askr-php/askr/internal/httpfront"
	"github.com/askr-php/askr/internal/notify"
	"github.com/askr-php/askr/internal/phpcgi"
	"github.com/askr-php/askr/internal/phpext"
	"github.com/askr-php/askr/internal/phpruntime"
	"github.com/askr-php/askr/internal/pool"
	"github.com/askr-php/askr/internal/reaper"
	"github.com/askr-php/askr/internal/template"
	"github.com/askr-php/askr/internal/version"
)

// Exit codes. Units use ExitConfig (EX_CONFIG) to refuse restarting a daemon whose configuration is wrong.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 64 // EX_USAGE
	// ExitDrainCut (EX_TEMPFAIL) ends a drain that shutdown_timeout cut short: requests that
	// waited for a worker got 503, requests still running were cut.
	ExitDrainCut = 75
	ExitConfig   = 78 // EX_CONFIG
)

// Main runs askrd with args (without the program name) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		switch a := args[0]; {
		case a == "--version", a == "-h", a == "-help", a == "--help", !strings.HasPrefix(a, "-"):
			cmd, args = a, args[1:]
		}
	}
	switch cmd {
	case "serve":
		return runServe(args, stdout, stderr)
	case "config-check":
		return runConfigCheck(args, stdout, stderr)
	case "reload":
		return runReload(args, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "askr %s\n", version.Version)
		return ExitOK
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return ExitOK
	}
	fmt.Fprintf(stderr, "askrd: unknown command %q\n", cmd)
	usage(stderr)
	return ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  askrd [serve] [flags]        serve PHP (without flags: --config /etc/askr.toml)
  askrd config-check [--user NAME] FILE
                               validate FILE, check what serve needs as the user
                               it runs as, and print the resolved settings
  askrd reload [--config FILE] PID   ask the askrd with PID for a rolling reload (SIGHUP);
                               refused in CoW mode, where SIGHUP would stop it
  askrd version                print the version
run "askrd serve -h" for the serve flags
`)
}

// serveFlags are the flags of `askr serve` in the original askr, plus --config.
type serveFlags struct {
	fs                                                                                *flag.FlagSet
	config                                                                            string
	root, front, script, listen, ini, workers, maxBody, headerTimeout, requestTimeout string
	maxRequests                                                                       int
	cow, paranoid                                                                     bool
}

func newServeFlags(stderr io.Writer) *serveFlags {
	f := &serveFlags{fs: flag.NewFlagSet("serve", flag.ContinueOnError)}
	fs := f.fs
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "", "read settings from this askr.toml (flags given too override it)")
	fs.StringVar(&f.root, "root", "", "document root (default: ./public if it exists, else .)")
	fs.StringVar(&f.front, "front", "index.php", "front controller, relative to the root")
	fs.StringVar(&f.script, "worker-script", "", "worker script that loops on askr_handle_request()")
	fs.StringVar(&f.workers, "workers", "auto", "number of PHP workers, or auto (CPUs available)")
	fs.IntVar(&f.maxRequests, "max-requests", 0, "recycle a worker after this many requests (0: never)")
	fs.StringVar(&f.maxBody, "max-body-size", "16M", "largest request body; larger gets 413")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8000", "address to listen on")
	fs.StringVar(&f.ini, "ini", "", "php.ini lines for every worker, one per line (default: $ASKR_PHP_INI)")
	fs.BoolVar(&f.cow, "cow", false, "CoW template mode: boot once, fork the workers")
	fs.BoolVar(&f.paranoid, "paranoid", false, "log state a request leaves behind in a worker (development and staging: costs throughput)")
	fs.StringVar(&f.headerTimeout, "header-read-timeout", "15", "seconds a client may take to send its headers")
	fs.StringVar(&f.requestTimeout, "request-timeout", "60", "seconds a request may run before its worker is killed (0: no limit)")
	return f
}

// resolve builds the configuration: defaults, then the file (if any), then every flag given.
func (f *serveFlags) resolve(args []string, implicitConfig bool) (config.Config, error) {
	c := config.Defaults()
	path := f.config
	if path == "" && implicitConfig {
		path = config.DefaultPath
	}
	if path != "" {
		var err error
		if c, err = config.Load(path); err != nil {
			return c, err
		}
	}
	applyEnv(&c)
	var err error
	flagErr := func(name string, e error) {
		if err == nil && e != nil {
			err = &config.Error{Key: "--" + name, Msg: e.Error()}
		}
	}
	f.fs.Visit(func(fl *flag.Flag) {
		if key, ok := flagKeys[fl.Name]; ok {
			c.Overridden(key) // its errors then point at the flag, not at the file
		}
		switch fl.Name {
		case "root":
			c.Server.Root = f.root
		case "front":
			c.Server.Front = f.front
		case "worker-script":
			c.Worker.Script = f.script
		case "workers":
			w, e := config.ParseWorkers(f.workers)
			flagErr(fl.Name, e)
			c.Server.Workers = w
		case "max-requests":
			c.Server.MaxRequests = f.maxRequests
		case "max-body-size":
			s, e := config.ParseSize(f.maxBody)
			flagErr(fl.Name, e)
			c.Server.MaxBodySize = s
		case "listen":
			c.Server.Listen = f.listen
		case "ini":
			c.Worker.Ini = f.ini
		case "cow":
			c.Worker.Cow = f.cow
		case "paranoid":
			c.Worker.Paranoid = f.paranoid
		case "header-read-timeout":
			d, e := config.ParseDuration(f.headerTimeout)
			flagErr(fl.Name, e)
			c.Server.HeaderReadTimeout = d
		case "request-timeout":
			d, e := config.ParseDuration(f.requestTimeout)
			flagErr(fl.Name, e)
			c.Server.RequestTimeout = d
		}
	})
	if err != nil {
		return c, err
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, c.Check()
}

// flagKeys maps each serve flag that sets a key of askr.toml to that key.
var flagKeys = map[string]string{
	"root": "server.root", "front": "server.front", "worker-script": "worker.script", "workers": "server.workers",
	"max-requests": "server.max_requests", "max-body-size": "server.max_body_size", "listen": "server.listen",
	"ini": "worker.ini", "cow": "worker.cow", "paranoid": "worker.paranoid", "header-read-timeout": "server.header_read_timeout",
	"request-timeout": "server.request_timeout",
}

// applyEnv fills what neither file nor flags set from the environment, as the original askr does.
func applyEnv(c *config.Config) {
	if c.Worker.AppBase == "" {
		c.Worker.AppBase = os.Getenv("ASKR_APP_BASE")
	}
	if c.Worker.Ini == "" {
		c.Worker.Ini = os.Getenv("ASKR_PHP_INI")
	}
}

// runReload is systemd's ExecReload: in worker mode it sends SIGHUP (a rolling reload); in CoW
// mode, where SIGHUP drains and exits, it refuses, so that `systemctl reload` never stops the service.
func runReload(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", config.DefaultPath, "the configuration askrd runs with")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: askrd reload [--config FILE] PID")
		return ExitUsage
	}
	pid, err := strconv.Atoi(fs.Arg(0))
	if err != nil || pid <= 1 {
		fmt.Fprintf(stderr, "askrd reload: %q is not a process id\n", fs.Arg(0))
		return ExitUsage
	}
	c, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "askrd reload: %v\n", err)
		return ExitConfig
	}
	if c.Worker.Cow {
		fmt.Fprintf(stderr, "askrd reload: not available in CoW mode (cow = true in %s): the template cannot load new code in place. Restart instead: systemctl restart askr\n", *path)
		return ExitFailure
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		fmt.Fprintf(stderr, "askrd reload: signal %d: %v\n", pid, err)
		return ExitFailure
	}
	fmt.Fprintf(stdout, "askrd %d: rolling reload started; see its log for the canary's result\n", pid)
	return ExitOK
}

// runConfigCheck validates a configuration file and checks what serve needs (config.Check) as
// the user askrd will run as: --user, or for root without it the User= of askr.service if systemd
// knows that unit. Root checks as another user by running askrd config-check as that user.
func runConfigCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("config-check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("user", "", "check as this user, the one askrd serves as (root only; default for root: askr.service's User=)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: askrd config-check [--user NAME] FILE")
		return ExitUsage
	}
	file := fs.Arg(0)
	if *name == "" && os.Geteuid() == 0 {
		if svc := serviceUser(); svc != "" {
			if _, err := user.Lookup(svc); err != nil { // DynamicUser= exists only while the unit runs
				fmt.Fprintf(stderr, "askrd: warning: askr.service runs as %s, who does not exist now (%v); checking as root\n", svc, err)
			} else {
				*name = svc
				fmt.Fprintf(stderr, "askrd: checking as user %s, whom askr.service runs as (--user NAME checks as another)\n", *name)
			}
		}
	}
	if *name != "" {
		if code, done := checkAs(*name, file, stdout, stderr); done {
			return code
		}
	}
	c, err := config.Load(file)
	if err == nil {
		applyEnv(&c)
		err = c.Validate()
	}
	if err == nil {
		err = c.Check()
	}
	if err != nil {
		fmt.Fprintf(stderr, "askrd: %v\n", err)
		return ExitConfig
	}
	for _, n := range c.Notices {
		fmt.Fprintf(stderr, "askrd: warning: %v\n", n)
	}
	as := ""
	if *name != "" {
		as = " for user " + *name
	}
	fmt.Fprintf(stdout, "# %s is valid%s; resolved settings:\n%s", file, as, c.Dump())
	return ExitOK
}

// checkAs runs `askrd config-check --user NAME FILE` as the user NAME, so that the kernel answers
// whether that user can read what serve needs (permissions, ACLs, every directory on the way).
// done is false when the check can run in this process: it already runs as NAME.
func checkAs(name, file string, stdout, stderr io.Writer) (code int, done bool) {
	u, err := user.Lookup(name)
	if err != nil {
		fmt.Fprintf(stderr, "askrd config-check: --user %s: %v\n", name, err)
		return ExitUsage, true
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		fmt.Fprintf(stderr, "askrd config-check: --user %s: uid %q, gid %q are not numbers\n", name, u.Uid, u.Gid)
		return ExitUsage, true
	}
	if int(uid) == os.Geteuid() {
		return 0, false
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(stderr, "askrd config-check: --user %s: only root can check as another user\n", name)
		return ExitUsage, true
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	gids, err := u.GroupIds() // the supplementary groups systemd gives User= too
	if err != nil {
		gids = []string{u.Gid}
	}
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			cred.Groups = append(cred.Groups, uint32(n))
		}
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "askrd config-check: %v\n", err)
		return ExitFailure, true
	}
	if abs, err := filepath.Abs(file); err == nil {
		file = abs // the user may not be able to search the current directory (root's home)
	}
	cmd := exec.Command(exe, "config-check", "--user", name, file)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), true
	case err != nil:
		fmt.Fprintf(stderr, "askrd config-check: cannot run %s as user %s: %v\n", exe, name, err)
		return ExitFailure, true
	}
	return ExitOK, true
}

// serviceUser returns the User= of askr.service when systemd runs this machine and knows the
// unit, else "". It is a variable so that tests can name a user.
var serviceUser = func() string {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return "" // systemd is not running
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemctl", "show", "--property=User", "--value", "askr.service").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func runServe(args []string, stdout, stderr io.Writer) int {
	f := newServeFlags(stderr)
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if f.fs.NArg() > 0 {
		fmt.Fprintf(stderr, "askrd serve: unexpected argument %q\n", f.fs.Arg(0))
		return ExitUsage
	}
	c, err := f.resolve(args, f.fs.NFlag() == 0)
	if err != nil {
		fmt.Fprintf(stderr, "askrd: configuration error: %v\n", err)
		return ExitConfig
	}
	log := newLogger(stderr)
	for _, n := range c.Notices {
		log.Warn(n.Msg, "key", n.Key, "at", fmt.Sprintf("%s:%d", n.File, n.Line))
	}
	ctx, reload, stop := signals(c.Worker.Cow, log)
	defer stop()
	if err := serve(ctx, c, reload, log); err != nil {
		if errors.Is(err, errDrainCut) {
			return ExitDrainCut // Run has logged what was cut
		}
		log.Error("askrd failed", "err", err)
		var ce *config.Error
		if errors.As(err, &ce) {
			return ExitConfig
		}
		return ExitFailure
	}
	return ExitOK
}

func newLogger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if strings.EqualFold(os.Getenv("ASKR_LOG"), "debug") {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

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

// serve runs askrd in worker mode until ctx is cancelled, then drains.
func serve(ctx context.Context, c config.Config, reload <-chan struct{}, log *slog.Logger) error {
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
	lns, err := activation.Get(c.Server.Listen)
	if err != nil {
		return err
	}
	defer lns.Close()
	if lns.Activated {
		log.Info("serving on the sockets systemd passed; listen from the configuration is not used", "listen", c.Server.Listen)
		if len(lns.Closed) > 0 {
			log.Warn("closed the sockets systemd passed that askrd does not serve on; systemd still listens on them and their connections wait unanswered: remove them from the socket units",
				"names", strings.Join(lns.Closed, ","))
		}
	}
	if lns.HTTPS != nil && !c.TLS.Enabled() {
		return &config.Error{Key: "tls", Msg: "systemd passes an \"https\" socket but [tls] cert and key are not set"}
	}
	return Run(ctx, c, lns, reload, binary, ini, log)
}

// signals turns SIGTERM and SIGINT (and SIGHUP in CoW mode) into the cancellation of ctx, the one
// place where signals are handled; in worker mode SIGHUP arrives on reload instead.
func signals(cow bool, log *slog.Logger) (ctx context.Context, reload <-chan struct{}, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan struct{}, 1)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		for sig := range sigs {
			switch {
			case sig == syscall.SIGHUP && !cow:
				select {
				case hup <- struct{}{}:
				default: // a reload is already pending
				}
			default:
				log.Info("signal: draining", "signal", sig.String())
				cancel()
			}
		}
	}()
	return ctx, hup, func() { signal.Stop(sigs); cancel() }
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

// Run serves on ln until ctx is cancelled, then stops accepting, lets in-flight requests finish
// (bounded by shutdown_timeout) and stops the workers. The workers load c.Worker.Extension when it
// is a path (serve resolves "auto"). Without a worker script (per-request mode) the workers are
// php-cgi processes in FastCGI mode, their sockets in a private directory beside the runtime.
func Run(ctx context.Context, c config.Config, lns activation.Listeners, reload <-chan struct{}, phpCGI string, ini []string, log *slog.Logger) error {
	rt, removeRuntime, err := phpruntime.Install("")
	if err != nil {
		return err
	}
	defer removeRuntime()
	sd := notify.New(log.With("component", "systemd"))
	dir := filepath.Dir(rt) // private to this askrd: the CoW socket and log FIFOs go here too
	pc := phpcgi.Config{
		Binary: phpCGI, Runtime: rt, Script: c.Worker.Script, AppBase: c.Worker.AppBase,
		INI: ini, Env: os.Environ(), Logger: log.With("worker", filepath.Base(c.Worker.Script)),
	}
	if ext := c.Worker.Extension; ext != phpext.Auto && ext != phpext.None {
		pc.Extension = ext // resolved by serve
	}
	switch {
	case c.Worker.Paranoid && c.PerRequest():
		log.Info("paranoid: nothing to watch in per-request mode, where every request starts a fresh PHP; the state-bleed detector watches worker scripts only")
	case c.Worker.Paranoid:
		pc.Paranoid = true
		log.Warn("paranoid mode on: every worker looks for state a request leaves behind and logs it (\"askr paranoid:\"); for development and staging, it costs throughput")
	}
	mode := "worker"
	if c.PerRequest() {
		mode = "per-request"
		pc.SocketDir = filepath.Join(dir, "fastcgi")
		if err := os.Mkdir(pc.SocketDir, 0o700); err != nil {
			return fmt.Errorf("per-request mode: %w", err)
		}
		pc.Logger = log.With("php", "per-request")
	}
	if c.Worker.Cow {
		mode = "cow"
		pc.Extra = template.Env(dir)
		pc.DeathSignal = syscall.SIGTERM // the template then kills the workers it forked
		pc.Logger = log.With("template", filepath.Base(c.Worker.Script))
	}
	launcher := phpcgi.NewLauncher(pc)
	if err := reaper.Become(); err != nil {
		log.Warn("cannot become child subreaper; orphans of PHP go to init", "err", err)
	}
	reapCtx, stopReaper := context.WithCancel(context.Background())
	defer stopReaper()
	// Last (deferred first): once the workers and the template have stopped, end what PHP started
	// and left running; as askrd's subreaper orphans they would outlive it otherwise.
	defer func() {
		if pids := reaper.Sweep(launcher.Owns, time.Second); len(pids) > 0 {
			log.Info("ended processes PHP left running", "pids", fmt.Sprint(pids))
		}
	}()
	go reaper.Run(reapCtx, launcher.Owns, 5*time.Second, log.With("component", "reaper"))

	s := c.Server
	opt := pool.Options{
		Workers: s.WorkerCount(), MaxRequests: s.MaxRequests, RequestTimeout: s.RequestTimeout.D(),
		QueueSize: s.QueueSize, QueueTimeout: s.QueueTimeout.D(), BootTimeout: c.Worker.BootTimeout.D(),
		Logger: log.With("component", "pool"),
	}
	var p *pool.Pool
	templatePID := func() int { return 0 }
	if c.Worker.Cow {
		tmpl, err := template.New(template.Options{
			Launcher: launcher, Dir: dir, BootTimeout: c.Worker.BootTimeout.D(), Logger: log.With("component", "template"),
			WorkerLog: log.With("worker", filepath.Base(c.Worker.Script)), NewGeneration: func() { p.Rotate() },
		})
		if err != nil {
			return err
		}
		defer tmpl.Close() // after the pool has stopped the workers (deferred later, so run earlier)
		p = pool.New(opt, tmpl)
		templatePID = tmpl.PID
		booted := make(chan struct{})
		go extendWhileBooting(sd, booted)
		err = tmpl.Boot()
		close(booted)
		if err != nil {
			return fmt.Errorf("CoW template: %w", err)
		}
	} else if c.PerRequest() {
		p = pool.New(opt, fastcgiStarter{launcher})
	} else {
		p = pool.New(opt, starter{launcher})
	}
	hopt := httpfront.Options{
		Root: s.Root, Front: s.Front, MaxBodySize: int64(s.MaxBodySize), BodyBufferSize: int64(s.BodyBufferSize),
		HTTPS: s.HTTPS, ClientTimeout: s.ClientTimeout.D(), Software: "askr/" + version.Version, Logger: log.With("component", "http"),
		ResponseSpoolSize: int64(s.ResponseSpoolSize),
	}
	for _, a := range s.Aliases() {
		hopt.Aliases = append(hopt.Aliases, httpfront.Alias{Prefix: a[0], Dir: a[1]})
	}
	for _, r := range c.Redirect {
		hopt.Redirects = append(hopt.Redirects, httpfront.Redirect{From: r.From, To: r.To, Status: r.Status})
	}
	var h *httpfront.Handler
	if c.PerRequest() {
		h, err = httpfront.NewPerRequest(hopt, p)
	} else {
		h, err = httpfront.New(hopt, p)
	}
	if err != nil {
		return err
	}
	defer h.Close()

	var tlsConfig *tls.Config // nil: ServeTLS loads [tls] cert and key
	if c.TLS.SelfSigned {
		cert, err := selfSigned(s.Listen, time.Now())
		if err != nil {
			return fmt.Errorf("tls.self_signed: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		log.Warn("serving HTTPS with a self-signed certificate (tls.self_signed): for development only", "names", strings.Join(cert.Leaf.DNSNames, ","), "ips", fmt.Sprint(cert.Leaf.IPAddresses))
	}

	poolCtx, cancelPool := context.WithCancel(context.Background())
	var poolErr error // Run's, once poolDone is closed: a first generation of which no worker booted
	poolDone := make(chan struct{})
	go func() { poolErr = p.Run(poolCtx); close(poolDone) }()
	stopPool := sync.OnceFunc(func() { cancelPool(); <-poolDone })
	defer stopPool()
	if every := c.Worker.MemoryReportInterval.D(); every > 0 {
		go reportMemory(poolCtx, every, p, templatePID, log.With("component", "pool"))
	}

	srv := &http.Server{
		TLSConfig:         tlsConfig,
		Handler:           h,
		ReadHeaderTimeout: s.HeaderReadTimeout.D(),
		IdleTimeout:       s.IdleTimeout.D(),
		MaxHeaderBytes:    int(s.MaxHeaderSize),
		ErrorLog:          slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelWarn),
	}
	conns := trackConns(srv)
	// Plain HTTP on the http socket, HTTPS on the https one; with [tls] and no https socket, HTTPS
	// on the http one (as askr serve --listen … with a certificate does).
	served := make(chan error, 2)
	var serving sync.WaitGroup
	var listening []net.Listener
	var addrs []string
	for _, l := range []struct {
		ln  net.Listener
		tls bool
	}{{lns.HTTP, c.TLS.Enabled() && lns.HTTPS == nil}, {lns.HTTPS, true}} {
		if l.ln == nil {
			continue
		}
		addrs = append(addrs, l.ln.Addr().String())
		listening = append(listening, l.ln)
		serving.Add(1)
		go func() {
			defer serving.Done()
			if l.tls {
				served <- srv.ServeTLS(l.ln, c.TLS.Cert, c.TLS.Key)
			} else {
				served <- srv.Serve(l.ln)
			}
		}()
	}
	attrs := []any{"version", version.Version, "listen", strings.Join(addrs, ","), "mode", mode,
		"workers", s.WorkerCount(), "root", s.Root, "tls", c.TLS.Enabled()}
	if c.Worker.Script != "" {
		attrs = append(attrs, "script", c.Worker.Script, "extension", pc.Extension)
	}
	log.Info("askrd serving", attrs...)
	go life(ctx, p, sd, mode, c, reload, log)

	select {
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case <-poolDone:
		// No worker could boot (PHP's error is in poolErr): fail before READY=1, as a CoW template
		// that cannot boot does, rather than serve 503s forever.
		srv.Close()
		return fmt.Errorf("%s mode: %w", mode, poolErr)
	case <-ctx.Done():
	}
	sd.Stopping()
	sd.Status("draining")
	log.Info("draining", "timeout", s.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeoutCause(context.Background(), s.ShutdownTimeout.D(), errors.New("shutdown_timeout reached"))
	defer cancel()
	var drainErr error
	if err := drain(sctx, srv, listening, &serving, conns); err != nil {
		refused, running := cutDrain(srv, p, conns)
		if refused+running > 0 {
			log.Error("drain cut short: shutdown_timeout reached; requests waiting for a worker got 503, requests still running were cut",
				"timeout", s.ShutdownTimeout.String(), "refused", refused, "cut", running)
			drainErr = errDrainCut
		} else {
			// Only connections that never sent a request were left (a browser's preconnect):
			// nothing was lost.
			log.Info("drain ended at shutdown_timeout; connections without a request closed", "timeout", s.ShutdownTimeout.String())
		}
	}
	stopPool()
	log.Info("stopped")
	return drainErr
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
