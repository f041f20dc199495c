package phpext

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// repoRoot is the repository's top directory.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// need skips the test when a tool is missing, unless $CI is set (there it must be installed).
func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found: %v (make deps installs %s)", tool, err, pkg)
		}
		t.Skipf("%s not installed (%s; make deps)", tool, pkg)
	}
	return p
}

var (
	buildOnce sync.Once
	buildErr  error
)

// extension returns build/ext/askr.so, built (or brought up to date) by `make ext` once per run.
func extension(t *testing.T) string {
	t.Helper()
	need(t, "php-cgi", "php8.2-cgi")
	need(t, "phpize", "php8.2-dev")
	buildOnce.Do(func() {
		out, err := exec.Command("make", "-C", repoRoot(), "--no-print-directory", "ext").CombinedOutput()
		if err != nil {
			buildErr = errors.New("make ext: " + err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(repoRoot(), "build", "ext", "askr.so")
}

// php runs src as a script in dir with php-cgi and the extension, the way workers run (the
// system's php.ini, no output buffer), and returns what it printed.
func php(t *testing.T, dir, src string) string {
	t.Helper()
	ext := extension(t)
	script := filepath.Join(dir, "test.php")
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	// -f implies -q: no CGI headers. Errors go to stderr, not into the output.
	cmd := exec.Command("php-cgi", "-d", "extension="+ext, "-d", "output_buffering=0",
		"-d", "display_errors=stderr", "-f", script)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("php-cgi %s: err = %v, stderr = %q; want success and no errors\nstdout: %s", script, err, stderr.String(), out)
	}
	return string(out)
}

// readLog reads the lines a script appended to dir/log (its output may be disabled).
func readLog(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const logFunc = `function logline(string $s): void { file_put_contents(__DIR__ . '/log', "$s\n", FILE_APPEND); }
`

func TestUploadedFiles(t *testing.T) {
	dir := t.TempDir()
	got := php(t, dir, `<?php
function show(string $what, mixed $v): void { echo $what, ": ", var_export($v, true), "\n"; }
$up = __DIR__ . '/upload';
$other = __DIR__ . '/other';
$next = __DIR__ . '/next';
$last = __DIR__ . '/last';
foreach ([$up, $other, $next, $last] as $f) file_put_contents($f, basename($f));

askr_ext_request_begin([$up, $up]);
show('registered', is_uploaded_file($up));
show('unregistered', is_uploaded_file($other));
show('move unregistered', move_uploaded_file($other, __DIR__ . '/moved-other'));
show('move registered', move_uploaded_file($up, __DIR__ . '/moved'));
show('registered after its move', is_uploaded_file($up));
show('moved content', file_get_contents(__DIR__ . '/moved'));

askr_ext_request_begin([$next]);
show('next request', is_uploaded_file($next));
askr_ext_request_begin([]);
show('after the next begin', is_uploaded_file($next));
show('still on disk', file_exists($next));

askr_ext_request_begin([$last]); // left registered when the script ends
`)
	want := `registered: true
unregistered: false
move unregistered: false
move registered: true
registered after its move: false
moved content: 'upload'
next request: true
after the next begin: false
still on disk: true
`
	if got != want {
		t.Errorf("upload script printed:\n%s\nwant:\n%s", got, want)
	}
	for _, f := range []string{"other", "moved", "next", "last"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("after the script, %s: %v; want the file (PHP must unlink no file askrd registered)", f, err)
		}
	}
	for _, f := range []string{"upload", "moved-other"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after the script, stat %s error = %v; want it not to exist", f, err)
		}
	}
}

func TestFlushCallback(t *testing.T) {
	got := php(t, t.TempDir(), `<?php
$calls = 0;
askr_ext_on_flush(function () use (&$calls) { $calls++; echo "[cb $calls]"; flush(); });
echo "a"; flush(); echo "b"; flush(); echo "\n";

askr_ext_on_flush(function () { throw new RuntimeException('from the callback'); });
try {
	flush();
	echo "not thrown\n";
} catch (RuntimeException $e) {
	echo "flush() threw: ", $e->getMessage(), "\n";
}

askr_ext_on_flush(function () { askr_ext_on_flush(null); echo "[unregistered itself]"; });
flush(); flush(); echo "\n";

askr_ext_on_flush(function () { echo "[replaced]"; });
askr_ext_on_flush(function () { echo "[replacement]"; });
flush();
askr_ext_on_flush(null);
flush();
echo "\n";

// A private method, registered from its class: resolved there, and its object kept alive.
class App {
	private function onFlush(): void { echo "[private method]"; }
	public function register(): void { askr_ext_on_flush([$this, 'onFlush']); }
}
(new App)->register();
flush();
echo "\n";
`)
	want := "a[cb 1]b[cb 2]\n" +
		"flush() threw: from the callback\n" +
		"[unregistered itself]\n" +
		"[replacement]\n" +
		"[private method]\n"
	if got != want {
		t.Errorf("flush script printed:\n%s\nwant:\n%s", got, want)
	}
}

func TestAbortIgnored(t *testing.T) {
	dir := t.TempDir()
	got := php(t, dir, `<?php
`+logFunc+`
ignore_user_abort(true);
echo "before\n";
logline('aborted before: ' . connection_aborted());
askr_ext_abort();
echo "while aborted\n"; // output is off, as after a failed write to the client
logline('aborted after: ' . connection_aborted());
askr_ext_request_begin([]);
logline('after the next begin: ' . connection_aborted());
echo "next request\n";
`)
	if want := "before\nnext request\n"; got != want {
		t.Errorf("abort script printed %q; want %q", got, want)
	}
	if got, want := readLog(t, dir), "aborted before: 0\naborted after: 1\nafter the next begin: 0\n"; got != want {
		t.Errorf("abort script logged:\n%s\nwant:\n%s", got, want)
	}
}

func TestAbortStopsScript(t *testing.T) {
	dir := t.TempDir()
	php(t, dir, `<?php
`+logFunc+`
register_shutdown_function(function () { logline('shutdown function, aborted: ' . connection_aborted()); });
logline('before');
askr_ext_abort();
logline('after');
`)
	if got, want := readLog(t, dir), "before\nshutdown function, aborted: 1\n"; got != want {
		t.Errorf("abort script logged:\n%s\nwant:\n%s", got, want)
	}
}

func TestVersion(t *testing.T) {
	if got := php(t, t.TempDir(), `<?php echo askr_ext_version();`); got == "" || strings.ContainsAny(got, " \n") {
		t.Errorf("askr_ext_version() = %q; want a version", got)
	}
}

func TestCheck(t *testing.T) {
	ext := extension(t)
	ctx := context.Background()
	if err := Check(ctx, "php-cgi", ext, []string{"memory_limit=64M"}); err != nil {
		t.Errorf("Check(%s) error = %v; want nil", ext, err)
	}
	junk := filepath.Join(t.TempDir(), "askr.so")
	if err := os.WriteFile(junk, []byte("not ELF"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Check(ctx, "php-cgi", junk, nil)
	if err == nil || !strings.Contains(err.Error(), "Unable to load dynamic library") || !strings.Contains(err.Error(), junk) {
		t.Errorf("Check(%s) error = %v; want PHP's \"Unable to load dynamic library\" for it", junk, err)
	}
}

func TestFind(t *testing.T) {
	_, statErr := os.Stat(InstalledPath)
	installed := statErr == nil
	tree := t.TempDir()
	exe := filepath.Join(tree, "bin", "askrd")
	built := filepath.Join(tree, "build", "ext", "askr.so")
	beside := filepath.Join(tree, "bin", "askr.so")
	touch := func(p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantAuto := func(want string) {
		t.Helper()
		if installed {
			want = InstalledPath
		}
		got, err := Find(Auto, exe)
		if want == "" {
			if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), built) {
				t.Errorf("Find(auto, %s) = %q, %v; want ErrNotFound naming %s", exe, got, err, built)
			}
			return
		}
		if got != want || err != nil {
			t.Errorf("Find(auto, %s) = %q, %v; want %q, nil", exe, got, err, want)
		}
	}
	if want := []string{InstalledPath, beside, built}; !slices.Equal(Candidates(exe), want) {
		t.Errorf("Candidates(%s) = %q; want %q", exe, Candidates(exe), want)
	}
	wantAuto("")
	touch(built)
	wantAuto(built)
	touch(beside)
	wantAuto(beside)

	if got, err := Find(None, exe); got != "" || err != nil {
		t.Errorf("Find(none) = %q, %v; want \"\", nil", got, err)
	}
	t.Chdir(tree)
	if got, err := Find("bin/askr.so", exe); got != beside || err != nil {
		t.Errorf("Find(bin/askr.so) in %s = %q, %v; want %q, nil", tree, got, err, beside)
	}
	if got := Candidates(""); !slices.Equal(got, []string{InstalledPath}) {
		t.Errorf("Candidates(\"\") = %q; want only %q", got, InstalledPath)
	}
}
