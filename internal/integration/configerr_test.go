package integration

import (
	"context"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runAskrd runs askrd (bin) with args to its end, as cred if not nil, and returns its exit status
// and output. It must end by itself within 60 s.
func runAskrd(t *testing.T, bin string, cred *syscall.Credential, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+os.TempDir(), "ASKR_APP_BASE=")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("askrd %v still running after 60s:\n%s", args, out)
	}
	return statusOf(err), string(out)
}

// A php_cgi that is not there: config-check says so and exits 78, and serve exits 78 before it
// starts anything, in worker, CoW (ASKR_TEST_COW=1) and per-request mode, by name and by path.
func TestConfigErrorMissingPHPCGI(t *testing.T) {
	bin := askrdBinary(t)
	script := filepath.Join(repoRoot(t), "internal", "integration", "testdata", "worker.php")
	for _, phpCGI := range []string{"php-cgi-not-installed", "/usr/bin/php-cgi-not-installed"} {
		for _, perRequest := range []bool{false, true} {
			dir := t.TempDir()
			conf := "[server]\nlisten = \"" + freeAddr(t) + "\"\nroot = \"" + plainRoot(t) + "\"\n[worker]\nphp_cgi = \"" + phpCGI + "\"\n"
			if !perRequest {
				conf += "script = \"" + script + "\"\n"
				if cowMode() {
					conf += "cow = true\n"
				}
			}
			path := filepath.Join(dir, "askr.toml")
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			want := path + ":5: worker.php_cgi: "
			for _, args := range [][]string{{"config-check", "--user", "root", path}, {"serve", "--config", path}} {
				code, out := runAskrd(t, bin, nil, args...)
				if code != 78 || !strings.Contains(out, want) || !strings.Contains(out, phpCGI) {
					t.Errorf("askrd %v (per-request %t) with php_cgi = %q: exit %d; want 78 and %q naming it:\n%s", args, perRequest, phpCGI, code, want, out)
				}
				if strings.Contains(out, "askrd serving") {
					t.Errorf("askrd %v with php_cgi = %q served before failing:\n%s", args, phpCGI, out)
				}
			}
		}
	}
}

// A root, worker script or app_base the service's user cannot read: config-check --user (run by
// root) and serve (run as that user) exit 78 naming the key; readable, the same check passes.
// The user is nobody, and askrd, the app and the file sit in a directory nobody may enter.
func TestConfigErrorUnreadableByServiceUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run askrd as nobody")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}

	top, err := os.MkdirTemp("", "askr-configerr-") // t.TempDir's parent is private to root
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(top, "askrd")
	copyFile(t, askrdBinary(t), bin, 0o755)
	app := filepath.Join(top, "app")
	public := filepath.Join(app, "public")
	if err := os.MkdirAll(public, 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(app, "worker.php")
	copyFile(t, filepath.Join(repoRoot(t), "internal", "integration", "testdata", "worker.php"), script, 0o644)
	conf := "[server]\nlisten = \"" + freeAddr(t) + "\"\nroot = \"" + public + "\"\n[worker]\nscript = \"" + script + "\"\napp_base = \"" + app + "\"\n"
	if cowMode() {
		conf += "cow = true\n"
	}
	path := filepath.Join(top, "askr.toml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	if code, out := runAskrd(t, bin, nil, "config-check", "--user", "nobody", path); code != 0 || !strings.Contains(out, path+" is valid for user nobody;") {
		t.Fatalf("askrd config-check --user nobody with everything readable: exit %d; want 0:\n%s", code, out)
	}
	for _, tc := range []struct {
		key, path string
		mode      os.FileMode // made unreadable for nobody
		restore   os.FileMode
		line      int
		what      string
	}{
		{"server.root", public, 0o700, 0o755, 3, "cannot be read and searched by user nobody"},
		{"server.root", public, 0o711, 0o755, 3, "cannot be read and searched by user nobody"}, // searchable, not readable
		{"worker.script", script, 0o600, 0o644, 5, "cannot be read by user nobody"},
		{"worker.app_base", app, 0o700, 0o755, 6, "cannot be read"}, // the root and script under it fail first
	} {
		if err := os.Chmod(tc.path, tc.mode); err != nil {
			t.Fatal(err)
		}
		want := path + ":" + strconv.Itoa(tc.line) + ": " + tc.key + ": " + tc.path + " " + tc.what
		if tc.key == "worker.app_base" {
			// Nothing under app_base can be reached without entering it: the root is named first.
			want = path + ":3: server.root: stat " + public + ": permission denied"
		}
		if code, out := runAskrd(t, bin, nil, "config-check", "--user", "nobody", path); code != 78 || !strings.Contains(out, want) || !strings.Contains(out, "permission denied") {
			t.Errorf("askrd config-check --user nobody with %s mode %o: exit %d; want 78 and %q:\n%s", tc.path, tc.mode, code, want, out)
		}
		if code, out := runAskrd(t, bin, cred, "serve", "--config", path); code != 78 || !strings.Contains(out, want) {
			t.Errorf("askrd serve as nobody with %s mode %o: exit %d; want 78 and %q:\n%s", tc.path, tc.mode, code, want, out)
		}
		// Root may read it all: config-check as root says valid, which is why it checks as the user.
		if code, out := runAskrd(t, bin, nil, "config-check", "--user", "root", path); code != 0 {
			t.Errorf("askrd config-check --user root with %s mode %o: exit %d; want 0:\n%s", tc.path, tc.mode, code, out)
		}
		if err := os.Chmod(tc.path, tc.restore); err != nil {
			t.Fatal(err)
		}
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
