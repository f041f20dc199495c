package config

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// resolveBinary replaces *bin, a program (a name is looked up in PATH), with its absolute path, or
// says why it cannot (hint follows the error).
func (c *Config) resolveBinary(key string, bin *string, hint string) error {
	p, err := exec.LookPath(*bin)
	if err != nil {
		return c.Err(key, "%v%s", err, hint)
	}
	if p, err = filepath.Abs(p); err != nil {
		return c.Err(key, "%v", err)
	}
	*bin = p
	return nil
}

// Check verifies, as the user askrd runs as, what `askrd serve` needs from the machine once Validate
// has passed: php_cgi is an executable file (a name is looked up in PATH; Check replaces it with
// the file found), the root and alias directories can be read and searched, the worker script,
// the extension, the TLS files and the admin token file can be read (and the token file not by
// others), and app_base can be entered. Each failure is an
// *Error (exit status 78). `askrd config-check --user` runs it as the service's user.
func (c *Config) Check() error {
	w := &c.Worker
	if err := c.resolveBinary("worker.php_cgi", &w.PHPCGI, " (install php8.2-cgi)"); err != nil {
		return err
	}
	if c.NeedsPHPCLI() {
		err := c.resolveBinary("worker.php_cli", &w.PHPCLI, ": [queue] and [scheduler] scripts run in php-cli outside CoW mode (install php8.2-cli)")
		if err != nil {
			return err
		}
	}
	const r, x = unix.R_OK, unix.X_OK
	type need struct {
		key, path string
		mode      uint32
	}
	needs := []need{{"server.root", c.Server.Root, r | x}, {"worker.app_base", w.AppBase, x}}
	for _, a := range c.Server.Aliases() {
		needs = append(needs, need{"server.alias", a[1], r | x})
	}
	for key, p := range map[string]string{"worker.script": w.Script, "tls.cert": c.TLS.Cert, "tls.key": c.TLS.Key, "admin.token_file": c.Admin.TokenFile} {
		needs = append(needs, need{key, p, r})
	}
	if c.ACME.Enabled && c.ACME.CARoot != "" {
		needs = append(needs, need{"acme.ca_root", c.ACME.CARoot, r})
	}
	if filepath.IsAbs(w.Extension) { // a path: Validate resolved it; "auto" and "none" are not
		needs = append(needs, need{"worker.extension", w.Extension, r})
	}
	for _, n := range needs {
		if n.path == "" {
			continue
		}
		if err := access(n.path, n.mode); err != nil {
			what := map[uint32]string{r | x: "read and searched", x: "entered", r: "read"}[n.mode]
			return c.Err(n.key, "%s cannot be %s by %s: %v", n.path, what, whoAmI(), err)
		}
	}
	if t := c.Admin.TokenFile; t != "" {
		if fi, err := os.Stat(t); err == nil && fi.Mode().Perm()&0o004 != 0 {
			return c.Err("admin.token_file", "%s is readable by others (mode %v): the token lets anyone use the admin API; chmod o-r %s", t, fi.Mode().Perm(), t)
		}
	}
	return nil
}

// access checks path for mode with the effective user and groups, as open(2) and chdir(2) would.
// A variable, so that tests (which run as root, who may do anything) can refuse.
var access = func(path string, mode uint32) error {
	return unix.Faccessat(unix.AT_FDCWD, path, mode, unix.AT_EACCESS)
}

// whoAmI names the effective user, for errors: "user www-data (uid 33)".
func whoAmI() string {
	uid := strconv.Itoa(os.Geteuid())
	if u, err := user.LookupId(uid); err == nil && !strings.ContainsAny(u.Username, " \t") {
		return fmt.Sprintf("user %s (uid %s)", u.Username, uid)
	}
	return "uid " + uid
}
