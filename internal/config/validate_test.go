package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

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
		{name: "negative max_rss", src: base + "[server]\nmax_rss = -1\n", key: "server.max_rss", msg: "from 0 to"},
		{name: "max_private_memory in bytes by mistake", src: base + "[server]\nmax_private_memory = 256\n", key: "server.max_private_memory", msg: "a bare number is bytes"},
		{name: "unknown access log format", src: base + "[server]\naccess_log_format = \"common\"\n", key: "server.access_log_format", msg: "combined"},
		{name: "relative admin socket", src: base + "[admin]\nsocket = \"admin.sock\"\n", key: "admin.socket", msg: "absolute"},
		{name: "admin listen without port", src: base + "[admin]\nlisten = \"localhost\"\n", key: "admin.listen", msg: "host:port"},
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
		{name: "queue good", src: base + "[queue]\nworkers = 2\nscript = \"$DIR/app/worker.php\"\n[scheduler]\nscript = \"$DIR/app/worker.php\"\ninterval = \"1s\"\n"},
		{name: "queue workers without a script", src: base + "[queue]\nworkers = 2\n", key: "queue.workers", msg: "need a script"},
		{name: "queue script missing", src: base + "[queue]\nworkers = 1\nscript = \"$DIR/app/queue.php\"\n", key: "queue.script", msg: "queue.php is not a readable file"},
		{name: "negative queue workers", src: base + "[queue]\nworkers = -1\n", key: "queue.workers", msg: "negative"},
		{name: "queue workers_max below workers", src: base + "[queue]\nworkers = 3\nworkers_max = 2\nscript = \"$DIR/app/worker.php\"\n", key: "queue.workers_max", msg: "below queue.workers"},
		{name: "scheduler interval under a second", src: base + "[scheduler]\ninterval = \"500ms\"\n", key: "scheduler.interval", msg: "at least 1s"},
		{name: "scheduler script missing", src: base + "[scheduler]\nscript = \"$DIR/nope.php\"\n", key: "scheduler.script", msg: "nope.php is not a readable file"},
		{name: "sidecar good", src: base + "[[sidecar]]\ncommand = \"sleep 1\"\nrestart = \"on-failure\"\ncount = 2\n"},
		{name: "sidecar without command", src: base + "[[sidecar]]\nname = \"ssr\"\n", key: "sidecar.command", msg: "must not be empty"},
		{name: "sidecar bad restart", src: base + "[[sidecar]]\ncommand = \"y\"\nrestart = \"never\"\n", key: "sidecar.restart", msg: `"always" or "on-failure", not "never"`},
		{name: "sidecar negative count", src: base + "[[sidecar]]\ncommand = \"y\"\ncount = -2\n", key: "sidecar.count", msg: "negative"},
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

// Each [[sidecar]] gets its defaults: a name from its command's first word (without the directory,
// numbered when two share it), one copy, restart always, 10 s of grace.
func TestValidateSidecarDefaults(t *testing.T) {
	dir := appDir(t)
	c := Defaults()
	c.Server.Root, c.Worker.Script = filepath.Join(dir, "app", "public"), filepath.Join(dir, "app", "worker.php")
	c.Sidecar = []Sidecar{{Command: "/usr/bin/node bootstrap/ssr/ssr.mjs"}, {Command: "  node other.mjs", Count: 3}, {Command: "php artisan reverb:start", Name: "reverb", Grace: Duration(time.Minute)}}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() error = %v; want nil", err)
	}
	want := []Sidecar{
		{Command: "/usr/bin/node bootstrap/ssr/ssr.mjs", Name: "node", Count: 1, Restart: "always", Grace: Duration(10 * time.Second)},
		{Command: "  node other.mjs", Name: "node-2", Count: 3, Restart: "always", Grace: Duration(10 * time.Second)},
		{Command: "php artisan reverb:start", Name: "reverb", Count: 1, Restart: "always", Grace: Duration(time.Minute)},
	}
	if !reflect.DeepEqual(c.Sidecar, want) {
		t.Errorf("sidecars after Validate = %+v; want %+v", c.Sidecar, want)
	}
	if c.NeedsPHPCLI() {
		t.Error("NeedsPHPCLI() = true without [queue] or [scheduler]")
	}
	c.Queue.Workers, c.Queue.Script = 1, c.Worker.Script
	if !c.NeedsPHPCLI() {
		t.Error("NeedsPHPCLI() = false with [queue] outside CoW mode")
	}
	if c.Worker.Cow = true; c.NeedsPHPCLI() {
		t.Error("NeedsPHPCLI() = true in CoW mode, where the queue workers are forks")
	}
}

// A derived name never takes a name given to another sidecar; two sidecars given one name are an
// error (their status and metrics would be one).
func TestValidateSidecarNames(t *testing.T) {
	dir := appDir(t)
	c := Defaults()
	c.Server.Root, c.Worker.Script = filepath.Join(dir, "app", "public"), filepath.Join(dir, "app", "worker.php")
	c.Sidecar = []Sidecar{{Command: "node a.js"}, {Command: "node b.js"}, {Command: "x", Name: "node-2"}}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() error = %v; want nil", err)
	}
	if got := []string{c.Sidecar[0].Name, c.Sidecar[1].Name, c.Sidecar[2].Name}; !slices.Equal(got, []string{"node", "node-3", "node-2"}) {
		t.Errorf("names = %v; want node, node-3, node-2", got)
	}
	c.Sidecar = []Sidecar{{Command: "a", Name: "ssr"}, {Command: "b", Name: "ssr"}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `sidecar.name: "ssr" names two sidecars`) {
		t.Errorf("Validate() of two sidecars named ssr = %v; want sidecar.name: \"ssr\" names two sidecars", err)
	}
}
