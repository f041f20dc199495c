package cli

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/config"
)

// Every case here must fail configuration before serve would bind a socket.
func TestMainServeConfigErrors(t *testing.T) {
	clearEnv(t)
	script := "testdata/app/worker.php"
	tests := []struct {
		args []string
		want []string // substrings of stderr
	}{
		{[]string{"serve", "--workers", "0", "--worker-script", script}, []string{"server.workers", "from 1 to 1024"}},
		{[]string{"serve", "--workers", "-1", "--worker-script", script}, []string{"server.workers"}},
		{[]string{"serve", "--workers", "many", "--worker-script", script}, []string{"--workers: ", `"many"`}},
		{[]string{"serve", "--cow"}, []string{"worker.cow", "needs a worker script"}},
		{[]string{"serve", "--max-body-size", "8Q"}, []string{"--max-body-size: ", `"8Q"`}},
		{[]string{"serve", "--header-read-timeout", "30x", "--worker-script", script}, []string{"--header-read-timeout: ", `"30x"`}},
		{[]string{"serve", "--request-timeout", "-1", "--worker-script", script}, []string{"--request-timeout: "}},
		{[]string{"serve", "--worker-script", "testdata/app/nope.php"}, []string{"worker.script", "nope.php"}},
		{[]string{"serve", "--root", "testdata/nope", "--worker-script", script}, []string{"server.root", "not a directory"}},
		{[]string{"serve", "--ini", "memory_limit", "--worker-script", script}, []string{"worker.ini", "ini line 1"}},
		// Flags without the serve command.
		{[]string{"--workers", "0", "--worker-script", script}, []string{"server.workers"}},
		// A file's errors keep their file:line.
		{[]string{"serve", "--config", "testdata/bad-unknown-key.toml"}, []string{"testdata/bad-unknown-key.toml:3: server.max_request: unknown key"}},
		{[]string{"serve", "--config", "testdata/bad-size.toml"}, []string{"testdata/bad-size.toml:3: server.max_body_size"}},
		{[]string{"serve", "--config", "testdata/bad-cow.toml"}, []string{"needs a worker script"}},
		// Flags given with a file: a flag's bad value is still refused, and so is the file's syntax error.
		// The flag set the bad value, not the file: the error names no line of the file.
		{[]string{"serve", "--config", "testdata/bad-workers.toml", "--workers", "0"}, []string{"configuration error: server.workers: must be from 1 to 1024"}},
		{[]string{"serve", "--config", "testdata/good.toml", "--workers", "2000"}, []string{"configuration error: server.workers: must be from 1 to 1024"}},
		{[]string{"serve", "--config", "testdata/bad-syntax.toml", "--listen", "127.0.0.1:0"}, []string{"testdata/bad-syntax.toml:2: "}},
	}
	for _, tt := range tests {
		code, _, errOut := run(tt.args...)
		if code != ExitConfig {
			t.Errorf("Main(%q) = %d, stderr %q; want %d", tt.args, code, errOut, ExitConfig)
			continue
		}
		if !strings.HasPrefix(errOut, "askrd: configuration error: ") {
			t.Errorf("Main(%q) stderr = %q; want it to start with \"askrd: configuration error: \"", tt.args, errOut)
		}
		for _, w := range tt.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("Main(%q) stderr = %q; want it to contain %q", tt.args, errOut, w)
			}
		}
	}
}

// resolveArgs parses args as serve's flags and resolves them the way runServe does.
func resolveArgs(t *testing.T, args ...string) (config.Config, error) {
	t.Helper()
	f := newServeFlags(io.Discard)
	if err := f.fs.Parse(args); err != nil {
		t.Fatalf("Parse(%q) error = %v; want nil", args, err)
	}
	return f.resolve(args, f.fs.NFlag() == 0)
}

// writeConfig writes an askr.toml in a fresh application tree (DIR/public, DIR/worker.php) and returns
// its path and DIR. $DIR in src is replaced with DIR.
func writeConfig(t *testing.T, src string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "public"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "worker.php"), []byte("<?php\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "askr.toml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(src, "$DIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, dir
}

const fileConfig = `[server]
listen = "0.0.0.0:9000"
root = "$DIR/public"
front = "app.php"
workers = 3
max_requests = 50
max_body_size = "2M"
header_read_timeout = 20
request_timeout = "90s"
[worker]
script = "$DIR/worker.php"
ini = "memory_limit = 1G"
`

func TestResolveFlagsOverrideFile(t *testing.T) {
	clearEnv(t)
	path, dir := writeConfig(t, fileConfig)
	c, err := resolveArgs(t, "--config", path, "--listen", "127.0.0.1:9999", "--max-requests", "7")
	if err != nil {
		t.Fatalf("resolve(--config %s --listen … --max-requests 7) error = %v; want nil", path, err)
	}
	if c.Server.Listen != "127.0.0.1:9999" {
		t.Errorf("resolve Listen = %q; want the flag's %q over the file's", c.Server.Listen, "127.0.0.1:9999")
	}
	if c.Server.MaxRequests != 7 {
		t.Errorf("resolve MaxRequests = %d; want the flag's 7 over the file's 50", c.Server.MaxRequests)
	}
	// Flags not given leave the file's values, even where the flag has a default of its own.
	if c.Server.Front != "app.php" {
		t.Errorf("resolve Front = %q; want the file's %q, not --front's default", c.Server.Front, "app.php")
	}
	if c.Server.Workers != (config.Workers{N: 3}) {
		t.Errorf("resolve Workers = %v; want the file's 3, not --workers' default", c.Server.Workers)
	}
	if c.Server.MaxBodySize != 2<<20 {
		t.Errorf("resolve MaxBodySize = %v; want the file's 2M, not --max-body-size's default", c.Server.MaxBodySize)
	}
	if c.Server.HeaderReadTimeout.D() != 20*time.Second || c.Server.RequestTimeout.D() != 90*time.Second {
		t.Errorf("resolve timeouts = %v, %v; want the file's 20s, 1m30s", c.Server.HeaderReadTimeout, c.Server.RequestTimeout)
	}
	if c.Worker.Script != filepath.Join(dir, "worker.php") || c.Worker.Ini != "memory_limit = 1G" {
		t.Errorf("resolve Script, Ini = %q, %q; want the file's", c.Worker.Script, c.Worker.Ini)
	}
	if c.File != path {
		t.Errorf("resolve File = %q; want %q", c.File, path)
	}
}

func TestResolveEachFlag(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		flags []string // $DIR is the application tree of the file
		check func(c config.Config) bool
	}{
		{[]string{"--root", "$DIR"}, func(c config.Config) bool { return filepath.Base(c.Server.Root) != "public" }},
		{[]string{"--front", "index.php"}, func(c config.Config) bool { return c.Server.Front == "index.php" }},
		{[]string{"--worker-script", "$DIR/public/../worker.php"}, func(c config.Config) bool { return filepath.Base(c.Worker.Script) == "worker.php" }},
		{[]string{"--workers", "auto"}, func(c config.Config) bool { return c.Server.Workers.Auto }},
		{[]string{"--workers", "5"}, func(c config.Config) bool { return c.Server.Workers == config.Workers{N: 5} }},
		{[]string{"--max-requests", "0"}, func(c config.Config) bool { return c.Server.MaxRequests == 0 }},
		{[]string{"--max-body-size", "16M"}, func(c config.Config) bool { return c.Server.MaxBodySize == 16<<20 }},
		{[]string{"--listen", "[::1]:8080"}, func(c config.Config) bool { return c.Server.Listen == "[::1]:8080" }},
		{[]string{"--ini", "display_errors = On"}, func(c config.Config) bool { return c.Worker.Ini == "display_errors = On" }},
		{[]string{"--ini", ""}, func(c config.Config) bool { return c.Worker.Ini == "" }},
		{[]string{"--header-read-timeout", "15"}, func(c config.Config) bool { return c.Server.HeaderReadTimeout.D() == 15*time.Second }},
		{[]string{"--header-read-timeout", "250ms"}, func(c config.Config) bool { return c.Server.HeaderReadTimeout.D() == 250*time.Millisecond }},
		{[]string{"--request-timeout", "0"}, func(c config.Config) bool { return c.Server.RequestTimeout == 0 }},
		{[]string{"--cow=false"}, func(c config.Config) bool { return !c.Worker.Cow }},
		{[]string{"--paranoid"}, func(c config.Config) bool { return c.Worker.Paranoid }},
		{[]string{"--https"}, func(c config.Config) bool { return c.Server.HTTPS }},
		{[]string{"--https", "--force-https"}, func(c config.Config) bool { return c.Server.ForceHTTPS }},
		{[]string{"--tls-cert", "$DIR/worker.php", "--tls-key", "$DIR/public/../worker.php"}, func(c config.Config) bool {
			return filepath.Base(c.TLS.Cert) == "worker.php" && filepath.Base(c.TLS.Key) == "worker.php" // resolve only checks they can be read
		}},
		{[]string{"--acme", "--acme-domain", "example.com", "--acme-domain", "www.example.com", "--acme-email", "a@example.com",
			"--acme-dir", "$DIR/acme", "--acme-http", "127.0.0.1:8080", "--acme-directory-url", "https://127.0.0.1:14000/dir"},
			func(c config.Config) bool {
				a := c.ACME
				return a.Enabled && slices.Equal(a.Domains, []string{"example.com", "www.example.com"}) && a.Email == "a@example.com" &&
					filepath.Base(a.Dir) == "acme" && a.HTTP == "127.0.0.1:8080" && a.DirectoryURL == "https://127.0.0.1:14000/dir"
			}},
		{[]string{"--acme", "--acme-domain", "example.com", "--acme-staging"}, func(c config.Config) bool { return c.ACME.Staging }},
	}
	for _, tt := range tests {
		path, dir := writeConfig(t, fileConfig)
		args := []string{"--config", path}
		for _, f := range tt.flags {
			args = append(args, strings.ReplaceAll(f, "$DIR", dir))
		}
		c, err := resolveArgs(t, args...)
		if err != nil {
			t.Errorf("resolve(%q) error = %v; want nil", args, err)
			continue
		}
		if !tt.check(c) {
			t.Errorf("resolve(%q) = %+v; want %q to override the file", args, c, tt.flags)
		}
	}
}

// [worker] paranoid = true turns the detector on as --paranoid does, and --paranoid=false turns
// it off again.
func TestResolveParanoid(t *testing.T) {
	clearEnv(t)
	path, _ := writeConfig(t, fileConfig+"paranoid = true\n")
	for _, tt := range []struct {
		flags []string
		want  bool
	}{{nil, true}, {[]string{"--paranoid=false"}, false}} {
		c, err := resolveArgs(t, append([]string{"--config", path}, tt.flags...)...)
		if err != nil || c.Worker.Paranoid != tt.want {
			t.Errorf("resolve(--config with paranoid = true, %q) = Paranoid %t, error %v; want %t", tt.flags, c.Worker.Paranoid, err, tt.want)
		}
	}
}

// Without a worker script askrd serves per request; CoW mode still needs one.
func TestResolvePerRequest(t *testing.T) {
	clearEnv(t)
	_, dir := writeConfig(t, "")
	c, err := resolveArgs(t, "--root", filepath.Join(dir, "public"))
	if err != nil || !c.PerRequest() {
		t.Errorf("resolve(--root …) = PerRequest %v, error %v; want per-request mode, nil", c.PerRequest(), err)
	}
	if _, err := resolveArgs(t, "--root", filepath.Join(dir, "public"), "--cow"); err == nil || !strings.Contains(err.Error(), "needs a worker script") {
		t.Errorf("resolve(--root … --cow) error = %v; want CoW mode to need a worker script", err)
	}
}

func TestResolveFlagsWithoutFile(t *testing.T) {
	clearEnv(t)
	_, dir := writeConfig(t, "")
	c, err := resolveArgs(t, "--root", filepath.Join(dir, "public"), "--worker-script", filepath.Join(dir, "worker.php"))
	if err != nil {
		t.Fatalf("resolve(--root … --worker-script …) error = %v; want nil", err)
	}
	def := config.Defaults()
	if c.File != "" || c.Server.Listen != def.Server.Listen || c.Server.MaxBodySize != def.Server.MaxBodySize || !c.Server.Workers.Auto {
		t.Errorf("resolve with flags only = %+v; want the defaults and no file", c)
	}
	if c.Worker.AppBase != dir {
		t.Errorf("resolve AppBase = %q; want the root's parent %q", c.Worker.AppBase, dir)
	}
}

// A flag's last value decides, a bad one included: --workers x --workers 2 is 2, and of several
// bad flags the error names the first by name.
func TestResolveLastValueOfAFlag(t *testing.T) {
	clearEnv(t)
	_, dir := writeConfig(t, "")
	base := []string{"--root", filepath.Join(dir, "public"), "--worker-script", filepath.Join(dir, "worker.php")}
	c, err := resolveArgs(t, append(base, "--workers", "many", "--workers", "2")...)
	if err != nil || c.Server.Workers.Auto || c.Server.Workers.N != 2 {
		t.Errorf("resolve(--workers many --workers 2) = %+v, error %v; want 2 workers", c.Server.Workers, err)
	}
	_, err = resolveArgs(t, append(base, "--workers", "2", "--workers", "many")...)
	if err == nil || !strings.Contains(err.Error(), "--workers") {
		t.Errorf("resolve(--workers 2 --workers many) error = %v; want --workers' error", err)
	}
	_, err = resolveArgs(t, append(base, "--workers", "many", "--max-body-size", "8Q")...)
	if err == nil || !strings.Contains(err.Error(), "--max-body-size") {
		t.Errorf("resolve(--workers many --max-body-size 8Q) error = %v; want --max-body-size's (the first by name)", err)
	}
}

func TestResolveEnv(t *testing.T) {
	tests := []struct {
		name      string
		appBase   string // in the file; $DIR is the application tree
		env       string // ASKR_APP_BASE; $ENV is a second directory
		wantBase  string
		wantError string
	}{
		{name: "env fills app_base", env: "$ENV", wantBase: "$ENV"},
		{name: "file beats env", appBase: "$DIR/public", env: "$ENV", wantBase: "$DIR/public"},
		{name: "neither: parent of root", wantBase: "$DIR"},
		{name: "env app_base not a directory", env: "$ENV/nope", wantError: "worker.app_base"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			envDir := t.TempDir()
			src := fileConfig
			if tt.appBase != "" {
				src += "app_base = \"" + tt.appBase + "\"\n"
			}
			path, dir := writeConfig(t, src)
			expand := func(s string) string {
				return strings.NewReplacer("$DIR", dir, "$ENV", envDir).Replace(s)
			}
			t.Setenv("ASKR_APP_BASE", expand(tt.env))
			t.Setenv("ASKR_PHP_INI", "")
			c, err := resolveArgs(t, "--config", path)
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("resolve(--config %s) with ASKR_APP_BASE=%s error = %v; want one naming %s", path, expand(tt.env), err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve(--config %s) error = %v; want nil", path, err)
			}
			if want := expand(tt.wantBase); c.Worker.AppBase != want {
				t.Errorf("resolve(--config %s) with ASKR_APP_BASE=%q AppBase = %q; want %q", path, expand(tt.env), c.Worker.AppBase, want)
			}
		})
	}
}

func TestResolvePHPIniEnv(t *testing.T) {
	clearEnv(t)
	noIni := strings.Replace(fileConfig, "ini = \"memory_limit = 1G\"\n", "", 1)
	tests := []struct {
		name  string
		src   string
		env   string
		flags []string
		want  string
	}{
		{"env fills ini", noIni, "memory_limit = 2G", nil, "memory_limit = 2G"},
		{"file beats env", fileConfig, "memory_limit = 2G", nil, "memory_limit = 1G"},
		{"flag beats env", noIni, "memory_limit = 2G", []string{"--ini", "memory_limit = 3G"}, "memory_limit = 3G"},
		{"flag beats file", fileConfig, "", []string{"--ini", "memory_limit = 3G"}, "memory_limit = 3G"},
	}
	for _, tt := range tests {
		path, _ := writeConfig(t, tt.src)
		t.Setenv("ASKR_PHP_INI", tt.env)
		args := append([]string{"--config", path}, tt.flags...)
		c, err := resolveArgs(t, args...)
		if err != nil || c.Worker.Ini != tt.want {
			t.Errorf("%s: resolve(%q) with ASKR_PHP_INI=%q Ini = %q, %v; want %q, nil", tt.name, args, tt.env, c.Worker.Ini, err, tt.want)
		}
	}
}

// defaultConfigAbsent skips the test when /etc/askr.toml exists: askrd without flags would use it.
func defaultConfigAbsent(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(config.DefaultPath); !errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s exists (or cannot be checked: %v); this test needs it absent", config.DefaultPath, err)
	}
}

func TestResolveImplicitConfig(t *testing.T) {
	clearEnv(t)
	defaultConfigAbsent(t)
	f := newServeFlags(io.Discard)
	if err := f.fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	_, err := f.resolve(nil, true)
	var ce *config.Error
	if !errors.As(err, &ce) || ce.File != config.DefaultPath || !strings.Contains(err.Error(), "/etc/askr.toml") {
		t.Fatalf("resolve(nil, implicit) error = %v; want a *config.Error about /etc/askr.toml", err)
	}

	// With flags, the default file is not read (and the error is about the flags instead).
	f = newServeFlags(io.Discard)
	args := []string{"--listen", "127.0.0.1:0", "--cow"}
	if err := f.fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	_, err = f.resolve(args, false)
	if err == nil || strings.Contains(err.Error(), config.DefaultPath) || !strings.Contains(err.Error(), "worker.cow") {
		t.Fatalf("resolve(%q, not implicit) error = %v; want a worker.cow error that does not mention %s", args, err, config.DefaultPath)
	}

	// An explicit --config wins over the implicit default.
	path := filepath.Join(t.TempDir(), "mine.toml")
	f = newServeFlags(io.Discard)
	if err := f.fs.Parse([]string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	_, err = f.resolve(nil, true)
	if !errors.As(err, &ce) || ce.File != path {
		t.Fatalf("resolve(--config %s, implicit) error = %v; want a *config.Error about %s", path, err, path)
	}
}

func TestMainNoArgsReadsDefaultConfig(t *testing.T) {
	clearEnv(t)
	defaultConfigAbsent(t)
	for _, args := range [][]string{nil, {"serve"}} {
		code, _, errOut := run(args...)
		if code != ExitConfig || !strings.Contains(errOut, config.DefaultPath) {
			t.Errorf("Main(%q) = %d, stderr %q; want %d and an error about %s", args, code, errOut, ExitConfig, config.DefaultPath)
		}
	}
}
