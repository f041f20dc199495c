package config

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
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
		{name: "max_rss with a unit", src: "[server]\nmax_rss = \"256M\"\n", line: 2, key: "server.max_rss", msg: "want a whole number, got string"},
		{name: "negative max_rss", src: "[server]\n\nmax_rss = -1\n", line: 3, key: "server.max_rss", msg: "-1 is negative"},
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

// appDir makes an application tree: DIR/app/public/index.php, DIR/app/worker.php, DIR/app/tls.pem,
// DIR/app/tls.key and DIR/file.txt. It returns DIR.
func appDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range []string{"app/public/index.php", "app/worker.php", "app/tls.pem", "app/tls.key", "file.txt"} {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("<?php\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestValidate(t *testing.T) {
	const base = "[server]\nroot = \"$DIR/app/public\"\n[worker]\nscript = \"$DIR/app/worker.php\"\n"
	tests := []struct {
		name string
		src  string // $DIR is replaced with appDir's directory
		key  string // "" means Validate must succeed
		msg  string
	}{
		{name: "minimal good", src: base},
		{name: "workers 0", src: base + "[server]\nworkers = 0\n", key: "server.workers", msg: "from 1 to 1024"},
		{name: "workers 100000", src: base + "[server]\nworkers = 100000\n", key: "server.workers", msg: "from 1 to 1024"},
		{name: "listen without port", src: base + "[server]\nlisten = \"localhost\"\n", key: "server.listen", msg: "not host:port"},
		{name: "listen port out of range", src: base + "[server]\nlisten = \"127.0.0.1:99999\"\n", key: "server.listen", msg: "port"},
		{name: "workers \"0\"", src: "[server]\nworkers = \"0\"\nroot = \"$DIR/app/public\"\n[worker]\nscript = \"$DIR/app/worker.php\"\n", key: "server.workers", msg: "from 1 to 1024"},
		{name: "workers -1", src: "[server]\nworkers = -1\nroot = \"$DIR/app/public\"\n[worker]\nscript = \"$DIR/app/worker.php\"\n", key: "server.workers", msg: "got -1"},
		{name: "no worker script: per-request mode", src: "[server]\nroot = \"$DIR/app/public\"\n"},
		{name: "worker script does not exist", src: "[server]\nroot = \"$DIR/app/public\"\n[worker]\nscript = \"$DIR/app/nope.php\"\n", key: "worker.script", msg: "nope.php is not a readable file"},
		{name: "worker script is a directory", src: "[server]\nroot = \"$DIR/app/public\"\n[worker]\nscript = \"$DIR/app\"\n", key: "worker.script", msg: "not a readable file"},
		{name: "cow without script", src: "[server]\nroot = \"$DIR/app/public\"\n[worker]\ncow = true\n", key: "worker.cow", msg: "needs a worker script"},
		{name: "cow with script", src: "[server]\nroot = \"$DIR/app/public\"\n[worker]\ncow = true\nscript = \"$DIR/app/worker.php\"\n"},
		{name: "tls cert without key", src: base + "[tls]\ncert = \"$DIR/app/tls.pem\"\n", key: "tls", msg: "together"},
		{name: "tls key without cert", src: base + "[tls]\nkey = \"$DIR/app/tls.key\"\n", key: "tls", msg: "together"},
		{name: "tls cert missing", src: base + "[tls]\ncert = \"$DIR/app/nope.pem\"\nkey = \"$DIR/app/tls.key\"\n", key: "tls.cert", msg: "nope.pem"},
		{name: "tls good", src: base + "[tls]\ncert = \"$DIR/app/tls.pem\"\nkey = \"$DIR/app/tls.key\"\n"},
		{name: "root is a file", src: "[server]\nroot = \"$DIR/file.txt\"\n[worker]\nscript = \"$DIR/app/worker.php\"\n", key: "server.root", msg: "file.txt is not a directory"},
		{name: "root does not exist", src: "[server]\nroot = \"$DIR/nope\"\n[worker]\nscript = \"$DIR/app/worker.php\"\n", key: "server.root", msg: "is not a directory"},
		{name: "ini line without =", src: base + "ini = \"memory_limit = 1G\\nopcache.enable\\n\"\n", key: "worker.ini", msg: "ini line 2"},
		{name: "ini good", src: base + "ini = \"\"\"\n; comment\nmemory_limit = 1G\n\"\"\"\n"},
		{name: "empty listen", src: base + "[server]\nlisten = \"\"\n", key: "server.listen", msg: "empty"},
		{name: "front escapes root", src: base + "[server]\nfront = \"../x.php\"\n", key: "server.front", msg: "../x.php"},
		{name: "empty front", src: base + "[server]\nfront = \"\"\n", key: "server.front"},
		{name: "negative max_requests", src: base + "[server]\nmax_requests = -1\n", key: "server.max_requests", msg: "negative"},
		{name: "zero max_body_size", src: base + "[server]\nmax_body_size = 0\n", key: "server.max_body_size", msg: "positive"},
		{name: "small max_header_size", src: base + "[server]\nmax_header_size = 1023\n", key: "server.max_header_size", msg: "1K"},
		{name: "negative queue_size", src: base + "[server]\nqueue_size = -1\n", key: "server.queue_size", msg: "negative"},
		{name: "app_base not a directory", src: base + "app_base = \"$DIR/file.txt\"\n", key: "worker.app_base", msg: "is not a directory"},
		{name: "empty php_cgi", src: base + "php_cgi = \"\"\n", key: "worker.php_cgi", msg: "empty"},
		{name: "extension none", src: base + "extension = \"none\"\n"},
		{name: "extension path", src: base + "extension = \"$DIR/file.txt\"\n"},
		{name: "extension missing", src: base + "extension = \"$DIR/askr.so\"\n", key: "worker.extension", msg: "askr.so is not a readable file (build it with `make ext`"},
		{name: "extension directory", src: base + "extension = \"$DIR/app\"\n", key: "worker.extension", msg: "not a readable file"},
		{name: "alias good", src: base + "[server]\nalias = { \"/wp-content/\" = \"$DIR/app\", \"/media\" = \"$DIR/app/public\" }\n"},
		{name: "alias relative dir", src: base + "[server]\nalias = { \"/x/\" = \"app\" }\n", key: "server.alias", msg: "not an absolute directory"},
		{name: "alias missing dir", src: base + "[server]\nalias = { \"/x/\" = \"$DIR/nope\" }\n", key: "server.alias", msg: "nope is not a directory"},
		{name: "alias prefix not a path", src: base + "[server]\nalias = { \"x/\" = \"$DIR/app\" }\n", key: "server.alias", msg: "not a URL path prefix"},
		{name: "alias prefix with a dot segment", src: base + "[server]\nalias = { \"/a/../b/\" = \"$DIR/app\" }\n", key: "server.alias", msg: "not a URL path prefix"},
		{name: "alias of the root", src: base + "[server]\nalias = { \"/\" = \"$DIR/app\" }\n", key: "server.alias", msg: "not a URL path prefix"},
		{name: "alias twice", src: base + "[server]\nalias = { \"/x\" = \"$DIR/app\", \"/x/\" = \"$DIR/app\" }\n", key: "server.alias", msg: "twice"},
		{name: "extension empty", src: base + "extension = \"\"\n", key: "worker.extension", msg: `"auto", "none" or the path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := appDir(t)
			// Sections may repeat in the test sources; merge them by rewriting repeats as TOML allows
			// only one [server] table.
			path := writeTOML(t, mergeSections(strings.ReplaceAll(tt.src, "$DIR", dir)))
			c, err := Load(path)
			if err != nil {
				t.Fatalf("Load(%q) error = %v; want nil", path, err)
			}
			err = c.Validate()
			if tt.key == "" {
				if err != nil {
					t.Fatalf("Validate() of %q error = %v; want nil", path, err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Validate() of %q error = %v; want *config.Error for %s", path, err, tt.key)
			}
			if e.Key != tt.key || e.File != path || e.Line < 1 {
				t.Errorf("Validate() of %q error = %v (key %q, file %q, line %d); want key %q, file %q and a line", path, err, e.Key, e.File, e.Line, tt.key, path)
			}
			if want := fmt.Sprintf("%s:%d: %s: ", path, e.Line, tt.key); !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Validate() of %q error = %v; want %q…%q", path, err, want, tt.msg)
			}
		})
	}
}

// mergeSections joins repeated [section] blocks of src into one per section, in first-seen order.
func mergeSections(src string) string {
	var order []string
	body := map[string]*strings.Builder{}
	cur := ""
	body[cur] = &strings.Builder{}
	order = append(order, cur)
	inMulti := false
	for _, line := range strings.SplitAfter(src, "\n") {
		trim := strings.TrimSpace(line)
		if !inMulti && strings.HasPrefix(trim, "[") {
			cur = trim
			if body[cur] == nil {
				body[cur] = &strings.Builder{}
				order = append(order, cur)
			}
			continue
		}
		if strings.Count(line, `"""`)%2 == 1 {
			inMulti = !inMulti
		}
		body[cur].WriteString(line)
	}
	var b strings.Builder
	for _, s := range order {
		if s != "" {
			b.WriteString(s + "\n")
		}
		b.WriteString(body[s].String())
	}
	return b.String()
}

func TestValidateDerivedDefaults(t *testing.T) {
	dir := appDir(t)
	app := filepath.Join(dir, "app")
	t.Chdir(app)
	// No root: "public" exists in the current directory, so it is the root; relative paths resolve
	// against the current directory; app_base is the parent of the root.
	c := Defaults()
	c.Worker.Script = "worker.php"
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() error = %v; want nil", err)
	}
	// t.TempDir may sit behind a symlink; compare against the resolved current directory.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(wd, "public"); c.Server.Root != want {
		t.Errorf("Validate() Root = %q; want %q", c.Server.Root, want)
	}
	if want := filepath.Join(wd, "worker.php"); c.Worker.Script != want {
		t.Errorf("Validate() Script = %q; want %q", c.Worker.Script, want)
	}
	if c.Worker.AppBase != wd {
		t.Errorf("Validate() AppBase = %q; want %q", c.Worker.AppBase, wd)
	}

	// Without a public directory the root is the current directory.
	t.Chdir(filepath.Join(app, "public"))
	c = Defaults()
	c.Worker.Script = "../worker.php"
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() error = %v; want nil", err)
	}
	if want := filepath.Join(wd, "public"); c.Server.Root != want {
		t.Errorf("Validate() Root = %q; want %q", c.Server.Root, want)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		err  bool
	}{
		{"4096", 4096, false},
		{"0", 0, false},
		{"512k", 512 << 10, false},
		{"512K", 512 << 10, false},
		{"16M", 16 << 20, false},
		{"16m", 16 << 20, false},
		{"1G", 1 << 30, false},
		{"1g", 1 << 30, false},
		{" 2M ", 2 << 20, false},
		{"8Q", 0, true},
		{"", 0, true},
		{"M", 0, true},
		{"-1", 0, true},
		{"-1K", 0, true},
		{"1.5M", 0, true},
		{"1 M", 0, true},
		{"16MB", 0, true},
		{"99999999999999999999", 0, true},
		{"4294967296G", 1 << 62, false}, // 2^62 bytes: the limit
		{"4294967297G", 0, true},
		{"4294967295G", 4294967295 << 30, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("ParseSize(%q) = %d, nil; want an error", tt.in, got)
			} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.in)) {
				t.Errorf("ParseSize(%q) error = %v; want it to quote the input", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
		}
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1000, "1000"},
		{1024, "1K"},
		{1536, "1536"},
		{512 << 10, "512K"},
		{16 << 20, "16M"},
		{1 << 30, "1G"},
		{3 << 30, "3G"},
		{1<<30 + 1<<20, "1025M"},
		{1<<30 + 1, "1073741825"},
	}
	for _, tt := range tests {
		got := tt.in.String()
		if got != tt.want {
			t.Errorf("Size(%d).String() = %q; want %q", int64(tt.in), got, tt.want)
		}
		if back, err := ParseSize(got); err != nil || back != tt.in {
			t.Errorf("ParseSize(Size(%d).String() = %q) = %d, %v; want %d, nil", int64(tt.in), got, back, err, int64(tt.in))
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"30", 30 * time.Second, false},
		{"0", 0, false},
		{" 15 ", 15 * time.Second, false},
		{"500ms", 500 * time.Millisecond, false},
		{"30s", 30 * time.Second, false},
		{"2m", 2 * time.Minute, false},
		{"1h", time.Hour, false},
		{"1m30s", 90 * time.Second, false},
		{"30x", 0, true},
		{"", 0, true},
		{"-1", 0, true},
		{"-5s", 0, true},
		{"1.5", 0, true},
		{"s", 0, true},
		{"thirty", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("ParseDuration(%q) = %v, nil; want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got.D() != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
		}
	}
}

// A number of seconds too large for a time.Duration must be refused, not wrapped around.
func TestParseDurationOverflow(t *testing.T) {
	for _, in := range []string{"10000000000", "18446744074", "9223372037"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, nil; want an out-of-range error", in, got)
		}
		path := writeTOML(t, "[server]\nrequest_timeout = "+in+"\n")
		if c, err := Load(path); err == nil {
			t.Errorf("Load(%q) with request_timeout = %s gives %v, nil; want an out-of-range error", path, in, c.Server.RequestTimeout)
		}
	}
}

func TestDurationString(t *testing.T) {
	if got := Duration(90 * time.Second).String(); got != "1m30s" {
		t.Errorf("Duration(90s).String() = %q; want %q", got, "1m30s")
	}
	if got, err := ParseDuration(Duration(1500 * time.Millisecond).String()); err != nil || got.D() != 1500*time.Millisecond {
		t.Errorf("ParseDuration(Duration(1.5s).String()) = %v, %v; want 1.5s, nil", got, err)
	}
}

func TestParseWorkers(t *testing.T) {
	tests := []struct {
		in   string
		want Workers
		err  bool
	}{
		{"auto", Workers{Auto: true}, false},
		{"AUTO", Workers{Auto: true}, false},
		{" Auto ", Workers{Auto: true}, false},
		{"4", Workers{N: 4}, false},
		{" 12 ", Workers{N: 12}, false},
		// Range checks are Validate's job; ParseWorkers only reads the number.
		{"0", Workers{N: 0}, false},
		{"-1", Workers{N: -1}, false},
		{"", Workers{}, true},
		{"four", Workers{}, true},
		{"4.0", Workers{}, true},
		{"automatic", Workers{}, true},
	}
	for _, tt := range tests {
		got, err := ParseWorkers(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("ParseWorkers(%q) = %+v, nil; want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseWorkers(%q) = %+v, %v; want %+v, nil", tt.in, got, err, tt.want)
		}
	}
}

// Size, Duration and Workers are flag.Values: a flag bound to one reads what the file accepts, says
// the same on a bad value, and leaves the value alone then.
func TestFlagValues(t *testing.T) {
	size, dur, workers := Size(2<<20), Duration(20*time.Second), Workers{N: 3}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&size, "size", "")
	fs.Var(&dur, "dur", "")
	fs.Var(&workers, "workers", "")
	if f := fs.Lookup("size"); f.DefValue != "2M" {
		t.Errorf("Lookup(size).DefValue = %q; want %q", f.DefValue, "2M")
	}
	if err := fs.Parse([]string{"--size", "512k", "--dur", "250ms", "--workers", "auto"}); err != nil {
		t.Fatalf("Parse error = %v; want nil", err)
	}
	if size != 512<<10 || dur.D() != 250*time.Millisecond || !workers.Auto {
		t.Errorf("after Parse: size %v, dur %v, workers %v; want 512K, 250ms, auto", size, dur, workers)
	}
	for _, tt := range []struct {
		v    flag.Value
		in   string
		want error // what Parse* says about in
	}{
		{&size, "8Q", errOf(ParseSize("8Q"))},
		{&dur, "30x", errOf(ParseDuration("30x"))},
		{&dur, "-1", errOf(ParseDuration("-1"))},
		{&workers, "many", errOf(ParseWorkers("many"))},
	} {
		before := tt.v.String()
		err := tt.v.Set(tt.in)
		if err == nil || tt.want == nil || err.Error() != tt.want.Error() {
			t.Errorf("Set(%q) error = %v; want %v", tt.in, err, tt.want)
		}
		if after := tt.v.String(); after != before {
			t.Errorf("Set(%q) changed the value from %q to %q; want it unchanged", tt.in, before, after)
		}
	}
}

func errOf[T any](_ T, err error) error { return err }

func TestWorkersString(t *testing.T) {
	for _, tt := range []struct {
		in   Workers
		want string
	}{{Workers{Auto: true}, "auto"}, {Workers{N: 4}, "4"}, {Workers{Auto: true, N: 3}, "auto"}} {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("%+v.String() = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestWorkerCount(t *testing.T) {
	tests := []struct {
		in   Workers
		want int
	}{
		{Workers{N: 4}, 4},
		{Workers{N: 1}, 1},
		{Workers{Auto: true}, max(1, runtime.GOMAXPROCS(0))},
	}
	for _, tt := range tests {
		s := Server{Workers: tt.in}
		if got := s.WorkerCount(); got != tt.want {
			t.Errorf("Server{Workers: %v}.WorkerCount() = %d; want %d", tt.in, got, tt.want)
		}
	}
}

func TestWorkerCountFollowsGOMAXPROCS(t *testing.T) {
	old := runtime.GOMAXPROCS(3)
	defer runtime.GOMAXPROCS(old)
	s := Server{Workers: Workers{Auto: true}}
	if got := s.WorkerCount(); got != 3 {
		t.Errorf("WorkerCount() with auto and GOMAXPROCS 3 = %d; want 3", got)
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

// --- etc/askr.toml and the struct stay in sync ---

const etcFile = "../../etc/askr.toml"

// documentedKey matches a key line of etc/askr.toml, commented out or not.
var documentedKey = regexp.MustCompile(`^#?\s*([a-z_]+)\s*=\s*(.*)$`)

// arrayHeader matches the commented-out header of an array of tables in etc/askr.toml: an
// uncommented [[redirect]] would be one (empty) table.
var arrayHeader = regexp.MustCompile(`^#\s*\[\[([a-z_]+)\]\]$`)

// etcLines reads etc/askr.toml, skipping the test if it does not exist yet.
func etcLines(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile(etcFile)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s does not exist yet", etcFile)
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(src), "\n")
}

// etcKeys returns, for every documented key of etc/askr.toml, its section-qualified name and the line
// range (inclusive) that holds its assignment; a multi-line """ string spans several lines.
type etcKey struct {
	name        string
	first, last int
	header      int // the line of its commented-out [[array]] header, or -1
}

func etcKeys(lines []string) []etcKey {
	var keys []etcKey
	section, header := "", -1
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if strings.HasPrefix(line, "[") {
			section, header = strings.Trim(line, "[] "), -1
			continue
		}
		if m := arrayHeader.FindStringSubmatch(line); m != nil {
			section, header = m[1], i
			continue
		}
		m := documentedKey.FindStringSubmatch(line)
		if m == nil || section == "" {
			continue
		}
		k := etcKey{name: section + "." + m[1], first: i, last: i, header: header}
		if strings.HasPrefix(m[2], `"""`) && strings.Count(m[2], `"""`) == 1 {
			for k.last++; k.last < len(lines) && !strings.Contains(lines[k.last], `"""`); k.last++ {
			}
		}
		keys = append(keys, k)
		i = k.last
	}
	return keys
}

func uncomment(line string) string {
	line = strings.TrimPrefix(line, "#")
	return strings.TrimPrefix(line, " ")
}

func TestEtcAskrTomlLoads(t *testing.T) {
	lines := etcLines(t)
	if _, err := Load(etcFile); err != nil {
		t.Fatalf("Load(%q) error = %v; want nil", etcFile, err)
	}
	keys := etcKeys(lines)
	if len(keys) == 0 {
		t.Fatalf("%s documents no keys", etcFile)
	}
	all := append([]string(nil), lines...)
	for _, k := range keys {
		t.Run(k.name, func(t *testing.T) {
			one := append([]string(nil), lines...)
			for i := k.first; i <= k.last; i++ {
				one[i] = uncomment(one[i])
				all[i] = uncomment(all[i])
			}
			if k.header >= 0 {
				one[k.header] = uncomment(lines[k.header])
				all[k.header] = uncomment(lines[k.header])
			}
			path := writeTOML(t, strings.Join(one, "\n"))
			if _, err := Load(path); err != nil {
				t.Errorf("Load(%q) with %s uncommented error = %v; want nil", etcFile, k.name, err)
			}
		})
	}
	// All keys at once; the ones documented with their default must give the default.
	path := writeTOML(t, strings.Join(all, "\n"))
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%q) with every key uncommented error = %v; want nil", etcFile, err)
	}
	// These show an example rather than the default (the default is none or derived).
	examples := map[string]bool{"Root": true, "Alias": true, "Script": true, "AppBase": true, "Ini": true, "Cert": true, "Key": true}
	def := Defaults()
	for _, sec := range []struct{ got, want reflect.Value }{
		{reflect.ValueOf(c.Server), reflect.ValueOf(def.Server)},
		{reflect.ValueOf(c.Worker), reflect.ValueOf(def.Worker)},
		{reflect.ValueOf(c.TLS), reflect.ValueOf(def.TLS)},
	} {
		for i := 0; i < sec.got.NumField(); i++ {
			f := sec.got.Type().Field(i)
			if examples[f.Name] {
				continue
			}
			if got, want := sec.got.Field(i).Interface(), sec.want.Field(i).Interface(); !reflect.DeepEqual(got, want) {
				t.Errorf("%s documents %s = %v; the default is %v", etcFile, f.Tag.Get("toml"), got, want)
			}
		}
	}
}

func TestEtcAskrTomlDocumentsEveryKey(t *testing.T) {
	lines := etcLines(t)
	documented := map[string]bool{}
	for _, k := range etcKeys(lines) {
		documented[k.name] = true
	}
	sections := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(strings.Join(lines, "\n")))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "[") {
			sections[strings.Trim(l, "[] ")] = true
		} else if m := arrayHeader.FindStringSubmatch(l); m != nil {
			sections[m[1]] = true
		}
	}
	ct := reflect.TypeOf(Config{})
	for i := 0; i < ct.NumField(); i++ {
		sf := ct.Field(i)
		sec := sf.Tag.Get("toml")
		if sec == "" || sec == "-" {
			continue
		}
		if !sections[sec] {
			t.Errorf("%s has no [%s] section for Config.%s", etcFile, sec, sf.Name)
		}
		st := sf.Type
		if st.Kind() == reflect.Slice { // an array of tables
			st = st.Elem()
		}
		for j := 0; j < st.NumField(); j++ {
			f := st.Field(j)
			key := f.Tag.Get("toml")
			if key == "" || key == "-" {
				continue
			}
			if !documented[sec+"."+key] {
				t.Errorf("%s does not document %s.%s (%s.%s): want a %q or %q line in [%s]",
					etcFile, sec, key, st.Name(), f.Name, key+" =", "# "+key+" =", sec)
			}
		}
	}
}

// Every semantic error names the file and line of its key when the file set it (point 2 of issue
// 11); a key the file does not set, or a flag overrode, names neither.
func TestValidateErrorLines(t *testing.T) {
	const head = "# app\n[server]\nroot = \"$DIR/app/public\"\n"
	tests := []struct {
		src  string // $DIR is appDir's directory
		want string // the whole error; $FILE is the file, $DIR as above
	}{
		{head + "listen = \"\"\n", `$FILE:4: server.listen: must not be empty`},
		{head + "listen = \"localhost\"\n", `$FILE:4: server.listen: "localhost" is not host:port (e.g. "127.0.0.1:8000" or "[::]:80")`},
		{"[server]\n\nroot = \"$DIR/nope\"\n", `$FILE:3: server.root: $DIR/nope is not a directory`},
		{head + "front = \"../x.php\"\n", `$FILE:4: server.front: "../x.php" is not a file name under the root`},
		{head + "\nworkers = 0\n", `$FILE:5: server.workers: must be from 1 to 1024, or "auto"; got 0`},
		{head + "max_requests = -1\n", `$FILE:4: server.max_requests: must not be negative`},
		{head + "max_body_size = 0\n", `$FILE:4: server.max_body_size: must be positive`},
		{head + "max_header_size = 100\n", `$FILE:4: server.max_header_size: must be at least 1K`},
		{head + "queue_size = -1\n", `$FILE:4: server.queue_size: must not be negative`},
		{head + "alias = { \"x\" = \"/tmp\" }\n", `$FILE:4: server.alias: "x" is not a URL path prefix such as "/wp-content/"`},
		{head + "[worker]\ncow = true\n", `$FILE:5: worker.cow: CoW mode needs a worker script (--worker-script or [worker] script); without one askrd serves per request`},
		{head + "[worker]\nscript = \"$DIR/nope.php\"\n", `$FILE:5: worker.script: $DIR/nope.php is not a readable file`},
		{head + "[worker]\napp_base = \"$DIR/file.txt\"\n", `$FILE:5: worker.app_base: $DIR/file.txt is not a directory`},
		{head + "[worker]\nphp_cgi = \"\"\n", `$FILE:5: worker.php_cgi: must not be empty`},
		{head + "[worker]\nini = \"\"\"\nmemory_limit = 1G\nopcache\n\"\"\"\n", `$FILE:5: worker.ini: ini line 2: "opcache" is not "key = value"`},
		{head + "[worker]\nextension = \"\"\n", `$FILE:5: worker.extension: must be "auto", "none" or the path of askr.so`},
		{head + "\n[tls]\ncert = \"$DIR/app/tls.pem\"\n", `$FILE:5: tls: cert and key must be given together`},
		{head + "[tls]\ncert = \"$DIR/nope.pem\"\nkey = \"$DIR/app/tls.key\"\n", `$FILE:5: tls.cert: stat $DIR/nope.pem: no such file or directory`},
		// [[redirect]]: the line within the table at fault, or its header.
		{head + "[[redirect]]\nfrom = \"a.example\"\nto = \"https://b.example\"\n\n[[redirect]]\nfrom = \"c.example\"\nto = \"d.example\"\n", `$FILE:10: redirect.to: "d.example" is not an http or https URL without a query ("https://example.com")`},
		{head + "[[redirect]]\nfrom = \"a.example\"\nto = \"https://b.example\"\n[[redirect]]\nto = \"https://b.example\"\n", `$FILE:7: redirect.from: "" is not a host name, or "*." and a host name`},
		{head + "[[redirect]]\nfrom = \"https://a.example\"\nto = \"https://b.example\"\n", `$FILE:5: redirect.from: "https://a.example" is not a host name, or "*." and a host name`},
		{head + "[[redirect]]\nfrom = \"*.a.example\"\nto = \"https://b.example/?x=1\"\n", `$FILE:6: redirect.to: "https://b.example/?x=1" is not an http or https URL without a query ("https://example.com")`},
		{head + "[[redirect]]\nfrom = \"a.example\"\nto = \"https://b.example\"\nstatus = 200\n", `$FILE:7: redirect.status: 200 is not a redirect status (301, 302, 303, 307 or 308)`},
		{head + "[[redirect]]\nfrom = \"*.a.example\"\nto = \"https://b.example/shop/\"\nstatus = 301\n", ``},
		// Dotted keys outside their table.
		{"server.root = \"$DIR/app/public\"\nserver.workers = 2000\n", `$FILE:2: server.workers: must be from 1 to 1024, or "auto"; got 2000`},
		{"server.root = \"$DIR/app/public\"\ntls.key = \"$DIR/app/tls.key\"\n", `$FILE:2: tls: cert and key must be given together`},
		// A key the file does not set: no file, no line.
		{"[server]\nroot = \"$DIR/app/public\"\n", ``},
	}
	for _, tt := range tests {
		dir := appDir(t)
		path := writeTOML(t, strings.ReplaceAll(tt.src, "$DIR", dir))
		want := strings.NewReplacer("$FILE", path, "$DIR", dir).Replace(tt.want)
		c, err := Load(path)
		if err != nil {
			t.Fatalf("Load(%q) error = %v; want nil", path, err)
		}
		err = c.Validate()
		if want == "" {
			if err != nil {
				t.Errorf("Validate() of\n%s\nerror = %v; want nil", tt.src, err)
			}
			continue
		}
		if err == nil || err.Error() != want {
			t.Errorf("Validate() of\n%s\nerror = %v\nwant    %s", tt.src, err, want)
		}
	}

	// Settings that come from flags (cli calls Overridden for each) or from nowhere name no file.
	dir := appDir(t)
	path := writeTOML(t, strings.ReplaceAll("[server]\nroot = \"$DIR/app/public\"\nworkers = 4\n", "$DIR", dir))
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c.Server.Workers = Workers{N: 0}
	c.Overridden("server.workers")
	if want := `server.workers: must be from 1 to 1024, or "auto"; got 0`; c.Validate() == nil || c.Validate().Error() != want {
		t.Errorf("Validate() with workers overridden by a flag: error = %v; want %s", c.Validate(), want)
	}
	c = Defaults()
	c.Server.Root = filepath.Join(dir, "nope")
	if want := "server.root: " + filepath.Join(dir, "nope") + " is not a directory"; c.Validate() == nil || c.Validate().Error() != want {
		t.Errorf("Validate() of flags alone: error = %v; want %s", c.Validate(), want)
	}
}

// fieldDocs returns the doc comment of every field of the section structs in config.go, by
// section-qualified key ("server.listen"), as one line.
func fieldDocs(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "config.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{} // type name → section
	ct := reflect.TypeFor[Config]()
	for i := 0; i < ct.NumField(); i++ {
		if sec := ct.Field(i).Tag.Get("toml"); sec != "" && sec != "-" {
			typ := ct.Field(i).Type
			if typ.Kind() == reflect.Slice {
				typ = typ.Elem()
			}
			sections[typ.Name()] = sec
		}
	}
	docs := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || sections[ts.Name.Name] == "" {
			return true
		}
		for _, fl := range ts.Type.(*ast.StructType).Fields.List {
			if fl.Tag == nil {
				continue
			}
			tag, _ := strconv.Unquote(fl.Tag.Value)
			key := reflect.StructTag(tag).Get("toml")
			docs[sections[ts.Name.Name]+"."+key] = strings.Join(strings.Fields(fl.Doc.Text()), " ")
		}
		return false
	})
	return docs
}

// etcComments returns the comment above every documented key of etc/askr.toml, by
// section-qualified key, as one line. Keys in one block share its comment.
func etcComments(lines []string) map[string]string {
	out := map[string]string{}
	var block []string
	var keys []string
	section := ""
	end := func() {
		for _, k := range keys {
			out[k] = strings.Join(strings.Fields(strings.Join(block, " ")), " ")
		}
		block, keys = nil, nil
	}
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		switch {
		case strings.HasPrefix(line, "["):
			end()
			section = strings.Trim(line, "[] ")
		case arrayHeader.MatchString(line):
			end()
			section = arrayHeader.FindStringSubmatch(line)[1]
		case line == "" || line == "#":
			end()
		case section != "" && documentedKey.MatchString(line):
			m := documentedKey.FindStringSubmatch(line)
			keys = append(keys, section+"."+m[1])
			if strings.HasPrefix(m[2], `"""`) && strings.Count(m[2], `"""`) == 1 {
				for i++; i < len(lines) && !strings.Contains(lines[i], `"""`); i++ {
				}
			}
		case strings.HasPrefix(line, "#") && len(keys) == 0:
			block = append(block, strings.TrimPrefix(line, "#"))
		}
	}
	end()
	return out
}

// defaultSentence matches the closing "Default: …" sentence of a field's doc comment.
var defaultSentence = regexp.MustCompile(` Default: [^\n]*$`)

// etcWant is what etc/askr.toml's comment above key must say, given the field's doc comment: the
// same text with the key in place of the field's name; the closing "Default: …" sentence may be
// left out, as the key's line shows the default.
func etcWant(key, doc, etc string) string {
	_, name, _ := strings.Cut(key, ".")
	_, rest, _ := strings.Cut(doc, " ")
	want := name + " " + rest
	if !strings.Contains(etc, "Default:") {
		want = defaultSentence.ReplaceAllString(want, "")
	}
	return want
}

// The comment of every key in etc/askr.toml (and so in the man page) repeats the struct field's doc
// comment, the reference; "(askr-go)" marks exactly the keys the original askr does not have.
func TestEtcAskrTomlCommentsMatchFieldDocs(t *testing.T) {
	lines := etcLines(t)
	docs := fieldDocs(t)
	comments := etcComments(lines)
	if len(docs) == 0 || len(comments) == 0 {
		t.Fatalf("found %d field docs and %d comments in %s; want some", len(docs), len(comments), etcFile)
	}
	for key, doc := range docs {
		etc, ok := comments[key]
		if !ok {
			continue // TestEtcAskrTomlDocumentsEveryKey reports it
		}
		sec, _, _ := strings.Cut(key, ".")
		original := slices.ContainsFunc(originalKeys, func(k originalKey) bool { return k.key == key || k.key == sec })
		marked := strings.HasPrefix(etc, "(askr-go) ")
		if marked == original {
			t.Errorf("%s: %s is marked (askr-go) = %t; want %t (the original askr has it: %t)", etcFile, key, marked, !original, original)
		}
		etc = strings.TrimPrefix(etc, "(askr-go) ")
		if want := etcWant(key, doc, etc); etc != want {
			t.Errorf("%s: the comment of %s\n%s\nwant (the doc comment of its field, with %q for the field's name)\n%s", etcFile, key, etc, key[strings.IndexByte(key, '.')+1:], want)
		}
	}
}

// The packaged /etc/askr.toml (packaging/debian/askr.toml) is etc/askr.toml with the welcome app's
// paragraph and its two settings (app_base is root's parent): a key documented in one and not the other fails here, before
// the package build's own check (debian/rules) does.
func TestPackagedAskrTomlFollowsEtc(t *testing.T) {
	etc, err := os.ReadFile(etcFile)
	if err != nil {
		t.Fatal(err)
	}
	// packaging/debian/ in the repository; debian/ in the package's source tree.
	deb, err := os.ReadFile(filepath.Join(filepath.Dir(etcFile), "..", "packaging", "debian", "askr.toml"))
	if errors.Is(err, os.ErrNotExist) {
		deb, err = os.ReadFile(filepath.Join(filepath.Dir(etcFile), "..", "debian", "askr.toml"))
	}
	if err != nil {
		t.Fatal(err)
	}
	welcome := map[string]bool{
		`root = "/usr/share/askr/welcome/public"`:       true,
		`script = "/usr/share/askr/welcome/worker.php"`: true,
	}
	var kept []string
	inParagraph := false
	for _, line := range strings.Split(string(deb), "\n") {
		switch {
		case strings.HasPrefix(line, "# As installed by the askr package"):
			inParagraph = true
			continue
		case inParagraph:
			inParagraph = line != "#"
			continue
		case welcome[line]:
			continue
		}
		kept = append(kept, line)
	}
	want := strings.Split(string(etc), "\n")
	if !slices.Equal(kept, want) {
		for i := 0; i < max(len(kept), len(want)); i++ {
			var k, w string
			if i < len(kept) {
				k = kept[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if k != w {
				t.Fatalf("packaging/debian/askr.toml differs from %s at line %d of what remains of it: %q; want %q", etcFile, i+1, k, w)
			}
		}
	}
}
