package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// checkConfig loads and validates src ($DIR: appDir's directory) with a php_cgi line added.
func checkConfig(t *testing.T, dir, phpCGI, extra string) (Config, string) {
	t.Helper()
	src := "[server]\nroot = \"$DIR/app/public\"\n[worker]\nscript = \"$DIR/app/worker.php\"\nphp_cgi = \"" + phpCGI + "\"\n" + extra
	path := writeTOML(t, mergeSections(strings.ReplaceAll(src, "$DIR", dir)))
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%q) error = %v; want nil", path, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() of %q error = %v; want nil", path, err)
	}
	return c, path
}

func TestCheckPHPCGI(t *testing.T) {
	dir := appDir(t)
	exe := filepath.Join(dir, "bin", "php-cgi")
	os.MkdirAll(filepath.Dir(exe), 0o755)
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", filepath.Dir(exe))

	for _, name := range []string{exe, "php-cgi"} {
		c, _ := checkConfig(t, dir, name, "")
		if err := c.Check(); err != nil {
			t.Fatalf("Check() with php_cgi = %q error = %v; want nil", name, err)
		}
		if c.Worker.PHPCGI != exe {
			t.Errorf("Check() with php_cgi = %q set PHPCGI = %q; want the file found, %q", name, c.Worker.PHPCGI, exe)
		}
	}
	for _, tt := range []struct{ phpCGI, msg string }{
		{"php-cgi-missing", `exec: "php-cgi-missing": executable file not found in $PATH (install php8.2-cgi)`},
		{filepath.Join(dir, "nope", "php-cgi"), "no such file or directory"},
		{filepath.Join(dir, "file.txt"), "permission denied"}, // not executable
		{filepath.Join(dir, "app"), "is a directory"},
	} {
		c, path := checkConfig(t, dir, tt.phpCGI, "")
		err := c.Check()
		var e *Error
		if !errors.As(err, &e) || e.Key != "worker.php_cgi" || e.File != path || e.Line != 5 || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Check() with php_cgi = %q error = %v; want a config error at %s:5 for worker.php_cgi mentioning %q", tt.phpCGI, err, path, tt.msg)
		}
	}
}

// php_cli is checked (and made absolute) only where [queue] or [scheduler] run php-cli: outside
// CoW mode.
func TestCheckPHPCLI(t *testing.T) {
	dir := appDir(t)
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	for _, name := range []string{"php-cgi", "php"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin)
	queue := "[queue]\nworkers = 1\nscript = \"" + filepath.Join(dir, "app", "worker.php") + "\"\n"
	c, _ := checkConfig(t, dir, "php-cgi", queue)
	if err := c.Check(); err != nil || c.Worker.PHPCLI != filepath.Join(bin, "php") {
		t.Errorf("Check() with [queue] = %v, php_cli %q; want nil, %q", err, c.Worker.PHPCLI, filepath.Join(bin, "php"))
	}
	c, path := checkConfig(t, dir, "php-cgi", "php_cli = \"php8.9\"\n"+queue)
	var e *Error
	if err := c.Check(); !errors.As(err, &e) || e.Key != "worker.php_cli" || e.File != path ||
		!strings.Contains(err.Error(), "[queue] and [scheduler] scripts run in php-cli outside CoW mode (install php8.2-cli)") {
		t.Errorf("Check() with php_cli php8.9 = %v; want a config error at %s for worker.php_cli naming php8.2-cli", err, path)
	}
	for _, extra := range []string{"php_cli = \"php8.9\"\n", "php_cli = \"php8.9\"\ncow = true\n" + queue} {
		if c, _ := checkConfig(t, dir, "php-cgi", extra); c.Check() != nil {
			t.Errorf("Check() with %q = %v; want nil: no php-cli runs", extra, c.Check())
		}
	}
}

// What askrd's user cannot read is a configuration error naming the key. The tests run as root,
// who may read anything, so the kernel's answer is replaced here; the integration tests
// (TestConfigCheckUnreadableRoot) ask the kernel as an unprivileged user.
func TestCheckAccess(t *testing.T) {
	dir := appDir(t)
	exe := filepath.Join(dir, "app", "php-cgi")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key, path string
		mode      uint32
		what      string
	}{
		{"server.root", "$DIR/app/public", unix.R_OK | unix.X_OK, "cannot be read and searched by"},
		{"worker.script", "$DIR/app/worker.php", unix.R_OK, "cannot be read by"},
		{"worker.app_base", "$DIR/app", unix.X_OK, "cannot be entered by"},
		{"tls.cert", "$DIR/app/tls.pem", unix.R_OK, "cannot be read by"},
		{"server.alias", "$DIR/app", unix.R_OK | unix.X_OK, "cannot be read and searched by"},
		{"admin.token_file", "$DIR/app/token", unix.R_OK, "cannot be read by"},
	}
	extra := "app_base = \"$DIR/app\"\n[tls]\ncert = \"$DIR/app/tls.pem\"\nkey = \"$DIR/app/tls.key\"\n[server]\nalias = { \"/media/\" = \"$DIR/app\" }\n" +
		"[admin]\ntoken_file = \"$DIR/app/token\"\n"
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			refused := filepath.Clean(strings.ReplaceAll(tt.path, "$DIR", dir))
			saved := access
			t.Cleanup(func() { access = saved })
			var asked uint32
			access = func(path string, mode uint32) error {
				if path == refused && mode == tt.mode {
					asked = mode
					return unix.EACCES
				}
				return nil
			}
			c, path := checkConfig(t, dir, exe, extra)
			err := c.Check()
			var e *Error
			if !errors.As(err, &e) || e.Key != tt.key || e.File != path || e.Line < 1 ||
				!strings.Contains(err.Error(), refused+" "+tt.what+" ") || !strings.Contains(err.Error(), "permission denied") {
				t.Errorf("Check() with %s refused error = %v; want a config error for %s with its line saying %q", refused, err, tt.key, tt.what)
			}
			if asked != tt.mode {
				t.Errorf("Check() asked for %s with mode %d; want %d", refused, asked, tt.mode)
			}
		})
	}
}

// As root, a real check passes: root may read everything.
func TestCheckAccessAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root")
	}
	dir := appDir(t)
	exe := filepath.Join(dir, "app", "php-cgi")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, "app", "public"), 0)
	c, _ := checkConfig(t, dir, exe, "")
	if err := c.Check(); err != nil {
		t.Errorf("Check() as root of a root with mode 0 error = %v; want nil", err)
	}
}

// The admin token file must not be readable by others: the token lets anyone use the admin API.
func TestCheckTokenFileMode(t *testing.T) {
	dir := appDir(t)
	exe := filepath.Join(dir, "app", "php-cgi")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "app", "token")
	if err := os.WriteFile(token, []byte("secret\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	c, _ := checkConfig(t, dir, exe, "[admin]\ntoken_file = \"$DIR/app/token\"\n")
	if err := c.Check(); err != nil {
		t.Errorf("Check() with a token file of mode 0640 error = %v; want nil", err)
	}
	os.Chmod(token, 0o644)
	c, path := checkConfig(t, dir, exe, "[admin]\ntoken_file = \"$DIR/app/token\"\n")
	err := c.Check()
	var e *Error
	if !errors.As(err, &e) || e.Key != "admin.token_file" || e.File != path || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("Check() with a token file of mode 0644 error = %v; want a config error for admin.token_file saying it is readable by others", err)
	}
}
