// Package config owns askr's settings: the askr.toml schema, its defaults, parsing of sizes and
// durations, and validation. It reads files and the environment it is given; it never opens
// sockets or starts processes. The field comments below are the reference that etc/askr.toml repeats.
package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultPath is where askrd looks for its configuration when no file is named.
const DefaultPath = "/etc/askr.toml"

// Config is the whole of askr.toml.
type Config struct {
	Server    Server     `toml:"server"`
	Worker    Worker     `toml:"worker"`
	TLS       TLS        `toml:"tls"`
	ACME      ACME       `toml:"acme"`
	Admin     Admin      `toml:"admin"`
	Reload    Reload     `toml:"reload"`
	Queue     Queue      `toml:"queue"`
	Scheduler Scheduler  `toml:"scheduler"`
	Sidecar   []Sidecar  `toml:"sidecar"`
	Redirect  []Redirect `toml:"redirect"`

	// File is the path the configuration was read from ("" when built from flags alone).
	File string `toml:"-"`
	// Notices are the keys of the original askr.toml in File that this version ignores, each with
	// what happens instead (see legacy.go).
	Notices []Notice `toml:"-"`

	// lines maps each key the file sets to its line, so that errors about it can point there.
	lines map[string]int
}

// Server holds the [server] section.
type Server struct {
	// Listen is the address to bind when systemd hands over no socket. Default: "127.0.0.1:8000".
	Listen string `toml:"listen"`
	// Root is the document root: static files are served from it and PHP sees it as DOCUMENT_ROOT.
	// Default: "public" if that directory exists, else the current directory.
	Root string `toml:"root"`
	// Front is the front controller, relative to root. In worker mode every request that is not a
	// static file goes to it; in per-request mode (no worker script) it is what nginx's
	// try_files $uri $uri/ /index.php?$args falls back to: the requested .php file runs if it
	// exists, a directory runs its index.php, anything else runs front. Default: "index.php".
	Front string `toml:"front"`
	// Workers is the number of PHP worker processes: a number, or "auto" for the CPU count this
	// process may use (cgroup limits included). Default: "auto".
	Workers Workers `toml:"workers"`
	// WorkersMin is the floor of the pool's scaling: the pool starts at workers, adds a worker
	// while requests wait for one, up to workers_max, and retires one when it has had a worker to
	// spare for scale_down_after, down to workers_min. Cheapest in CoW mode, where a new worker is
	// a warm fork. 0 means workers. Default: 0.
	WorkersMin int `toml:"workers_min"`
	// WorkersMax is the ceiling of the pool's scaling; above workers it turns scaling on. 0 means
	// workers. Default: 0.
	WorkersMax int `toml:"workers_max"`
	// ScaleDownAfter is how long the pool must have had a worker to spare (never all of its
	// workers busy at once, no request waiting) before it retires one, when it scales
	// (workers_max above workers_min). Default: 30.
	ScaleDownAfter Duration `toml:"scale_down_after"`
	// MaxRequests recycles a worker after it has served this many requests; 0 never recycles. Default: 0.
	MaxRequests int `toml:"max_requests"`
	// MaxRSS recycles a worker whose resident memory (RSS) is over this many megabytes: it finishes
	// its current request and is replaced, never killed in the middle of one. RSS counts the pages
	// a CoW worker shares with its template, so in CoW mode use max_private_memory. 0 never
	// recycles. Default: 0.
	MaxRSS int `toml:"max_rss"`
	// MaxPrivateMemory recycles a worker whose private memory (Private_Dirty in
	// /proc/PID/smaps_rollup: what it alone holds, and what its exit gives back) is over this size,
	// as max_rss does. Memory shared with a CoW template does not count. A size, like the others
	// ("256M"; a bare number is bytes, not megabytes as for max_rss), at least 1M; 0 never recycles.
	// Default: 0.
	MaxPrivateMemory Size `toml:"max_private_memory"`
	// AccessLog writes one line per request to this file, or to standard output with "-" (under
	// systemd: the journal, which by default drops a service's lines past 10000 in 30 s, so a busy
	// site wants a file). askrd reopens the file on SIGUSR1 (logrotate's postrotate). "" writes
	// none. Default: "".
	AccessLog string `toml:"access_log"`
	// AccessLogFormat is "combined" (the combined log format, then the request time, PHP's time,
	// the queue wait, the worker's pid) or "json" (one JSON object per line). Default: "combined".
	AccessLogFormat string `toml:"access_log_format"`
	// RequestSlowlogTimeout logs the PHP backtrace of a request that runs longer than this, once,
	// while it runs (php-fpm's request_slowlog_timeout), as a "slow request" warning in askrd's
	// log; it is counted as slow. The worker is not stopped or signalled. 0 turns it off.
	// Default: 0.
	RequestSlowlogTimeout Duration `toml:"request_slowlog_timeout"`
	// MaxBodySize is the largest request body accepted; larger bodies get 413 before PHP runs.
	// Sizes are bytes or a number with K, M or G (powers of 1024). Default: "16M".
	MaxBodySize Size `toml:"max_body_size"`
	// BodyBufferSize is how much of a request body is kept in memory; a larger body is spooled to a
	// temporary file and streamed to PHP from there. Default: "1M".
	BodyBufferSize Size `toml:"body_buffer_size"`
	// ResponseSpoolSize bounds how much of one response waits in a temporary file for a client that
	// reads more slowly than PHP writes: askrd holds up to 1M of it in memory, then up to this much
	// in a file in the temporary directory (unlinked as soon as it is created), so the worker is
	// free for the next request at once, as nginx's fastcgi_max_temp_file_size does. Past it the
	// worker waits for the client. 0 keeps only the 1M in memory. Default: "1G".
	ResponseSpoolSize Size `toml:"response_spool_size"`
	// MaxHeaderSize is the largest request header block accepted; larger ones get 431. Default: "64K".
	MaxHeaderSize Size `toml:"max_header_size"`
	// HeaderReadTimeout bounds how long a client may take to send its request headers. Durations are
	// seconds, or a number with a unit ("500ms", "30s", "2m"). Default: 15.
	HeaderReadTimeout Duration `toml:"header_read_timeout"`
	// IdleTimeout closes a keep-alive connection that sends no new request for this long. Default: 60.
	IdleTimeout Duration `toml:"idle_timeout"`
	// ClientTimeout bounds how long a client may stall while sending its request body or reading the
	// response, between two successful reads or writes (nginx's client_body_timeout and
	// send_timeout). 0 disables it. Default: 60.
	ClientTimeout Duration `toml:"client_timeout"`
	// RequestTimeout bounds the time a worker may spend on one request; past it the worker is killed
	// and replaced and the client gets 504. 0 disables the limit. Default: 60.
	RequestTimeout Duration `toml:"request_timeout"`
	// QueueSize is how many requests may wait for a free worker; more get 503 at once. Default: 1024.
	QueueSize int `toml:"queue_size"`
	// QueueTimeout is how long a request may wait for a free worker before it gets 503. Default: 30.
	QueueTimeout Duration `toml:"queue_timeout"`
	// ShutdownTimeout bounds the drain on SIGTERM/SIGINT: in-flight requests get this long to finish.
	// When it ends the drain, requests still waiting for a worker get 503, those still running are
	// cut, and askrd exits with status 75. Default: 30.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// HTTPS makes PHP see HTTPS=on even without [tls], for a TLS-terminating proxy in front. Default: false.
	HTTPS bool `toml:"https"`
	// HTTPSListen is the address of HTTPS when systemd hands over no socket, beside a plain HTTP
	// listen (which force_https then redirects). Needs [tls] or [acme]. Without it, [tls] or [acme]
	// makes listen serve HTTPS. Default: none.
	HTTPSListen string `toml:"https_listen"`
	// ForceHTTPS answers every plain HTTP request but ACME's challenges with a 308 redirect to the
	// same URL on HTTPS. A request is HTTPS when its connection is TLS, when https is set, or when a
	// peer of trusted_proxies says so in X-Forwarded-Proto. Needs [tls], [acme], https or
	// trusted_proxies. Default: false.
	ForceHTTPS bool `toml:"force_https"`
	// HTTPRedirect is a second, plain HTTP address, when systemd hands over no socket, that answers
	// ACME's challenges and redirects everything else to HTTPS (308), e.g. "0.0.0.0:80" beside
	// listen = "0.0.0.0:443". Needs [tls] or [acme]. Default: none.
	HTTPRedirect string `toml:"http_redirect"`
	// TrustedProxies are the peers (IP addresses or CIDR ranges, e.g. "10.0.0.0/8") whose
	// X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host askrd believes: PHP then sees the
	// client's address in REMOTE_ADDR, HTTPS=on for "https" and the forwarded host in HTTP_HOST, as
	// nginx's realip module gives. From any other peer these headers change nothing. Default: none.
	TrustedProxies []string `toml:"trusted_proxies"`
	// ProxyProtocol reads a PROXY protocol header (v1 or v2, as HAProxy and cloud load balancers
	// send) on every public socket from the peers of trusted_proxies, and takes the client's address
	// from it; other peers are served as they are. Needs trusted_proxies. Default: false.
	ProxyProtocol bool `toml:"proxy_protocol"`
	// Compression compresses responses with br or gzip, as the client's Accept-Encoding allows, when
	// they are of a compressible type (text, JSON, JavaScript, XML, SVG…) and 512 bytes or more:
	// PHP's (streamed ones flushed as PHP flushes) and static files (a precompressed file.br or
	// file.gz beside the file is sent when present). Never for ranges, 304s, or a response PHP
	// encoded itself. Default: true.
	Compression bool `toml:"compression"`
	// StaticImmutable are URL prefixes whose static files get "Cache-Control: public,
	// max-age=31536000, immutable": build output whose names change with their content, as Vite's
	// public/build/. Default: ["/build/"].
	StaticImmutable []string `toml:"static_immutable"`
	// Alias serves the URLs under a prefix from another directory, as nginx's alias does: static
	// files only (PHP under it is refused with 403, never run or shown), with the root's rules
	// (no dotfiles, nothing outside the directory). Keys are URL prefixes, values absolute
	// directories. Debian's WordPress needs { "/wp-content/" = "/var/lib/wordpress/wp-content" }.
	// Default: none.
	Alias map[string]string `toml:"alias"`
}

// Worker holds the [worker] section.
type Worker struct {
	// Script is the worker script: it boots the app once and loops on askr_handle_request().
	// Without one askrd runs in per-request mode, as php-fpm does: each request runs its PHP file
	// afresh in a php-cgi process speaking FastCGI (workers, max_requests, request_timeout and the
	// queue apply to those processes; app_base is their working directory until a script runs,
	// ini their php.ini lines). Default: none (per-request mode).
	Script string `toml:"script"`
	// AppBase is the application's base directory: the workers' working directory, exported to PHP as
	// ASKR_APP_BASE. Default: $ASKR_APP_BASE, else the parent of root.
	AppBase string `toml:"app_base"`
	// Ini holds php.ini lines ("key = value", one per line) applied to every worker. Default: "".
	Ini string `toml:"ini"`
	// Cow turns on CoW template mode: one template process boots the app and, at askr_cow_ready(),
	// forks the workers, which share its memory copy-on-write; a worker that exits is replaced by a
	// fresh fork in milliseconds. Needs script. Default: false.
	Cow bool `toml:"cow"`
	// PHPCGI is the php-cgi binary the workers run; a name without a slash is looked up in PATH.
	// One that is not there, or not executable, is a configuration error. Default: "php-cgi".
	PHPCGI string `toml:"php_cgi"`
	// PHPCLI is the php-cli binary that runs [queue] and [scheduler] scripts outside CoW mode; a
	// name without a slash is looked up in PATH. Checked only when one of them is set.
	// Default: "php".
	PHPCLI string `toml:"php_cli"`
	// Extension is askr's PHP extension (askr.so, built from ext/askr), loaded into every worker with
	// -d extension=. Without it is_uploaded_file() and move_uploaded_file() refuse uploads, flush()
	// does not stream and connection_aborted() stays 0. "auto" uses /usr/lib/askr/askr.so, else
	// askr.so next to the askrd executable, else ../build/ext/askr.so from it (a source tree), else
	// none, with a warning; "none" never loads it; any other value is the path of askr.so, which
	// must exist and load (php-cgi is asked at startup). Default: "auto".
	Extension string `toml:"extension"`
	// BootTimeout bounds how long a worker (or a CoW template) may take to boot: to its first
	// askr_handle_request() (askr_cow_ready()) call. Default: 60.
	BootTimeout Duration `toml:"boot_timeout"`
	// MemoryReportInterval is how often askrd logs the memory of its PHP processes (Pss, Rss,
	// Private_Dirty, Shared of the template and the workers, from /proc/PID/smaps_rollup).
	// 0 turns it off. Default: 300.
	MemoryReportInterval Duration `toml:"memory_report_interval"`
	// Paranoid turns on the state-bleed detector, for development and staging: at every
	// askr_handle_request() each worker compares what it can see of long-lived state (static
	// properties of the app's classes, $GLOBALS, ini settings, the output buffer level, and Laravel's
	// session, auth, queued cookies and open transactions) with what it saw after the previous
	// request, and Laravel's container with its state after boot, and logs the first difference of
	// each kind with the route that left it, at most one line per kind a minute; strings are logged as
	// their length and a hash, never their value. It costs throughput. Without a worker script it has
	// nothing to watch. Default: false.
	Paranoid bool `toml:"paranoid"`
	// ReforkAfter turns on refork in CoW mode: when a worker of the current generation has served
	// the next count of this list, it becomes the new template (it stops taking requests and forks
	// the next generation's workers, which replace the others one at a time, as a reload does), so
	// the workers start from a heap the first requests have warmed. [] never reforks. Default: [].
	ReforkAfter []int `toml:"refork_after"`
	// ForkSafety is what askr_cow_ready() does about what the template holds that must not be
	// shared across fork (database, Redis and other network connections, SQLite databases, a
	// pending alarm, the app's SIGTERM/SIGCHLD handlers): "warn" logs one warning naming each,
	// "refuse" fails the template's boot with those lines, "off" does not look. Default: "warn".
	ForkSafety string `toml:"fork_safety"`
	// CowSpare keeps one worker forked ahead in CoW mode, so that a worker that exits is replaced
	// without waiting for a fork. Default: true.
	CowSpare bool `toml:"cow_spare"`
}

// Reload holds the [reload] section: how a reload (askrd reload, systemctl reload, SIGHUP in
// worker mode) judges its canary, the first worker of the new code, before the others follow.
type Reload struct {
	// Canary watches the canary on real traffic for canary_window next to the old workers: with
	// more than canary_max_error_rate points more 5xx answers, or a mean latency over
	// canary_max_latency_factor times theirs, the reload is rolled back (the old workers go on
	// serving and the reload fails); with fewer than canary_min_requests requests it rolls on with
	// a warning, unless its 5xx answers alone already pass the limit, or its one request runs too
	// long. false: the canary must boot and answer a health check, then the others follow at once.
	// Default: false.
	Canary bool `toml:"canary"`
	// CanaryWindow is how long the canary is watched. Default: 5.
	CanaryWindow Duration `toml:"canary_window"`
	// CanaryMinRequests is how many requests the canary must answer in the window for a verdict.
	// Default: 20.
	CanaryMinRequests int `toml:"canary_min_requests"`
	// CanaryMaxErrorRate is how many percentage points the canary's share of 5xx answers may exceed
	// the old workers'. Default: 2.0.
	CanaryMaxErrorRate float64 `toml:"canary_max_error_rate"`
	// CanaryMaxLatencyFactor is how many times the old workers' mean latency the canary's may be.
	// Default: 3.0.
	CanaryMaxLatencyFactor float64 `toml:"canary_max_latency_factor"`
}

// Queue holds the [queue] section: long-lived PHP queue workers (Laravel's queue:work) that askrd
// runs beside the HTTP workers, starts once these serve, restarts when they exit, restarts on a
// reload and stops after the HTTP drain. In CoW mode each is forked from the template after
// askr_cow_ready(), warm, sharing its memory; otherwise each is a php-cli process (worker.php_cli).
type Queue struct {
	// Workers is how many queue worker processes run; 0 runs none. Default: 0.
	Workers int `toml:"workers"`
	// WorkersMax is the original askr's ceiling for scaling queue workers on their backlog. This
	// version runs workers of them; a value below workers is an error. 0 means workers. Default: 0.
	WorkersMax int `toml:"workers_max"`
	// Script is the PHP script each queue worker runs, with php-cli's semantics (no time limit,
	// STDOUT and STDERR to askrd's log, $argv); askr_worker_role() returns "queue" in it. For
	// Laravel: /usr/share/askr/workers/laravel-queue.php. Required with workers. Default: none.
	Script string `toml:"script"`
	// Grace is how long a queue worker has after SIGTERM to finish its current job and exit
	// before it is killed (SIGKILL): above the longest job's timeout (Laravel's default is 60 s).
	// Default: 70.
	Grace Duration `toml:"grace"`
}

// Scheduler holds the [scheduler] section: a PHP script run once at every interval boundary
// (Laravel's schedule:run), never two at once: a boundary that finds the previous run still
// going starts its run as that one ends if it is late by at most a tenth of the interval, else it
// is skipped and logged. In CoW mode each run is forked from the template.
type Scheduler struct {
	// Script is the PHP script each run executes, with php-cli's semantics; askr_worker_role()
	// returns "scheduler" in it. For Laravel: /usr/share/askr/workers/laravel-scheduler.php.
	// Default: none (no scheduler).
	Script string `toml:"script"`
	// Interval is the time between runs, counted from boundaries of the clock (60: at every whole
	// minute, as cron). Default: 60.
	Interval Duration `toml:"interval"`
	// Grace is how long a run has after SIGTERM (at stop) to end before it is killed. Default: 30.
	Grace Duration `toml:"grace"`
}

// Sidecar is one [[sidecar]] table: a command askrd runs with sh -c in app_base, as its own user
// and with the workers' environment, logs (stdout and stderr, tagged with its name and pid),
// restarts when it exits (backing off while it keeps failing), restarts on a reload and stops
// after the HTTP drain: SIGTERM to its process group, SIGKILL after grace.
type Sidecar struct {
	// Command is the shell command line (sh -c). Required.
	Command string `toml:"command"`
	// Name names it in the log and the status. Default: its command's first word, without the
	// directory ("node" for "node bootstrap/ssr/ssr.mjs"), with -2, -3, … for the same name twice.
	Name string `toml:"name"`
	// Count is how many copies run. Default: 1.
	Count int `toml:"count"`
	// Restart is when it is started again after it exits: "always", or "on-failure" (only after a
	// non-zero exit status or a signal). Default: "always".
	Restart string `toml:"restart"`
	// Grace is how long it has after SIGTERM to exit before it is killed. Default: 10.
	Grace Duration `toml:"grace"`
}

// TLS holds the [tls] section. With a certificate (Cert and Key, or SelfSigned), askrd serves
// HTTPS (HTTP/2 and HTTP/1.1).
type TLS struct {
	// Cert is the PEM certificate chain; with key set too, askrd serves HTTPS. Default: none.
	Cert string `toml:"cert"`
	// Key is the PEM private key of cert. Default: none.
	Key string `toml:"key"`
	// SelfSigned serves HTTPS with a self-signed certificate made in memory at startup for
	// "localhost", the loopback addresses and the host of listen, for development: browsers warn
	// about it. Not together with cert and key. Default: false.
	SelfSigned bool `toml:"self_signed"`
}

// ACME holds the [acme] section: certificates obtained and renewed over ACME (Let's Encrypt, or
// another CA), answered with HTTP-01 on the plain HTTP socket and TLS-ALPN-01 on the HTTPS one.
type ACME struct {
	// Enabled obtains a certificate for domains at startup (in the background: plain HTTP serves
	// at once), renews it before it expires and serves HTTPS with it. Not together with [tls].
	// Default: false.
	Enabled bool `toml:"enabled"`
	// Domains are the host names to certify: bare names, no scheme, port or wildcard. At least one
	// with enabled. Default: none.
	Domains []string `toml:"domains"`
	// Email is the contact address of the ACME account. Default: "admin@" and the first domain.
	Email string `toml:"email"`
	// Dir keeps the account key and the certificates (files readable by askrd's user only), so a
	// restart reuses them instead of asking the CA again. Default: "/var/lib/askr/acme".
	Dir string `toml:"dir"`
	// Staging uses Let's Encrypt's staging CA: certificates browsers do not trust, far higher rate
	// limits. Try it first. Not together with directory_url. Default: false.
	Staging bool `toml:"staging"`
	// DirectoryURL is the ACME directory of another CA (an https URL). Default: Let's Encrypt's.
	DirectoryURL string `toml:"directory_url"`
	// CARoot is a PEM file of a root to trust, besides the system's, when talking to the CA (a test
	// CA such as pebble). Default: none.
	CARoot string `toml:"ca_root"`
	// HTTP is where challenges are answered and plain HTTP is redirected to HTTPS when systemd hands
	// over no socket (with systemd, the "http" socket does both; with https_listen, listen answers
	// the challenges and http is not used). Default: "0.0.0.0:80".
	HTTP string `toml:"http"`
}

// Admin holds the [admin] section: the admin API (status, metrics, reload, recycle) and the
// dashboard. It is never served on the public listener.
type Admin struct {
	// Socket is the Unix socket of the admin API; askrd creates its directory if missing. Only root
	// and askrd's own user may use it (the peer's credentials are checked). Under systemd a socket
	// named "admin" is served instead. "" serves none. Default: "/run/askr/admin.sock".
	Socket string `toml:"socket"`
	// Listen also serves the admin API on this TCP address, only to requests that carry
	// "Authorization: Bearer" with the token of token_file. Default: none.
	Listen string `toml:"listen"`
	// TokenFile is the file whose first line is the bearer token for listen; it must not be
	// readable by others. Default: none.
	TokenFile string `toml:"token_file"`
}

// Redirect is one [[redirect]] table: a request whose Host matches from is redirected to to, with
// its path and query. Redirects are answered before static files and PHP; the first match wins.
type Redirect struct {
	// From is the host to redirect: a host name, or "*.example.com" for example.com and every name
	// under it. The port of the request's Host is not compared. Required.
	From string `toml:"from"`
	// To is the URL to redirect to: a scheme, a host and perhaps a path, to which the request's
	// path and query are appended ("https://example.com" sends /a?b to https://example.com/a?b).
	// Required.
	To string `toml:"to"`
	// Status is the status of the redirect: 301, 302, 303, 307 or 308. Default: 308 (permanent,
	// the method kept).
	Status int `toml:"status"`
}

// Enabled reports whether [tls] gives askrd a certificate to serve HTTPS with.
func (t *TLS) Enabled() bool { return t.Cert != "" || t.SelfSigned }

// HTTPS reports whether askrd serves HTTPS: with [tls] or [acme].
func (c *Config) HTTPS() bool { return c.TLS.Enabled() || c.ACME.Enabled }

// Defaults returns the configuration used for every key a file or flag leaves out.
func Defaults() Config {
	return Config{
		Server: Server{
			Listen:            "127.0.0.1:8000",
			Front:             "index.php",
			Workers:           Workers{Auto: true},
			MaxBodySize:       16 << 20,
			BodyBufferSize:    1 << 20,
			ResponseSpoolSize: 1 << 30,
			MaxHeaderSize:     64 << 10,
			HeaderReadTimeout: Duration(15 * time.Second),
			IdleTimeout:       Duration(60 * time.Second),
			ClientTimeout:     Duration(60 * time.Second),
			RequestTimeout:    Duration(60 * time.Second),
			QueueSize:         1024,
			QueueTimeout:      Duration(30 * time.Second),
			ShutdownTimeout:   Duration(30 * time.Second),
			AccessLogFormat:   "combined",
			ScaleDownAfter:    Duration(30 * time.Second),
			Compression:       true,
			StaticImmutable:   []string{"/build/"},
		},
		ACME:  ACME{Dir: "/var/lib/askr/acme", HTTP: "0.0.0.0:80"},
		Admin: Admin{Socket: "/run/askr/admin.sock"},
		Worker: Worker{
			PHPCGI:               "php-cgi",
			PHPCLI:               "php",
			Extension:            "auto",
			BootTimeout:          Duration(60 * time.Second),
			MemoryReportInterval: Duration(300 * time.Second),
			ReforkAfter:          []int{},
			ForkSafety:           "warn",
			CowSpare:             true,
		},
		Queue:     Queue{Grace: Duration(70 * time.Second)},
		Scheduler: Scheduler{Interval: Duration(60 * time.Second), Grace: Duration(30 * time.Second)},
		Reload:    Reload{CanaryWindow: Duration(5 * time.Second), CanaryMinRequests: 20, CanaryMaxErrorRate: 2, CanaryMaxLatencyFactor: 3},
	}
}

// Error is a configuration error. Every Error makes askrd exit with status 78 (EX_CONFIG).
type Error struct {
	File string // may be ""
	Line int    // 0 when unknown
	Key  string // may be ""
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		fmt.Fprintf(&b, "%s: ", e.Key)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads the file at path over the defaults. It rejects syntax errors, unknown keys and wrong
// types with file:line; it does not validate (see Validate).
func Load(path string) (Config, error) {
	c := Defaults()
	src, err := os.ReadFile(path)
	if err != nil {
		return c, &Error{File: path, Msg: err.Error()}
	}
	if err := decode(src, path, &c); err != nil {
		return c, err
	}
	c.File = path
	return c, nil
}

func decode(src []byte, path string, c *Config) error {
	md, err := toml.NewDecoder(bytes.NewReader(src)).Decode(c)
	if err != nil {
		return decodeErr(err, path)
	}
	c.lines = keyLines(src)
	c.Notices, err = decodeOriginal(src, path, md.Undecoded(), c.lines)
	return err
}

// decodeErr turns an error of the TOML decoder into an *Error with the file's line.
func decodeErr(err error, path string) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if u := errors.Unwrap(pe); u != nil {
			msg = u.Error()
		}
		return &Error{File: path, Line: pe.Position.Line, Key: pe.LastKey, Msg: msg}
	}
	// Type mismatches come as plain errors: `toml: line N (last key "k"): msg`.
	if m := typeErr.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: path, Line: line, Key: m[2], Msg: m[3]}
	}
	return &Error{File: path, Msg: err.Error()}
}

var typeErr = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]*)"\): (.*)$`)

// keyLines maps every key and table a TOML document defines to the line that first does, and the
// keys of the i-th table of an array of tables also as "name[i].key". It understands the [table],
// [[array]] and key = value lines askr.toml is made of, and skips the inside of multi-line strings.
func keyLines(src []byte) map[string]int {
	lines := map[string]int{}
	table := ""
	entry := ""                 // "name[i]" in the i-th table of an array of tables
	entries := map[string]int{} // the tables of each array so far
	inString := ""              // the delimiter of the multi-line string being read
	sc := bufio.NewScanner(bytes.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if inString != "" {
			if strings.Count(line, inString)%2 == 1 {
				inString = ""
			}
			continue
		}
		set := func(key string) {
			if _, ok := lines[key]; !ok {
				lines[key] = n
			}
		}
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '[':
			table = line
			if i := strings.IndexByte(table, '#'); i >= 0 {
				table = table[:i]
			}
			array := strings.HasPrefix(table, "[[")
			table = strings.Join(strings.Fields(strings.Trim(table, "[] \t")), "")
			set(table)
			entry = ""
			if array { // also "name[i]" for the i-th table of the array, and its keys
				entry = fmt.Sprintf("%s[%d]", table, entries[table])
				entries[table]++
				set(entry)
			}
		default:
			name, value, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			key := strings.Trim(strings.TrimSpace(name), `"'`)
			full := key
			if table != "" {
				full = table + "." + key
			}
			set(full)
			if entry != "" {
				set(entry + "." + key)
			}
			for _, q := range []string{`"""`, `'''`} {
				if strings.Count(value, q)%2 == 1 {
					inString = q
				}
			}
		}
	}
	return lines
}

// lineOf returns the line of key in lines, or else of the first key under it (a table the file
// writes as dotted keys), or 0.
func lineOf(lines map[string]int, key string) int {
	if n, ok := lines[key]; ok {
		return n
	}
	first := 0
	for k, n := range lines {
		if strings.HasPrefix(k, key+".") && (first == 0 || n < first) {
			first = n
		}
	}
	return first
}

// Overridden records that something other than the file (a flag) set key, so that errors about
// it point at no line of the file.
func (c *Config) Overridden(key string) {
	if c.lines != nil {
		c.lines[key] = -1
	}
}

// Err is an error about key: it names the file and line of key when the file set it, else only
// the key.
func (c *Config) Err(key, format string, args ...any) *Error {
	e := &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
	if line := lineOf(c.lines, key); line > 0 {
		e.File, e.Line = c.File, line
	}
	return e
}

// PerRequest reports per-request mode: no worker script, so each request runs its PHP file afresh.
func (c *Config) PerRequest() bool { return c.Worker.Script == "" }

// Aliases returns Alias as (prefix, directory) pairs sorted by prefix; after Validate every prefix
// ends in "/".
func (s *Server) Aliases() [][2]string {
	out := make([][2]string, 0, len(s.Alias))
	for prefix, dir := range s.Alias {
		out = append(out, [2]string{prefix, dir})
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out
}

// CPUs is the number of CPUs this process may use, as GOMAXPROCS was when askrd started: it
// follows the cgroup CPU limit (Go 1.25+), or GOMAXPROCS if the environment sets it. Read before
// askrd sets its own GOMAXPROCS (cli's tuneRuntime), which workers = "auto" does not follow.
var CPUs = runtime.GOMAXPROCS(0)

// WorkerCount resolves Workers to a number.
func (s *Server) WorkerCount() int {
	if s.Workers.Auto {
		return max(1, CPUs)
	}
	return s.Workers.N
}

// WorkerBounds is the pool's size: it starts with start workers and scales between lo and hi
// (lo == hi: it does not scale). workers_min and workers_max default to workers, and workers is
// kept within them.
func (s *Server) WorkerBounds() (lo, start, hi int) {
	start = s.WorkerCount()
	lo, hi = s.WorkersMin, s.WorkersMax
	if lo == 0 {
		lo = min(start, max(hi, 1))
		if hi == 0 {
			lo = start
		}
	}
	if hi == 0 {
		hi = max(start, lo)
	}
	return lo, min(max(start, lo), hi), hi
}

// Dump writes the resolved configuration as TOML, for `askrd config-check`.
func (c *Config) Dump() string {
	var b strings.Builder
	s, w := c.Server, c.Worker
	q := strconv.Quote
	fmt.Fprintf(&b, "[server]\nlisten = %s\nroot = %s\nfront = %s\nworkers = %s # resolves to %d\n",
		q(s.Listen), q(s.Root), q(s.Front), q(s.Workers.String()), s.WorkerCount())
	fmt.Fprintf(&b, "max_requests = %d\nmax_body_size = %s\nbody_buffer_size = %s\nresponse_spool_size = %s\nmax_header_size = %s\n",
		s.MaxRequests, q(s.MaxBodySize.String()), q(s.BodyBufferSize.String()), q(s.ResponseSpoolSize.String()), q(s.MaxHeaderSize.String()))
	fmt.Fprintf(&b, "header_read_timeout = %s\nidle_timeout = %s\nclient_timeout = %s\nrequest_timeout = %s\n",
		q(s.HeaderReadTimeout.String()), q(s.IdleTimeout.String()), q(s.ClientTimeout.String()), q(s.RequestTimeout.String()))
	fmt.Fprintf(&b, "queue_size = %d\nqueue_timeout = %s\nshutdown_timeout = %s\nhttps = %t\n",
		s.QueueSize, q(s.QueueTimeout.String()), q(s.ShutdownTimeout.String()), s.HTTPS)
	fmt.Fprintf(&b, "https_listen = %s\nforce_https = %t\nhttp_redirect = %s\nproxy_protocol = %t\ncompression = %t\nstatic_immutable = %s\n",
		q(s.HTTPSListen), s.ForceHTTPS, q(s.HTTPRedirect), s.ProxyProtocol, s.Compression, quoteList(s.StaticImmutable))
	if len(s.TrustedProxies) > 0 {
		fmt.Fprintf(&b, "trusted_proxies = %s\n", quoteList(s.TrustedProxies))
	}
	if len(s.Alias) > 0 {
		var aliases []string
		for _, a := range s.Aliases() {
			aliases = append(aliases, q(a[0])+" = "+q(a[1]))
		}
		fmt.Fprintf(&b, "alias = { %s }\n", strings.Join(aliases, ", "))
	}
	fmt.Fprintf(&b, "\n[worker]\nscript = %s\napp_base = %s\nini = %s\ncow = %t\nphp_cgi = %s\nextension = %s\nboot_timeout = %s\nmemory_report_interval = %s\nparanoid = %t\n",
		q(w.Script), q(w.AppBase), q(w.Ini), w.Cow, q(w.PHPCGI), q(w.Extension), q(w.BootTimeout.String()), q(w.MemoryReportInterval.String()), w.Paranoid)
	fmt.Fprintf(&b, "\n[tls]\ncert = %s\nkey = %s\nself_signed = %t\n", q(c.TLS.Cert), q(c.TLS.Key), c.TLS.SelfSigned)
	if a := c.ACME; a.Enabled {
		fmt.Fprintf(&b, "\n[acme]\nenabled = true\ndomains = %s\nemail = %s\ndir = %s\nstaging = %t\ndirectory_url = %s\nca_root = %s\nhttp = %s\n",
			quoteList(a.Domains), q(a.ACMEEmail()), q(a.Dir), a.Staging, q(a.DirectoryURL), q(a.CARoot), q(a.HTTP))
	}
	for _, r := range c.Redirect {
		fmt.Fprintf(&b, "\n[[redirect]]\nfrom = %s\nto = %s\nstatus = %d\n", q(r.From), q(r.To), r.Status)
	}
	if qu := c.Queue; qu.Workers > 0 {
		fmt.Fprintf(&b, "\n[queue]\nworkers = %d\nworkers_max = %d\nscript = %s\ngrace = %s\n", qu.Workers, qu.WorkersMax, q(qu.Script), q(qu.Grace.String()))
	}
	if sc := c.Scheduler; sc.Script != "" {
		fmt.Fprintf(&b, "\n[scheduler]\nscript = %s\ninterval = %s\ngrace = %s\n", q(sc.Script), q(sc.Interval.String()), q(sc.Grace.String()))
	}
	for _, sc := range c.Sidecar {
		fmt.Fprintf(&b, "\n[[sidecar]]\ncommand = %s\nname = %s\ncount = %d\nrestart = %s\ngrace = %s\n",
			q(sc.Command), q(sc.Name), sc.Count, q(sc.Restart), q(sc.Grace.String()))
	}
	return b.String()
}

// quoteList is a TOML array of strings.
func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// INIArgs turns Ini (php.ini lines) into "key=value" settings for php-cgi's -d. Blank lines and
// comments (; or #) are skipped; a line without "=" is an error.
func (w *Worker) INIArgs() ([]string, error) {
	var out []string
	for i, line := range strings.Split(strings.ReplaceAll(w.Ini, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, fmt.Errorf("ini line %d: %q is not \"key = value\"", i+1, line)
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		out = append(out, k+"="+v)
	}
	return out, nil
}
