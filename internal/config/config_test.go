package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeTOML writes src to a fresh askr.toml and returns its path.
func writeTOML(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "askr.toml")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadBad(t *testing.T) {
	tests := []struct {
		name string
		src  string // inline file; or
		file string // a file under testdata/
		line int    // 0: the error need not name a line; -1: some line
		key  string
		msg  string // substring of Error()
	}{
		{name: "unknown top-level key", src: "bogus = 1\n", line: 1, key: "bogus", msg: "unknown key"},
		{name: "unknown key in server", src: "[server]\nlisten = \"x\"\nbogus = 1\n", line: 3, key: "server.bogus", msg: "unknown key"},
		{name: "unknown key in worker", src: "[worker]\n\n\nscripts = \"w.php\"\n", line: 4, key: "worker.scripts", msg: "unknown key"},
		{name: "unknown key in tls", src: "[tls]\ncert = \"c\"\nkey = \"k\"\nca = \"x\"\n", line: 4, key: "tls.ca", msg: "unknown key"},
		{name: "unknown section", src: "[server]\n\n[nope]\nx = 1\n", line: 3, key: "nope", msg: "unknown key"},
		{name: "unknown empty section", src: "# comment\n[nope]\n", line: 2, key: "nope", msg: "unknown key"},
		{name: "unknown subsection", src: "[server]\n[server.extra]\n", line: 2, key: "server.extra", msg: "unknown key"},
		{name: "unknown key, spaced table header", src: "[ server ]\n  bogus   =   1\n", line: 2, key: "server.bogus", msg: "unknown key"},
		{name: "unknown quoted key", src: "[server]\n\"bogus\" = 1\n", line: 2, key: "server.bogus", msg: "unknown key"},
		{name: "unknown dotted key", src: "[server]\nbogus.x = 1\n", line: 2, key: "server.bogus.x", msg: "unknown key"},
		{
			name: "unknown key after commented table header", src: "[server] # main settings\nbogus = 1\n", line: 2, key: "server.bogus", msg: "unknown key",
		},
		{
			name: "unknown section with comment", src: "[nope] # x\n", line: 1, key: "nope", msg: "unknown key",
		},
		{name: "unknown key testdata", file: "testdata/unknown-key.toml", line: 5, key: "server.max_request", msg: "unknown key"},
		{name: "workers bool", src: "[server]\nworkers = true\n", line: 2, key: "server.workers", msg: "got bool"},
		{name: "workers bool testdata", file: "testdata/wrong-type.toml", line: 3, key: "server.workers", msg: "got bool"},
		{name: "workers word", src: "[server]\nworkers = \"many\"\n", line: 2, key: "server.workers", msg: `"many"`},
		{name: "workers float", src: "[server]\nworkers = 2.5\n", line: 2, key: "server.workers", msg: "got float64"},
		{
			name: "max_requests string", src: "[server]\nmax_requests = \"x\"\n", line: 2, key: "server.max_requests", msg: "incompatible types",
		},
		{
			name: "https int", src: "[server]\nhttps = 1\n", line: 2, key: "server.https", msg: "incompatible types",
		},
		{
			name: "section is a value", src: "# c\nserver = 1\n", line: 2, key: "server", msg: "server",
		},
		{name: "syntax: missing value", src: "[server]\nlisten = \n", line: 2, key: "server.listen", msg: "expected value"},
		{name: "syntax: unterminated string", file: "testdata/syntax-error.toml", line: 3, msg: "newline"},
		{name: "syntax: unclosed table", src: "[server]\nlisten = \"x\"\n[worker\n", line: -1, msg: "table name"},
		{name: "syntax: duplicate key", src: "[server]\nlisten = \"x\"\nlisten = \"y\"\n", line: 3, msg: "listen"},
		{name: "bad size", src: "[server]\nmax_body_size = \"8Q\"\n", line: 2, key: "server.max_body_size", msg: `"8Q" is not a size`},
		{name: "negative size", src: "[server]\nmax_body_size = -1\n", line: 2, key: "server.max_body_size", msg: "negative"},
		{name: "size bool", src: "[server]\nbody_buffer_size = false\n", line: 2, key: "server.body_buffer_size", msg: "got bool"},
		{name: "bad duration", src: "[server]\nheader_read_timeout = \"30x\"\n", line: 2, key: "server.header_read_timeout", msg: `"30x" is not a duration`},
		{name: "negative duration", src: "[server]\nidle_timeout = -5\n", line: 2, key: "server.idle_timeout", msg: "negative"},
		{name: "negative duration string", src: "[server]\nqueue_timeout = \"-5s\"\n", line: 2, key: "server.queue_timeout", msg: `"-5s"`},
		{name: "negative seconds string", src: "[worker]\nboot_timeout = \"-5\"\n", line: 2, key: "worker.boot_timeout", msg: "negative"},
		{name: "float duration", src: "[server]\nrequest_timeout = 1.5\n", line: 2, key: "server.request_timeout", msg: "got float64"},
		// Keys of the original askr.toml keep the original's types.
		{name: "max_rss with a unit", src: "[server]\nmax_rss = \"256M\"\n", line: 2, key: "server.max_rss", msg: "incompatible types"},
		{name: "shadow_sample out of range", src: "[server]\nshadow_sample = 300\n", line: 2, key: "server.shadow_sample", msg: "out of range"},
		{name: "sandbox_write a string", src: "[server]\nsandbox_write = \"/tmp\"\n", line: 2, key: "server.sandbox_write", msg: "incompatible types"},
		{name: "sandbox a string", src: "[server]\nsandbox = \"yes\"\n", line: 2, key: "server.sandbox", msg: "incompatible types"},
		{name: "admin listen a number", src: "[admin]\nlisten = 9000\n", line: 2, key: "admin.listen", msg: "incompatible types"},
		{name: "canary_max_error_rate a string", src: "[reload]\ncanary_max_error_rate = \"2\"\n", line: 2, key: "reload.canary_max_error_rate", msg: "incompatible types"},
		{name: "site hosts a string", src: "[[site]]\nhosts = \"a.example\"\n", line: 2, key: "site.hosts", msg: "incompatible types"},
		{name: "unknown key in an original section", src: "[admin]\nlisten = \"127.0.0.1:9000\"\nport = 9000\n", line: 3, key: "admin.port", msg: "unknown key"},
		{name: "unknown key in an array of tables", src: "[[redirect]]\nfrom = \"a\"\nto = \"b\"\n[[redirect]]\nfrom = \"c\"\nstatus = 301\ncode = 301\n", line: 7, key: "redirect.code", msg: "unknown key"},
		{name: "unknown key in cache.rule", src: "[cache]\n[[cache.rule]]\npath = \"/x\"\nttl = 5\nmaxage = 5\n", line: 5, key: "cache.rule.maxage", msg: "unknown key"},
		{name: "unknown original-like section", src: "[metrics]\nlisten = \"x\"\n", line: 1, key: "metrics", msg: "unknown key"},
		{name: "unknown key after a multi-line string", src: "[worker]\nini = \"\"\"\nbogus = 1\n\"\"\"\nbogus = 2\n", line: 5, key: "worker.bogus", msg: "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.file
			if path == "" {
				path = writeTOML(t, tt.src)
			}
			_, err := Load(path)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Load(%q) error = %v (%T); want *config.Error", path, err, err)
			}
			if e.File != path {
				t.Errorf("Load(%q) error File = %q; want %q", path, e.File, path)
			}
			if tt.line < 0 && (e.Line < 1 || !strings.HasPrefix(err.Error(), fmt.Sprintf("%s:%d: ", path, e.Line))) {
				t.Errorf("Load(%q) error = %v; want it to name file:line", path, err)
			}
			if tt.line > 0 {
				if e.Line != tt.line {
					t.Errorf("Load(%q) error = %v; want line %d (got Line %d)", path, err, tt.line, e.Line)
				}
				if want := fmt.Sprintf("%s:%d: ", path, tt.line); !strings.HasPrefix(err.Error(), want) {
					t.Errorf("Load(%q) error = %v; want it to start with %q", path, err, want)
				}
			}
			if tt.key != "" {
				if e.Key != tt.key {
					t.Errorf("Load(%q) error Key = %q; want %q", path, e.Key, tt.key)
				}
				if !strings.Contains(err.Error(), tt.key+": ") {
					t.Errorf("Load(%q) error = %v; want it to name %q", path, err, tt.key)
				}
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Load(%q) error = %v; want it to contain %q", path, err, tt.msg)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.toml")
	_, err := Load(path)
	var e *Error
	if !errors.As(err, &e) || e.File != path || !strings.Contains(err.Error(), path) {
		t.Fatalf("Load(%q) error = %v; want a *config.Error naming the file", path, err)
	}
}

func TestLoadGood(t *testing.T) {
	def := Defaults()
	tests := []struct {
		name  string
		src   string
		file  string
		check func(t *testing.T, c Config)
	}{
		{
			name: "empty file gives the defaults", src: "",
			check: func(t *testing.T, c Config) {
				want := Defaults()
				want.File, want.lines = c.File, c.lines
				if !reflect.DeepEqual(c, want) {
					t.Errorf("got %+v; want the defaults %+v", c, want)
				}
			},
		},
		{
			name: "original askr file", file: "testdata/original-askr.toml",
			check: func(t *testing.T, c Config) {
				s, w := c.Server, c.Worker
				if s.Listen != "0.0.0.0:8080" || s.Root != "testdata/app/public" || s.Front != "index.php" {
					t.Errorf("listen, root, front = %q, %q, %q", s.Listen, s.Root, s.Front)
				}
				if !s.Workers.Auto || s.MaxRequests != 500 || s.MaxBodySize != 16<<20 {
					t.Errorf("workers, max_requests, max_body_size = %v, %d, %d", s.Workers, s.MaxRequests, s.MaxBodySize)
				}
				if s.HeaderReadTimeout.D() != 15*time.Second {
					t.Errorf("header_read_timeout = %v; want 15s", s.HeaderReadTimeout)
				}
				if w.Script != "testdata/app/worker.php" || w.AppBase != "testdata/app" {
					t.Errorf("script, app_base = %q, %q", w.Script, w.AppBase)
				}
				if w.Ini != "memory_limit = 256M\nopcache.enable = 1\n" {
					t.Errorf("ini = %q", w.Ini)
				}
				if c.TLS.Cert != "testdata/app/tls.pem" || c.TLS.Key != "testdata/app/tls.key" || c.TLS.SelfSigned {
					t.Errorf("tls = %+v", c.TLS)
				}
				// Keys the file leaves out keep their defaults.
				if s.IdleTimeout != def.Server.IdleTimeout || s.QueueSize != def.Server.QueueSize ||
					s.BodyBufferSize != def.Server.BodyBufferSize || w.PHPCGI != def.Worker.PHPCGI {
					t.Errorf("defaults not kept: %+v", c)
				}
			},
		},
		{
			name: "workers string number", src: "[server]\nworkers = \"4\"\n",
			check: func(t *testing.T, c Config) {
				if c.Server.Workers != (Workers{N: 4}) {
					t.Errorf("workers = %+v; want 4", c.Server.Workers)
				}
			},
		},
		{
			name: "workers number", src: "[server]\nworkers = 4\n",
			check: func(t *testing.T, c Config) {
				if c.Server.Workers != (Workers{N: 4}) {
					t.Errorf("workers = %+v; want 4", c.Server.Workers)
				}
			},
		},
		{
			name: "workers AUTO", src: "[server]\nworkers = \"AUTO\"\n",
			check: func(t *testing.T, c Config) {
				if !c.Server.Workers.Auto {
					t.Errorf("workers = %+v; want auto", c.Server.Workers)
				}
			},
		},
		{
			name: "durations", src: "[server]\nheader_read_timeout = \"500ms\"\nidle_timeout = \"2m\"\nrequest_timeout = 30\nqueue_timeout = \"1m30s\"\nshutdown_timeout = 0\n[worker]\nboot_timeout = \"10\"\n",
			check: func(t *testing.T, c Config) {
				s := c.Server
				for _, d := range []struct {
					name      string
					got, want time.Duration
				}{
					{"header_read_timeout", s.HeaderReadTimeout.D(), 500 * time.Millisecond},
					{"idle_timeout", s.IdleTimeout.D(), 2 * time.Minute},
					{"request_timeout", s.RequestTimeout.D(), 30 * time.Second},
					{"queue_timeout", s.QueueTimeout.D(), 90 * time.Second},
					{"shutdown_timeout", s.ShutdownTimeout.D(), 0},
					{"boot_timeout", c.Worker.BootTimeout.D(), 10 * time.Second},
				} {
					if d.got != d.want {
						t.Errorf("%s = %v; want %v", d.name, d.got, d.want)
					}
				}
			},
		},
		{
			name: "sizes", src: "[server]\nmax_body_size = \"512k\"\nbody_buffer_size = \"1G\"\nmax_header_size = 4096\n",
			check: func(t *testing.T, c Config) {
				s := c.Server
				if s.MaxBodySize != 512<<10 || s.BodyBufferSize != 1<<30 || s.MaxHeaderSize != 4096 {
					t.Errorf("sizes = %d, %d, %d; want %d, %d, 4096", s.MaxBodySize, s.BodyBufferSize, s.MaxHeaderSize, 512<<10, 1<<30)
				}
			},
		},
		{
			name: "paranoid", src: "[worker]\nparanoid = true\n",
			check: func(t *testing.T, c Config) {
				if !c.Worker.Paranoid || len(c.Notices) != 0 {
					t.Errorf("paranoid = true: Worker.Paranoid = %t, notices %v; want true and none", c.Worker.Paranoid, c.Notices)
				}
				if d := Defaults(); d.Worker.Paranoid {
					t.Errorf("Defaults().Worker.Paranoid = true; want false")
				}
			},
		},
		{
			name: "every askr-go key", src: `
[server]
https = true
queue_size = 7
[worker]
cow = true
php_cgi = "/usr/bin/php-cgi8.2"
`,
			check: func(t *testing.T, c Config) {
				if !c.Server.HTTPS || c.Server.QueueSize != 7 || !c.Worker.Cow || c.Worker.PHPCGI != "/usr/bin/php-cgi8.2" {
					t.Errorf("got %+v", c)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.file
			if path == "" {
				path = writeTOML(t, tt.src)
			}
			c, err := Load(path)
			if err != nil {
				t.Fatalf("Load(%q) error = %v; want nil", path, err)
			}
			if c.File != path {
				t.Errorf("Load(%q).File = %q; want %q", path, c.File, path)
			}
			tt.check(t, c)
		})
	}
}

func TestINIArgs(t *testing.T) {
	tests := []struct {
		ini  string
		want []string
		err  string // substring; "" means no error
	}{
		{ini: "", want: nil},
		{ini: "memory_limit = 256M", want: []string{"memory_limit=256M"}},
		{ini: "memory_limit=256M\nopcache.enable = 1\n", want: []string{"memory_limit=256M", "opcache.enable=1"}},
		{ini: "\r\n; a comment\r\n# another\r\n  display_errors = Off  \r\n", want: []string{"display_errors=Off"}},
		{ini: `error_log = "/var/log/php errors.log"`, want: []string{"error_log=/var/log/php errors.log"}},
		{ini: `x = "`, want: []string{`x="`}},
		{ini: "auto_prepend_file =", want: []string{"auto_prepend_file="}},
		{ini: "a = b = c", want: []string{"a=b = c"}},
		{ini: "memory_limit = 1G\nopcache.enable\n", err: `ini line 2: "opcache.enable"`},
		{ini: "= 1", err: "ini line 1"},
	}
	for _, tt := range tests {
		w := Worker{Ini: tt.ini}
		got, err := w.INIArgs()
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("INIArgs(%q) = %q, %v; want error containing %q", tt.ini, got, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("INIArgs(%q) = %q, %v; want %q, nil", tt.ini, got, err, tt.want)
		}
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "a.toml", Line: 3, Key: "server.x", Msg: "unknown key"}, "a.toml:3: server.x: unknown key"},
		{Error{File: "a.toml", Key: "server.x", Msg: "bad"}, "a.toml: server.x: bad"},
		{Error{Key: "--workers", Msg: "bad"}, "--workers: bad"},
		{Error{File: "a.toml", Line: 2, Msg: "syntax"}, "a.toml:2: syntax"},
		{Error{Msg: "plain"}, "plain"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q; want %q", tt.e, got, tt.want)
		}
	}
}

// Dump's output is itself a valid askr.toml that loads back to the same settings.
func TestDumpRoundTrip(t *testing.T) {
	dir := appDir(t)
	src := strings.ReplaceAll(`[server]
listen = "0.0.0.0:9000"
root = "$DIR/app/public"
front = "app.php"
workers = 3
max_requests = 100
max_body_size = "8M"
body_buffer_size = 4096
max_header_size = "32K"
header_read_timeout = "500ms"
idle_timeout = "2m"
request_timeout = 0
queue_size = 10
queue_timeout = 5
shutdown_timeout = "1m30s"
https = true
https_listen = "127.0.0.1:8443"
force_https = true
trusted_proxies = ["10.0.0.0/8", "::1"]
proxy_protocol = true
compression = false
static_immutable = ["/build/", "/assets/"]
alias = { "/media" = "$DIR/app/public/", "/wp-content/" = "$DIR/app" }
[worker]
script = "$DIR/app/worker.php"
app_base = "$DIR/app"
ini = "memory_limit = 1G\nx = \"y z\"\n"
php_cgi = "/usr/bin/php-cgi"
extension = "$DIR/file.txt"
boot_timeout = 20
[tls]
cert = "$DIR/app/tls.pem"
key = "$DIR/app/tls.key"
[[redirect]]
from = "www.example.com"
to = "https://example.com"
[[redirect]]
from = "*.old.example"
to = "http://new.example/x/"
status = 302
[queue]
workers = 2
workers_max = 4
script = "$DIR/app/worker.php"
grace = "2m"
[scheduler]
script = "$DIR/app/worker.php"
interval = 5
[[sidecar]]
command = "node ssr.mjs --port 13714"
[[sidecar]]
command = "php artisan reverb:start"
name = "reverb"
count = 2
restart = "on-failure"
grace = "1m"
`, "$DIR", dir)
	c, err := Load(writeTOML(t, src))
	if err != nil {
		t.Fatalf("Load error = %v; want nil", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() error = %v; want nil", err)
	}
	dump := c.Dump()
	path := writeTOML(t, dump)
	back, err := Load(path)
	if err != nil {
		t.Fatalf("Load(Dump()) error = %v; want nil\n%s", err, dump)
	}
	back.File, c.File = "", ""
	back.lines, c.lines = nil, nil
	if !reflect.DeepEqual(back, c) {
		t.Errorf("Load(Dump()) = %+v; want %+v\n%s", back, c, dump)
	}
	if !strings.Contains(dump, "workers = \"3\" # resolves to 3\n") {
		t.Errorf("Dump() = %s; want a workers line resolving to 3", dump)
	}
}
