package cli

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/askr-php/askr/internal/config"
	"github.com/askr-php/askr/internal/phpext"
	"github.com/askr-php/askr/internal/version"
)

// run calls Main and returns its exit code, stdout and stderr.
func run(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := Main(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// clearEnv makes the environment variables resolve reads empty, so the caller's environment does
// not leak into a test.
func clearEnv(t *testing.T) {
	t.Helper()
	t.Setenv("ASKR_APP_BASE", "")
	t.Setenv("ASKR_PHP_INI", "")
	t.Setenv("ASKR_ADMIN_SOCKET", "") // no admin socket (and no reload through one)
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestMainVersion(t *testing.T) {
	code, out, errOut := run("version")
	if code != ExitOK || out != "askr "+version.Version+"\n" || errOut != "" {
		t.Errorf("Main(version) = %d, stdout %q, stderr %q; want %d, %q, \"\"", code, out, errOut, ExitOK, "askr "+version.Version+"\n")
	}
}

func TestMainVersionFlag(t *testing.T) {
	code, out, _ := run("--version")
	if code != ExitOK || !strings.HasPrefix(out, "askr ") {
		t.Errorf("Main(--version) = %d, stdout %q; want %d, \"askr …\"", code, out, ExitOK)
	}
}

func TestMainUsage(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{[]string{"help"}, ExitOK, "usage:", ""},
		{[]string{"frobnicate"}, ExitUsage, "", `unknown command "frobnicate"`},
		{[]string{"Serve"}, ExitUsage, "", `unknown command "Serve"`},
		{[]string{"config-check"}, ExitUsage, "", "usage: askrd config-check [--user NAME] FILE"},
		{[]string{"config-check", "a.toml", "b.toml"}, ExitUsage, "", "usage: askrd config-check [--user NAME] FILE"},
		{[]string{"config-check", "--user", "no-such-user-askr", "a.toml"}, ExitUsage, "", "--user no-such-user-askr: user: unknown user"},
		{[]string{"serve", "--no-such-flag"}, ExitUsage, "", "flag provided but not defined"},
		{[]string{"serve", "--max-requests", "many"}, ExitUsage, "", "invalid value"},
		{[]string{"serve", "--listen", ":0", "extra"}, ExitUsage, "", `unexpected argument "extra"`},
		{[]string{"--no-such-flag"}, ExitUsage, "", "flag provided but not defined"},
		{[]string{"serve", "-h"}, ExitOK, "", "-worker-script"},
	}
	for _, tt := range tests {
		code, out, errOut := run(tt.args...)
		if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.stderr) {
			t.Errorf("Main(%q) = %d, stdout %q, stderr %q; want %d, stdout with %q, stderr with %q",
				tt.args, code, out, errOut, tt.code, tt.stdout, tt.stderr)
		}
		if tt.code == ExitUsage && tt.args[0] == "frobnicate" && !strings.Contains(errOut, "usage:") {
			t.Errorf("Main(%q) stderr = %q; want the usage", tt.args, errOut)
		}
	}
}

// fakePHPCGI puts an executable named php-cgi first in PATH and returns its path: config-check
// and serve look php_cgi up there.
func fakePHPCGI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "php-cgi")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return bin
}

// noServiceUser makes config-check ignore an askr.service installed on the test machine.
func noServiceUser(t *testing.T) {
	t.Helper()
	saved := serviceUser
	serviceUser = func() string { return "" }
	t.Cleanup(func() { serviceUser = saved })
}

func TestMainConfigCheckGood(t *testing.T) {
	clearEnv(t)
	noServiceUser(t)
	phpCGI := fakePHPCGI(t)
	code, out, errOut := run("config-check", "testdata/good.toml")
	if code != ExitOK {
		t.Fatalf("Main(config-check testdata/good.toml) = %d, stderr %q; want %d", code, errOut, ExitOK)
	}
	for _, want := range []string{
		"# testdata/good.toml is valid; resolved settings:\n",
		"[server]\n",
		`listen = "0.0.0.0:9000"` + "\n",
		`root = "` + abs(t, "testdata/app/public") + `"` + "\n",
		`front = "index.php"` + "\n", // default
		`workers = "4" # resolves to 4` + "\n",
		"max_requests = 500\n",
		`max_body_size = "8M"` + "\n",
		`body_buffer_size = "1M"` + "\n", // default
		`header_read_timeout = "500ms"` + "\n",
		`idle_timeout = "1m0s"` + "\n", // default
		`script = "` + abs(t, "testdata/app/worker.php") + `"` + "\n",
		`app_base = "` + abs(t, "testdata/app") + `"` + "\n", // parent of the root
		`ini = "memory_limit = 256M\n"` + "\n",
		`php_cgi = "` + phpCGI + `"` + "\n", // found in PATH
		`extension = "auto"` + "\n",         // default
		"[tls]\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Main(config-check testdata/good.toml) stdout = %s\nwant it to contain %q", out, want)
		}
	}
	if errOut != "" {
		t.Errorf("Main(config-check testdata/good.toml) stderr = %q; want \"\"", errOut)
	}
}

func TestMainConfigCheckBad(t *testing.T) {
	clearEnv(t)
	missing := filepath.Join(t.TempDir(), "absent.toml")
	tests := []struct {
		file string
		want []string // substrings of stderr
	}{
		{"testdata/bad-unknown-key.toml", []string{"testdata/bad-unknown-key.toml:3: server.max_request: unknown key"}},
		{"testdata/bad-syntax.toml", []string{"testdata/bad-syntax.toml:2: "}},
		{"testdata/bad-size.toml", []string{"testdata/bad-size.toml:3: server.max_body_size: ", `"8Q"`}},
		{"testdata/bad-workers.toml", []string{"testdata/bad-workers.toml:3: server.workers: must be from 1 to 1024"}},
		{"testdata/bad-cow.toml", []string{"testdata/bad-cow.toml:5: worker.cow: ", "needs a worker script"}},
		{"testdata/bad-extension.toml", []string{"testdata/bad-extension.toml:6: worker.extension: ", "testdata/app/askr.so is not a readable file"}},
		{missing, []string{missing + ": ", "no such file"}},
	}
	for _, tt := range tests {
		code, out, errOut := run("config-check", tt.file)
		if code != ExitConfig {
			t.Errorf("Main(config-check %s) = %d, stderr %q; want %d", tt.file, code, errOut, ExitConfig)
		}
		for _, w := range tt.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("Main(config-check %s) stderr = %q; want it to contain %q", tt.file, errOut, w)
			}
		}
		if !strings.HasPrefix(errOut, "askrd: ") {
			t.Errorf("Main(config-check %s) stderr = %q; want it to start with \"askrd: \"", tt.file, errOut)
		}
		if out != "" {
			t.Errorf("Main(config-check %s) stdout = %q; want \"\"", tt.file, out)
		}
	}
}

// config-check prints "the resolved settings"; serve fills app_base from $ASKR_APP_BASE, so
// config-check should show the same.
func TestMainConfigCheckUsesEnv(t *testing.T) {
	clearEnv(t)
	base := t.TempDir()
	t.Setenv("ASKR_APP_BASE", base)
	code, out, errOut := run("config-check", "testdata/good.toml")
	if want := `app_base = "` + base + `"`; code != ExitOK || !strings.Contains(out, want) {
		t.Errorf("Main(config-check testdata/good.toml) with ASKR_APP_BASE=%s = %d, stdout %s, stderr %q; want %d and %q", base, code, out, errOut, ExitOK, want)
	}
}

// A file without a worker script is a valid per-request configuration.
func TestMainConfigCheckPerRequest(t *testing.T) {
	clearEnv(t)
	var stdout, stderr strings.Builder
	if code := Main([]string{"config-check", "testdata/per-request.toml"}, &stdout, &stderr); code != ExitOK {
		t.Fatalf("Main(config-check testdata/per-request.toml) = %d, stderr %q; want 0", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "\nscript = \"\"\n") {
		t.Errorf("config-check output %q; want script = \"\"", stdout.String())
	}
}

func TestMainReload(t *testing.T) {
	clearEnv(t)
	if code, _, errOut := run("reload", "--config", "testdata/good.toml", "nope"); code != ExitUsage {
		t.Errorf("reload nope = %d %q; want %d", code, errOut, ExitUsage)
	}
	cow := filepath.Join(t.TempDir(), "cow.toml")
	os.WriteFile(cow, []byte("[worker]\ncow = true\n"), 0o644)
	if code, _, errOut := run("reload", "--config", cow, "12345"); code != ExitFailure || !strings.Contains(errOut, "systemctl restart askr") {
		t.Errorf("reload in CoW mode = %d %q; want %d and the advice to restart", code, errOut, ExitFailure)
	}
	// A child that waits for SIGHUP stands for askrd.
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if code, _, errOut := run("reload", "--config", "testdata/good.toml", strconv.Itoa(cmd.Process.Pid)); code != ExitOK {
		t.Fatalf("reload = %d %q; want %d", code, errOut, ExitOK)
	}
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGHUP {
		t.Errorf("process after askrd reload: %v; want killed by SIGHUP", err)
	}
}

// serve resolves [worker] extension before it binds a socket: a path that does not load is a
// configuration error; "auto" that finds nothing warns once, saying what PHP code loses.
func TestExtension(t *testing.T) {
	bin, err := exec.LookPath("php-cgi")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("php-cgi not found: %v", err)
		}
		t.Skip("php-cgi not installed")
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	c := config.Defaults()
	c.File = "askr.toml"
	c.Worker.Extension = abs(t, "testdata/app/worker.php") // exists, is no shared library
	got, err := extension(context.Background(), c, bin, nil, log)
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Key != "worker.extension" || !strings.Contains(err.Error(), "Unable to load dynamic library") {
		t.Errorf("extension(%s) = %q, %v; want a worker.extension config error with PHP's message", c.Worker.Extension, got, err)
	}

	c.Worker.Extension = phpext.None
	if got, err := extension(context.Background(), c, bin, nil, log); got != phpext.None || err != nil {
		t.Errorf("extension(none) = %q, %v; want %q, nil", got, err, phpext.None)
	}
	if logs.Len() != 0 {
		t.Errorf("extension() logged %q; want nothing", logs.String())
	}

	if _, err := os.Stat(phpext.InstalledPath); err == nil {
		return // auto would find the installed extension
	}
	c.Worker.Extension = phpext.Auto // the test binary has no askr.so beside it
	if got, err := extension(context.Background(), c, bin, nil, log); got != phpext.None || err != nil {
		t.Errorf("extension(auto) = %q, %v; want %q, nil", got, err, phpext.None)
	}
	if lines := strings.Split(strings.TrimSpace(logs.String()), "\n"); len(lines) != 1 ||
		!strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], phpext.Degraded) {
		t.Errorf("extension(auto) logged %q; want one warning saying %q", logs.String(), phpext.Degraded)
	}
}

// originalFixture copies internal/config's askr.toml of the original askr, which uses every key of
// the original, with its paths made absolute, and returns the copy's path.
func originalFixture(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("../config/testdata/original-askr.toml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "askr.toml")
	out := strings.ReplaceAll(string(src), `"testdata/app`, `"`+abs(t, "../config/testdata/app"))
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// config-check of an original askr.toml succeeds and lists, as warnings, the keys this version
// ignores: the notices of internal/config's golden file, each once.
func TestMainConfigCheckOriginal(t *testing.T) {
	clearEnv(t)
	path := originalFixture(t)
	code, out, errOut := run("config-check", path)
	if code != ExitOK || !strings.HasPrefix(out, "# "+path+" is valid; resolved settings:\n") {
		t.Fatalf("Main(config-check %s) = %d, stdout %q, stderr %q; want %d", path, code, out, errOut, ExitOK)
	}
	golden, err := os.ReadFile("../config/testdata/original-askr.notices")
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for line := range strings.Lines(string(golden)) {
		want.WriteString("askrd: warning: " + strings.Replace(line, "testdata/original-askr.toml", path, 1))
	}
	if errOut != want.String() {
		t.Errorf("Main(config-check %s) stderr =\n%s\nwant\n%s", path, errOut, want.String())
	}
	if !strings.Contains(out, "self_signed = false\n") {
		t.Errorf("Main(config-check %s) stdout = %s; want self_signed in [tls]", path, out)
	}
}

// A key of the original that this version would ignore at the cost of security or correctness is
// a configuration error, for config-check and serve alike.
func TestMainOriginalRefused(t *testing.T) {
	clearEnv(t)
	path, _ := writeConfig(t, "[server]\nroot = \"$DIR/public\"\nsandbox = true\n")
	want := "askrd: " + path + ":3: server.sandbox: not supported by this version; the workers would not be confined by seccomp."
	if code, out, errOut := run("config-check", path); code != ExitConfig || out != "" || !strings.HasPrefix(errOut, want) {
		t.Errorf("Main(config-check %s) = %d, stdout %q, stderr %q; want %d and %q…", path, code, out, errOut, ExitConfig, want)
	}
	want = "askrd: configuration error: " + path + ":3: server.sandbox: "
	if code, _, errOut := run("serve", "--config", path); code != ExitConfig || !strings.HasPrefix(errOut, want) {
		t.Errorf("Main(serve --config %s) = %d, stderr %q; want %d and %q…", path, code, errOut, ExitConfig, want)
	}
}

// An error found when serve starts, not by Validate, names the file and line of its key too.
func TestServeErrorNamesTheLine(t *testing.T) {
	clearEnv(t)
	path, _ := writeConfig(t, "[server]\nroot = \"$DIR/public\"\nlisten = \"127.0.0.1:0\"\n[worker]\nscript = \"$DIR/worker.php\"\nphp_cgi = \"no-such-php-cgi\"\n")
	want := path + ":6: worker.php_cgi: "
	code, _, errOut := run("serve", "--config", path)
	if code != ExitConfig || !strings.Contains(errOut, want) || !strings.Contains(errOut, "install php8.2-cgi") {
		t.Errorf("Main(serve --config %s) = %d, stderr %q; want %d and %q…", path, code, errOut, ExitConfig, want)
	}
}

// A php_cgi that is not there is a configuration error for config-check and serve alike, by name
// (looked up in PATH) or by path, in every mode: exit 78 before anything starts.
func TestMissingPHPCGIIsAConfigError(t *testing.T) {
	clearEnv(t)
	noServiceUser(t)
	for _, phpCGI := range []string{"no-such-php-cgi", "/nonexistent/php-cgi"} {
		for mode, script := range map[string]string{"worker": "script = \"$DIR/worker.php\"\n", "cow": "script = \"$DIR/worker.php\"\ncow = true\n", "per-request": ""} {
			path, _ := writeConfig(t, "[server]\nroot = \"$DIR/public\"\nlisten = \"127.0.0.1:0\"\n[worker]\nphp_cgi = \""+phpCGI+"\"\n"+script)
			want := path + ":5: worker.php_cgi: "
			for _, args := range [][]string{{"config-check", path}, {"serve", "--config", path}} {
				code, out, errOut := run(args...)
				if code != ExitConfig || !strings.Contains(errOut, want) || !strings.Contains(errOut, phpCGI) {
					t.Errorf("%s mode: Main(%q) = %d, stdout %q, stderr %q; want %d and %q naming %s", mode, args, code, out, errOut, ExitConfig, want, phpCGI)
				}
			}
		}
	}
}

// Root runs config-check as the user askr.service runs as, and says so; --user naming a user that
// does not exist is a usage error (TestMainUsage).
func TestConfigCheckAsTheServiceUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root")
	}
	clearEnv(t)
	fakePHPCGI(t)
	path, _ := writeConfig(t, "[server]\nroot = \"$DIR/public\"\n[worker]\nscript = \"$DIR/worker.php\"\n")
	saved := serviceUser
	t.Cleanup(func() { serviceUser = saved })
	serviceUser = func() string { return "root" } // root again: the check runs in this process
	code, out, errOut := run("config-check", path)
	if code != ExitOK || !strings.Contains(errOut, "checking as user root, whom askr.service runs as") ||
		!strings.Contains(out, path+" is valid for user root;") {
		t.Errorf("Main(config-check %s) with askr.service's User=root = %d, stdout %q, stderr %q; want 0, the user named", path, code, out, errOut)
	}
	// A DynamicUser= exists only while the unit runs: root checks as itself, and says so.
	serviceUser = func() string { return "no-such-user-askr" }
	if code, out, errOut := run("config-check", path); code != ExitOK || !strings.Contains(errOut, "askr.service runs as no-such-user-askr, who does not exist now") ||
		!strings.Contains(out, path+" is valid;") {
		t.Errorf("Main(config-check %s) with askr.service's User= unknown = %d, stdout %q, stderr %q; want %d, a warning naming the user", path, code, out, errOut, ExitOK)
	}
}
