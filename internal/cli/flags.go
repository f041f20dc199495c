package cli

import (
	"flag"
	"io"
	"maps"
	"os"
	"slices"

	"github.com/askr-php/askr/internal/config"
)

// serveFlags are the flags of `askr serve` in the original askr, plus --config. They are bound to
// the fields of a config.Config, so they are parsed twice: once by Main (fs, onto the defaults),
// which finds --config and refuses what is not a flag, and once by resolve onto the configuration
// read from the file, so that every flag given overrides the file and no other does.
type serveFlags struct {
	fs     *flag.FlagSet
	config string        // --config
	parsed config.Config // what fs writes; resolve builds its own
}

func newServeFlags(stderr io.Writer) *serveFlags {
	f := &serveFlags{parsed: config.Defaults()}
	f.fs = flag.NewFlagSet("serve", flag.ContinueOnError)
	f.fs.SetOutput(stderr)
	bindFlags(f.fs, &f.config, &f.parsed, map[string]error{})
	return f
}

// bindFlags defines serve's flags on fs, each writing the field of c its key names (flagKeys), with
// c's values as the defaults. A bad size, duration or worker count is no usage error but a
// configuration error naming the flag (as a bad value in the file is one naming its line): it goes
// to bad under the flag's name, and parsing goes on; the flag's last value decides, as for every
// flag (--workers x --workers 2 is 2).
func bindFlags(fs *flag.FlagSet, path *string, c *config.Config, bad map[string]error) {
	s, w := &c.Server, &c.Worker
	checked := func(v flag.Value, name, usage string) { fs.Var(&configFlag{v, name, bad}, name, usage) }
	fs.StringVar(path, "config", *path, "read settings from this askr.toml (flags given too override it)")
	fs.StringVar(&s.Root, "root", s.Root, "document root (default: ./public if it exists, else .)")
	fs.StringVar(&s.Front, "front", s.Front, "front controller, relative to the root")
	fs.StringVar(&w.Script, "worker-script", w.Script, "worker script that loops on askr_handle_request()")
	checked(&s.Workers, "workers", "`number` of PHP workers, or auto (CPUs available)")
	fs.IntVar(&s.MaxRequests, "max-requests", s.MaxRequests, "recycle a worker after this many requests (0: never)")
	checked(&s.MaxBodySize, "max-body-size", "largest request body (a `size`: bytes, or with K, M or G); larger gets 413")
	fs.StringVar(&s.Listen, "listen", s.Listen, "address to listen on")
	fs.StringVar(&w.Ini, "ini", w.Ini, "php.ini lines for every worker, one per line (default: $ASKR_PHP_INI)")
	fs.BoolVar(&w.Cow, "cow", w.Cow, "CoW template mode: boot once, fork the workers")
	fs.BoolVar(&w.Paranoid, "paranoid", w.Paranoid, "log state a request leaves behind in a worker (development and staging: costs throughput)")
	checked(&s.HeaderReadTimeout, "header-read-timeout", "`seconds` a client may take to send its headers (or a duration: 500ms, 1m)")
	checked(&s.RequestTimeout, "request-timeout", "`seconds` a request may run before its worker is killed (0: no limit)")
	fs.IntVar(&c.Queue.Workers, "queue", c.Queue.Workers, "`number` of queue worker processes running --queue-script")
	fs.IntVar(&c.Queue.WorkersMax, "queue-max", c.Queue.WorkersMax, "ceiling for scaling queue workers (accepted; this version runs --queue of them)")
	fs.StringVar(&c.Queue.Script, "queue-script", c.Queue.Script, "PHP script each queue worker runs (e.g. /usr/share/askr/workers/laravel-queue.php)")
	fs.StringVar(&c.Scheduler.Script, "scheduler-script", c.Scheduler.Script, "PHP script run at every whole minute (e.g. /usr/share/askr/workers/laravel-scheduler.php)")
	fs.Var(sidecarFlag{&c.Sidecar}, "sidecar", "supervise this `command` (sh -c in the app base) beside the workers; repeatable")
	bindHTTPSFlags(fs, c)
}

// bindHTTPSFlags defines the original's flags of HTTPS and ACME.
func bindHTTPSFlags(fs *flag.FlagSet, c *config.Config) {
	s, t, a := &c.Server, &c.TLS, &c.ACME
	fs.BoolVar(&s.HTTPS, "https", s.HTTPS, "tell PHP HTTPS=on (behind a proxy that terminates TLS)")
	fs.BoolVar(&s.ForceHTTPS, "force-https", s.ForceHTTPS, "redirect plain HTTP to HTTPS (308)")
	fs.StringVar(&t.Cert, "tls-cert", t.Cert, "serve HTTPS with this PEM certificate chain (with --tls-key)")
	fs.StringVar(&t.Key, "tls-key", t.Key, "the PEM private key of --tls-cert")
	fs.BoolVar(&a.Enabled, "acme", a.Enabled, "obtain and renew a certificate over ACME (Let's Encrypt) for --acme-domain")
	fs.Var(&listFlag{list: &a.Domains}, "acme-domain", "a `domain` to certify with --acme; repeatable")
	fs.StringVar(&a.Email, "acme-email", a.Email, "contact address of the ACME account (default: admin@ the first domain)")
	fs.StringVar(&a.Dir, "acme-dir", a.Dir, "where the ACME account and certificates are kept")
	fs.BoolVar(&a.Staging, "acme-staging", a.Staging, "use Let's Encrypt's staging CA (untrusted certificates, higher limits)")
	fs.StringVar(&a.HTTP, "acme-http", a.HTTP, "plain HTTP `address` answering ACME's challenges and redirecting to HTTPS (without systemd)")
	fs.StringVar(&a.DirectoryURL, "acme-directory-url", a.DirectoryURL, "ACME directory `URL` of another CA")
	fs.StringVar(&a.CARoot, "acme-ca-root", a.CARoot, "PEM `file` of a root to trust for the CA (a test CA)")
}

// listFlag makes a list of its values: the first replaces what the file set, the others add to it.
type listFlag struct {
	list *[]string
	set  bool
}

func (f *listFlag) Set(s string) error {
	if !f.set {
		*f.list, f.set = nil, true
	}
	*f.list = append(*f.list, s)
	return nil
}

func (f *listFlag) String() string { return "" }

// sidecarFlag adds a [[sidecar]] for each --sidecar, after those of the file.
type sidecarFlag struct{ list *[]config.Sidecar }

func (f sidecarFlag) Set(s string) error {
	*f.list = append(*f.list, config.Sidecar{Command: s})
	return nil
}

func (f sidecarFlag) String() string { return "" }

// configFlag is a flag whose bad value is a configuration error (see bindFlags).
type configFlag struct {
	flag.Value
	name string
	bad  map[string]error
}

func (f *configFlag) Set(s string) error {
	if err := f.Value.Set(s); err != nil {
		f.bad[f.name] = &config.Error{Key: "--" + f.name, Msg: err.Error()}
	} else {
		delete(f.bad, f.name)
	}
	return nil
}

func (f *configFlag) String() string {
	if f == nil || f.Value == nil { // the zero value flag.PrintDefaults makes
		return ""
	}
	return f.Value.String()
}

// resolve builds the configuration: defaults, then the file (--config, or config.DefaultPath if
// implicitConfig and --config is not given), then the environment where both left a key empty,
// then every flag in args.
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
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // Main's Parse has reported what is wrong with args
	bad := map[string]error{}
	bindFlags(fs, new(string), &c, bad)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if len(bad) > 0 { // the first bad flag by name, as flag.FlagSet lists them
		return c, bad[slices.Min(slices.Collect(maps.Keys(bad)))]
	}
	fs.Visit(func(fl *flag.Flag) {
		if key, ok := flagKeys[fl.Name]; ok {
			c.Overridden(key) // its errors then point at the flag, not at the file
		}
	})
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
	"request-timeout": "server.request_timeout", "queue": "queue.workers", "queue-max": "queue.workers_max",
	"queue-script": "queue.script", "scheduler-script": "scheduler.script", "sidecar": "sidecar",
	"https": "server.https", "force-https": "server.force_https", "tls-cert": "tls.cert", "tls-key": "tls.key",
	"acme": "acme.enabled", "acme-domain": "acme.domains", "acme-email": "acme.email", "acme-dir": "acme.dir",
	"acme-staging": "acme.staging", "acme-http": "acme.http", "acme-directory-url": "acme.directory_url", "acme-ca-root": "acme.ca_root",
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
