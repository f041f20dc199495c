package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Validate checks the semantics of a loaded configuration and fills in derived defaults
// (Root, AppBase). Paths are resolved relative to the current directory. The first error found
// is returned, the sections checked in this order.
func (c *Config) Validate() error {
	for _, check := range []func() error{c.validateServer, c.validateTimeouts, c.validateTLS, c.validateHTTPS, c.validateAliases, c.validateRedirects, c.validateWorker, c.validateOperations, c.validateScaling, c.validateReload, c.validateSidecars} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// validateServer checks [server]'s address, root, front controller, worker count and sizes, and
// makes root absolute.
func (c *Config) validateServer() error {
	s := &c.Server
	if s.Listen == "" {
		return c.Err("server.listen", "must not be empty")
	}
	if s.Root == "" {
		s.Root = "."
		if st, err := os.Stat("public"); err == nil && st.IsDir() {
			s.Root = "public"
		}
	}
	root, err := filepath.Abs(s.Root)
	if err != nil {
		return c.Err("server.root", "%v", err)
	}
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return c.Err("server.root", "%s", notA(root, "directory", err))
	}
	s.Root = root
	if s.Front == "" || strings.Contains(s.Front, "..") {
		return c.Err("server.front", "%q is not a file name under the root", s.Front)
	}
	if !s.Workers.Auto && (s.Workers.N < 1 || s.Workers.N > MaxWorkers) {
		return c.Err("server.workers", "must be from 1 to %d, or \"auto\"; got %d", MaxWorkers, s.Workers.N)
	}
	if err := checkListen(s.Listen); err != nil {
		return c.Err("server.listen", "%v", err)
	}
	if s.MaxRequests < 0 {
		return c.Err("server.max_requests", "must not be negative")
	}
	if s.MaxBodySize < 1 {
		return c.Err("server.max_body_size", "must be positive")
	}
	if s.MaxHeaderSize < 1024 {
		return c.Err("server.max_header_size", "must be at least 1K")
	}
	if s.QueueSize < 0 {
		return c.Err("server.queue_size", "must not be negative")
	}
	return nil
}

func (c *Config) validateTimeouts() error {
	s, w := &c.Server, &c.Worker
	for key, d := range map[string]Duration{
		"server.header_read_timeout": s.HeaderReadTimeout, "server.idle_timeout": s.IdleTimeout,
		"server.client_timeout":  s.ClientTimeout,
		"server.request_timeout": s.RequestTimeout, "server.queue_timeout": s.QueueTimeout,
		"server.shutdown_timeout": s.ShutdownTimeout, "worker.boot_timeout": w.BootTimeout,
		"worker.memory_report_interval":  w.MemoryReportInterval,
		"server.request_slowlog_timeout": s.RequestSlowlogTimeout,
	} {
		if d < 0 {
			return c.Err(key, "must not be negative")
		}
	}
	return nil
}

// validateOperations checks the keys of the operations plane: memory limits, the access log and
// [admin].
func (c *Config) validateOperations() error {
	s, a := &c.Server, &c.Admin
	if s.MaxRSS < 0 || s.MaxRSS > 1<<20 {
		return c.Err("server.max_rss", "must be from 0 to 1048576 (megabytes), got %d", s.MaxRSS)
	}
	if s.MaxPrivateMemory < 0 || (s.MaxPrivateMemory > 0 && s.MaxPrivateMemory < 1<<20) {
		return c.Err("server.max_private_memory", "must be 0 or at least 1M (a bare number is bytes: write \"256M\"), got %d", s.MaxPrivateMemory)
	}
	if s.AccessLogFormat != "combined" && s.AccessLogFormat != "json" {
		return c.Err("server.access_log_format", "must be \"combined\" or \"json\", not %q", s.AccessLogFormat)
	}
	if a.Socket != "" && !filepath.IsAbs(a.Socket) {
		return c.Err("admin.socket", "%q is not an absolute path", a.Socket)
	}
	if a.Listen != "" {
		if _, _, err := net.SplitHostPort(a.Listen); err != nil {
			return c.Err("admin.listen", "%q is not a host:port address: %v", a.Listen, err)
		}
	}
	return nil
}

func (c *Config) validateTLS() error {
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return c.Err("tls", "cert and key must be given together")
	}
	if c.TLS.SelfSigned && c.TLS.Cert != "" {
		return c.Err("tls.self_signed", "set either self_signed or cert and key, not both")
	}
	for key, p := range map[string]string{"tls.cert": c.TLS.Cert, "tls.key": c.TLS.Key} {
		if p != "" {
			if _, err := os.Stat(p); err != nil {
				return c.Err(key, "%v", err)
			}
		}
	}
	return nil
}

// validateAliases checks [server] alias and makes every prefix end in "/".
func (c *Config) validateAliases() error {
	s := &c.Server
	aliases := make(map[string]string, len(s.Alias))
	for prefix, dir := range s.Alias {
		if !strings.HasPrefix(prefix, "/") || prefix == "/" || hasDotSegment(prefix) || strings.Contains(prefix, "//") {
			return c.Err("server.alias", "%q is not a URL path prefix such as \"/wp-content/\"", prefix)
		}
		if !filepath.IsAbs(dir) {
			return c.Err("server.alias", "%q: %q is not an absolute directory", prefix, dir)
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return c.Err("server.alias", "%q: %s is not a directory", prefix, dir)
		}
		if !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		if _, dup := aliases[prefix]; dup {
			return c.Err("server.alias", "%q is given twice", prefix)
		}
		aliases[prefix] = filepath.Clean(dir)
	}
	if s.Alias != nil {
		s.Alias = aliases
	}
	return nil
}

func (c *Config) validateRedirects() error {
	for i := range c.Redirect {
		if err := c.Redirect[i].validate(c, i); err != nil {
			return err
		}
	}
	return nil
}

// validateWorker checks [worker] and makes its paths absolute; app_base defaults to the parent of
// the root (validateServer made the root absolute).
func (c *Config) validateWorker() error {
	w := &c.Worker
	if w.Script == "" {
		if w.Cow {
			return c.Err("worker.cow", "CoW mode needs a worker script (--worker-script or [worker] script); without one askrd serves per request")
		}
	} else {
		script, err := filepath.Abs(w.Script)
		if err != nil {
			return c.Err("worker.script", "%v", err)
		}
		if st, err := os.Stat(script); err != nil || !st.Mode().IsRegular() {
			return c.Err("worker.script", "%s", notA(script, "readable file", err))
		}
		w.Script = script
	}
	if w.AppBase == "" {
		w.AppBase = filepath.Dir(c.Server.Root)
	}
	var err error
	if w.AppBase, err = filepath.Abs(w.AppBase); err != nil {
		return c.Err("worker.app_base", "%v", err)
	}
	if st, err := os.Stat(w.AppBase); err != nil || !st.IsDir() {
		return c.Err("worker.app_base", "%s", notA(w.AppBase, "directory", err))
	}
	if w.PHPCGI == "" {
		return c.Err("worker.php_cgi", "must not be empty")
	}
	if _, err := w.INIArgs(); err != nil {
		return c.Err("worker.ini", "%v", err)
	}
	return c.validateExtension()
}

func (c *Config) validateExtension() error {
	w := &c.Worker
	switch w.Extension {
	case "auto", "none":
	case "":
		return c.Err("worker.extension", `must be "auto", "none" or the path of askr.so`)
	default:
		ext, err := filepath.Abs(w.Extension)
		if err != nil {
			return c.Err("worker.extension", "%v", err)
		}
		if st, err := os.Stat(ext); err != nil || !st.Mode().IsRegular() {
			return c.Err("worker.extension", "%s is not a readable file (build it with `make ext`, or set \"auto\" or \"none\")", ext)
		}
		w.Extension = ext
	}
	return nil
}

// notA says why path, which os.Stat answered with err, is not what it should be: the error when
// it is neither "not there" nor nil (a directory on the way that askrd's user may not search),
// else "PATH is not a WHAT".
func notA(path, what string, err error) string {
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err.Error()
	}
	return path + " is not a " + what
}

// validate checks the i-th [[redirect]] and fills in its default status.
func (r *Redirect) validate(c *Config, i int) error {
	bad := func(key, format string, args ...any) error { return c.tableErr("redirect", i, key, format, args...) }
	host := strings.TrimPrefix(r.From, "*.")
	if host == "" || strings.ContainsAny(host, "*/:@?# ") {
		return bad("from", "%q is not a host name, or \"*.\" and a host name", r.From)
	}
	u, err := url.Parse(r.To)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return bad("to", "%q is not an http or https URL without a query (\"https://example.com\")", r.To)
	}
	switch r.Status {
	case 0:
		r.Status = 308
	case 301, 302, 303, 307, 308:
	default:
		return bad("status", "%d is not a redirect status (301, 302, 303, 307 or 308)", r.Status)
	}
	return nil
}

// hasDotSegment reports a URL path with a segment "." or "..", or one starting with a dot.
func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if strings.HasPrefix(seg, ".") {
			return true
		}
	}
	return false
}

// MaxWorkers bounds the worker count: each worker is a process with its own PHP heap.
const MaxWorkers = 1024

// checkListen accepts "host:port" with a numeric port, or a port alone.
func checkListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. \"127.0.0.1:8000\" or \"[::]:80\")", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && strings.ContainsAny(host, " /\\") {
		return fmt.Errorf("%q: %q is not a host name or IP address", addr, host)
	}
	return nil
}

// validateScaling checks workers_min, workers_max, scale_down_after and refork_after.
func (c *Config) validateScaling() error {
	s, w := &c.Server, &c.Worker
	for key, n := range map[string]int{"server.workers_min": s.WorkersMin, "server.workers_max": s.WorkersMax} {
		if n < 0 || n > MaxWorkers {
			return c.Err(key, "must be from 0 (workers) to %d; got %d", MaxWorkers, n)
		}
	}
	if s.WorkersMin > 0 && s.WorkersMax > 0 && s.WorkersMin > s.WorkersMax {
		return c.Err("server.workers_min", "%d is above workers_max (%d)", s.WorkersMin, s.WorkersMax)
	}
	if s.ScaleDownAfter < 0 {
		return c.Err("server.scale_down_after", "must not be negative")
	}
	for i, n := range w.ReforkAfter {
		if n < 1 || i > 0 && n <= w.ReforkAfter[i-1] {
			return c.Err("worker.refork_after", "must be request counts above 0, each larger than the one before; got %v", w.ReforkAfter)
		}
	}
	if len(w.ReforkAfter) > 0 && !w.Cow {
		return c.Err("worker.refork_after", "refork needs CoW mode (cow = true, or --cow): a worker can become the template only there")
	}
	switch w.ForkSafety {
	case "warn", "refuse", "off":
	default:
		return c.Err("worker.fork_safety", "must be \"warn\", \"refuse\" or \"off\", not %q", w.ForkSafety)
	}
	return nil
}

// validateReload checks [reload].
func (c *Config) validateReload() error {
	r := &c.Reload
	switch {
	case r.CanaryWindow <= 0:
		return c.Err("reload.canary_window", "must be positive")
	case r.CanaryMinRequests < 0:
		return c.Err("reload.canary_min_requests", "must not be negative")
	case r.CanaryMaxErrorRate < 0 || r.CanaryMaxErrorRate > 100:
		return c.Err("reload.canary_max_error_rate", "must be from 0 to 100 (percentage points); got %g", r.CanaryMaxErrorRate)
	case r.CanaryMaxLatencyFactor < 1:
		return c.Err("reload.canary_max_latency_factor", "must be at least 1; got %g", r.CanaryMaxLatencyFactor)
	}
	return nil
}
