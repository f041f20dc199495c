package phpruntime

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func phpCGI(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("php-cgi")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("php-cgi not found: %v", err)
		}
		t.Skip("php-cgi not installed")
	}
	return p
}

func TestRuntimeLints(t *testing.T) {
	phpCGI(t)
	path, remove, err := Install(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	installed, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*.php"))
	if len(installed) < 3 {
		t.Fatalf("installed PHP files: %v; want runtime.php, paranoid.php and the runtime's classes", installed)
	}
	for _, p := range installed {
		out, err := exec.Command("php", "-l", p).CombinedOutput()
		if err != nil {
			t.Fatalf("php -l %s: %v\n%s", filepath.Base(p), err, out)
		}
	}
}

// runNative runs testdata/native.php in php-cgi's CGI mode, where PHP parses the request itself.
func runNative(t *testing.T, env []string, body []byte) map[string]json.RawMessage {
	t.Helper()
	bin := phpCGI(t)
	rt, remove, err := Install(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	script, _ := filepath.Abs("testdata/native.php")
	cmd := exec.Command(bin, "-d", "upload_tmp_dir="+t.TempDir())
	cmd.Env = append([]string{
		"GATEWAY_INTERFACE=CGI/1.1", "REDIRECT_STATUS=200", "SCRIPT_FILENAME=" + script,
		"ASKR_RUNTIME_FILE=" + rt, "PATH=/usr/bin:/bin",
	}, env...)
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("php-cgi: %v\n%s", err, out)
	}
	_, js, ok := bytes.Cut(out, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no CGI header block in %q", out)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatalf("%v in %q", err, js)
	}
	return m
}

func same(t *testing.T, what string, a, b json.RawMessage) {
	t.Helper()
	var x, y any
	json.Unmarshal(a, &x)
	json.Unmarshal(b, &y)
	if !reflect.DeepEqual(x, y) {
		t.Errorf("%s: PHP made %s, the askr runtime %s", what, a, b)
	}
}

// The runtime parses Cookie headers exactly as PHP does for php-fpm.
func TestCookiesMatchPHP(t *testing.T) {
	for _, h := range []string{
		"a=1",
		"a=1; b=2; a=3",
		"  sp=1;x=%20y+z; plus=a+b",
		"arr[k]=v; arr[]=1; arr[]=2; arr[k]=w",
		"dots.in.name=1; sp ace=2; [bad=3; ok[=4",
		"empty=; novalue; =nokey; pct%41=1",
		"PHPSESSID=abc123; remember_web_59ba36=eyJpdiI6IjEifQ%3D%3D",
		"a[b][c]=deep; a[b][d]=deeper",
	} {
		m := runNative(t, []string{"REQUEST_METHOD=GET", "HTTP_COOKIE=" + h}, nil)
		same(t, "Cookie: "+h, m["native_cookie"], m["askr_cookie"])
	}
}

// The runtime builds $_FILES from askrd's upload list exactly as PHP's multipart parser does.
func TestFilesMatchPHP(t *testing.T) {
	fields := []string{"doc", "g[a][]", "g[a][]", "g[b]", "list[]", "sp ace", "x.y", "m[0][1]"}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	var askr []map[string]any
	for i, f := range fields {
		name := "file" + strconv.Itoa(i) + ".txt"
		w, _ := mw.CreateFormFile(f, name)
		content := strings.Repeat("z", i+1)
		w.Write([]byte(content))
		// tmp_name differs by nature; the test compares with it normalised below.
		askr = append(askr, map[string]any{"field": f, "name": name, "type": "application/octet-stream",
			"tmp_name": "TMP", "size": i + 1, "error": 0})
	}
	mw.Close()
	js, _ := json.Marshal(askr)
	m := runNative(t, []string{"REQUEST_METHOD=POST", "CONTENT_TYPE=" + mw.FormDataContentType(),
		"CONTENT_LENGTH=" + strconv.Itoa(buf.Len()), "ASKR_TEST_FILES=" + string(js)}, buf.Bytes())
	// PHP's tmp names are random: replace every "/…/php…" tmp_name by "TMP" before comparing.
	var native any
	json.Unmarshal(m["native_files"], &native)
	native = normalizeTmp(native)
	nb, _ := json.Marshal(native)
	same(t, "$_FILES", nb, m["askr_files"])
}

func normalizeTmp(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if k == "tmp_name" {
				x[k] = normalizeAll(e)
			} else {
				x[k] = normalizeTmp(e)
			}
		}
	case []any:
		for i := range x {
			x[i] = normalizeTmp(x[i])
		}
	}
	return v
}

func normalizeAll(v any) any {
	switch x := v.(type) {
	case string:
		return "TMP"
	case map[string]any:
		for k := range x {
			x[k] = normalizeAll(x[k])
		}
	case []any:
		for i := range x {
			x[i] = normalizeAll(x[i])
		}
	}
	return v
}

func TestInstallRemovesStaleCopies(t *testing.T) {
	dir := t.TempDir()
	// A pid that cannot exist (above pid_max) stands for a killed askrd.
	stale := filepath.Join(dir, "askr-runtime-999999999-123")
	os.MkdirAll(stale, 0o755)
	live := filepath.Join(dir, "askr-runtime-1-456") // pid 1 exists
	os.MkdirAll(live, 0o755)
	p, remove, err := Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale runtime copy of a dead askrd kept: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("runtime copy of a live process removed: %v", err)
	}
	remove()
	if _, err := os.Stat(filepath.Dir(p)); !os.IsNotExist(err) {
		t.Errorf("remove() left %s", filepath.Dir(p))
	}
}

// The runtime's directory is askrd's private directory (the CoW socket and the workers' log FIFOs
// go there too): only askrd's user may enter it.
func TestInstallIsPrivate(t *testing.T) {
	path, remove, err := Install(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	st, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("runtime directory mode = %v; want 0700", st.Mode().Perm())
	}
}

// Every class file installed beside runtime.php is required by it (paranoid.php only on demand,
// by Worker.php), and every file it requires is installed.
func TestRuntimeRequiresEveryClassFile(t *testing.T) {
	entry, err := files.ReadFile("runtime.php")
	if err != nil {
		t.Fatal(err)
	}
	var required []string
	for _, m := range regexp.MustCompile(`(?m)^require __DIR__ \. '/(\w+\.php)';$`).FindAllSubmatch(entry, -1) {
		required = append(required, string(m[1]))
	}
	entries, _ := files.ReadDir(".")
	var classes []string
	for _, e := range entries {
		if e.Name() != "runtime.php" && e.Name() != "paranoid.php" {
			classes = append(classes, e.Name())
		}
	}
	slices.Sort(required)
	if !slices.Equal(required, classes) {
		t.Errorf("runtime.php requires %v; want the class files installed beside it, %v", required, classes)
	}
}
