package httpfront

import (
	"os"
	"path/filepath"
	"testing"
)

// routeRoot builds a document root with scripts, static files, PHP sources, dot files and
// directories, directory indexes and symbolic links, and an alias directory beside it.
func routeRoot(t *testing.T) (root, aliasDir string) {
	t.Helper()
	top := t.TempDir()
	root, aliasDir = filepath.Join(top, "root"), filepath.Join(top, "content")
	outside := filepath.Join(top, "outside")
	files := map[string]string{
		"root/index.php": "<?php", "root/info.php": "<?php", "root/style.css": "body{}", "root/A.PHP": "<?php",
		"root/app.phar": "phar", "root/notes.php.bak": "old", "root/x.phtml": "<?php", "root/lib.inc": "<?php", "root/index.php~": "<?php", "root/.env": "SECRET=1", "root/.git/config": "[core]",
		"root/.well-known/acme-challenge/token": "t", "root/.hidden/x.php": "<?php",
		"root/wp-admin/index.php": "<?php", "root/wp-admin/admin.php": "<?php", "root/docs/index.html": "<p>",
		"root/sub/a.php": "<?php", "root/dir.php/inner.txt": "x",
		"content/uploads/pic.png": "png", "content/index.php": "<?php", "content/.htaccess": "deny",
		"outside/out.js": "js", "outside/secret.txt": "s",
	}
	for name, content := range files {
		p := filepath.Join(top, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The symbolic-link policy (tree): a link out of the root is followed to what has the link's
	// owner and every local account may read. t.TempDir's directories are 0700: open the way to
	// "outside" (and to it only) so that it is public, as /usr/share/javascript is.
	for _, d := range []string{filepath.Dir(top), top} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	private := filepath.Join(top, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(private, "key.txt"), []byte("KEY"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"root/link-in":          "sub",                             // a directory inside the root
		"root/link-out":         outside,                           // a public directory outside, same owner
		"root/link-private.txt": filepath.Join(private, "key.txt"), // same owner, in a private directory
		"root/link-loop":        "link-loop",
		"root/link-dangling":    "nowhere",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(top, name)); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() == 0 {
		// A link to a file of another user: not followed.
		if err := os.Chown(filepath.Join(outside, "secret.txt"), 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(root, "link-foreign.txt")); err != nil {
			t.Fatal(err)
		}
	}
	return root, aliasDir
}

func TestRoute(t *testing.T) {
	root, aliasDir := routeRoot(t)
	rootTree, err := openTree(root)
	if err != nil {
		t.Fatal(err)
	}
	defer rootTree.Close()
	aliasTree, err := openTree(aliasDir)
	if err != nil {
		t.Fatal(err)
	}
	defer aliasTree.Close()
	r := router{root: rootTree, front: "/index.php", aliases: []alias{{prefix: "/wp-content/", t: aliasTree}}}

	const (
		script   = routeScript
		static   = routeStatic
		redirect = routeRedirect
		bad      = routeBad
		denied   = routeForbidden
		missing  = routeNotFound
	)
	for _, tc := range []struct {
		path string
		kind routeKind
		// script: SCRIPT_NAME, PATH_INFO, DOCUMENT_URI; static: the file's name; redirect: Location
		a, b, c string
	}{
		{"/", script, "/index.php", "", "/index.php"},
		{"/index.php", script, "/index.php", "", "/index.php"},
		{"/info.php/extra/path", script, "/info.php", "/extra/path", "/info.php"},
		{"/info.php/", script, "/info.php", "/", "/info.php"},
		{"/info.php/a.php/b", script, "/info.php", "/a.php/b", "/info.php"},
		{"/nope.php", missing, "", "", ""},
		{"/nope.php/x", missing, "", "", ""},
		{"/dir.php", missing, "", "", ""}, // a directory, not a script
		{"/dir.php/inner.txt", missing, "", "", ""},
		{"/hello-world/", script, "/index.php", "", "/index.php"}, // try_files → the front controller
		{"/no/such/file.css", script, "/index.php", "", "/index.php"},
		{"/style.css", static, "style.css", "", ""},
		{"/style.css/", script, "/index.php", "", "/index.php"},
		{"/notes.php.bak", denied, "", "", ""}, // PHP source with a suffix: neither run nor served
		{"/x.phtml", denied, "", "", ""},       // never run: only .php runs, as under nginx
		{"/lib.inc", denied, "", "", ""},
		{"/index.php~", denied, "", "", ""},
		{"/A.PHP", denied, "", "", ""}, // never run (not .php), never served (a PHP source)
		{"/app.phar", denied, "", "", ""},
		{"/.env", missing, "", "", ""},
		{"/.git/config", missing, "", "", ""},
		{"/.hidden/x.php", missing, "", "", ""},
		{"/.hidden/", missing, "", "", ""},
		{"/.well-known/acme-challenge/token", static, "token", "", ""},
		{"/wp-admin", redirect, "/wp-admin/", "", ""},
		{"/wp-admin/", script, "/wp-admin/index.php", "", "/wp-admin/index.php"},
		{"/wp-admin/admin.php", script, "/wp-admin/admin.php", "", "/wp-admin/admin.php"},
		{"/docs/", static, "index.html", "", ""},
		{"/empty/", denied, "", "", ""},
		{"/empty", redirect, "/empty/", "", ""},
		{"/a/../style.css", static, "style.css", "", ""},
		{"/a/./b/../../style.css", static, "style.css", "", ""},
		{"//style.css", static, "style.css", "", ""},
		{"/wp-admin/.", script, "/wp-admin/index.php", "", "/wp-admin/index.php"},
		{"/../etc/passwd", bad, "", "", ""},
		{"/sub/../../x", bad, "", "", ""},
		{"/..", bad, "", "", ""},
		{"style.css", bad, "", "", ""},
		{"/style\x00.css", bad, "", "", ""},
		{"/link-in/a.php", script, "/link-in/a.php", "", "/link-in/a.php"},
		{"/link-out/out.js", static, "out.js", "", ""},
		{"/link-private.txt", denied, "", "", ""},
		{"/link-loop", denied, "", "", ""},
		{"/link-dangling", script, "/index.php", "", "/index.php"},
		{"/wp-content/uploads/pic.png", static, "pic.png", "", ""},
		{"/wp-content/index.php", denied, "", "", ""},
		{"/wp-content/uploads/", denied, "", "", ""},
		{"/wp-content/uploads", redirect, "/wp-content/uploads/", "", ""},
		{"/wp-content", redirect, "/wp-content/", "", ""},
		{"/wp-content/.htaccess", missing, "", "", ""},
		{"/wp-content/missing.png", missing, "", "", ""},
		{"/wp-content/../style.css", static, "style.css", "", ""}, // cleaned first: not under the alias
	} {
		got := r.tryFiles(tc.path, true)
		if got.file != nil {
			got.file.Close()
		}
		var a, b, c string
		switch got.kind {
		case routeScript:
			a, b, c = got.script, got.pathInfo, got.docURI
		case routeStatic:
			a = got.info.Name()
		case routeRedirect:
			a = got.location
		}
		if got.kind != tc.kind || a != tc.a || b != tc.b || c != tc.c {
			t.Errorf("route(%q) = kind %d, %q, %q, %q; want kind %d, %q, %q, %q", tc.path, got.kind, a, b, c, tc.kind, tc.a, tc.b, tc.c)
		}
	}

	if os.Geteuid() == 0 {
		if got := r.tryFiles("/link-foreign.txt", true); got.kind != routeForbidden {
			t.Errorf("route(a link to another user's file outside the root) = kind %d; want 403 (%d)", got.kind, routeForbidden)
		}
	}
	// Only GET and HEAD open a static file; other methods learn it is one.
	if got := r.tryFiles("/style.css", false); got.kind != routeStatic || got.file != nil {
		t.Errorf("route(/style.css) for a POST = kind %d, file %v; want static without a file", got.kind, got.file)
	}
}

func TestCleanPath(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"/", "/", true}, {"/a/b", "/a/b", true}, {"/a/b/", "/a/b/", true}, {"/a//b", "/a/b", true},
		{"/a/./b", "/a/b", true}, {"/a/b/..", "/a/", true}, {"/a/..", "/", true}, {"/a/.", "/a/", true},
		{"/..", "", false}, {"/a/../..", "", false}, {"", "", false}, {"a", "", false},
	} {
		if got, ok := cleanPath(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("cleanPath(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSplitScript(t *testing.T) {
	for _, tc := range []struct {
		in, script, pathInfo string
		ok                   bool
	}{
		{"/index.php", "/index.php", "", true},
		{"/x.php/more", "/x.php", "/more", true},
		{"/a/b.php/c.php/d", "/a/b.php", "/c.php/d", true},
		{"/a.phpx/b.php", "/a.phpx/b.php", "", true},
		{"/a.PHP", "", "", false},
		{"/a.php.bak", "", "", false},
		{"/style.css", "", "", false},
		{"/php", "", "", false},
	} {
		script, pathInfo, ok := splitScript(tc.in)
		if script != tc.script || pathInfo != tc.pathInfo || ok != tc.ok {
			t.Errorf("splitScript(%q) = %q, %q, %v; want %q, %q, %v", tc.in, script, pathInfo, ok, tc.script, tc.pathInfo, tc.ok)
		}
	}
}

// One router for both modes: the root, the aliases, what is never served and the symbolic-link
// policy are the router's, for both; only what becomes of a URL that names no servable static file
// differs (router.app gives it to the front controller, router.tryFiles follows nginx).
func TestOneRouter(t *testing.T) {
	b := newBothModes(t)
	for _, tc := range []struct {
		method, target     string
		worker, perRequest string
	}{
		{"GET", "/style.css", "file body{}", "file body{}"},
		{"GET", "/wp-content/uploads/pic.png", "file png", "file png"},
		{"GET", "/wp-content/index.php", "Forbidden", "Forbidden"},
		{"POST", "/wp-content/uploads/pic.png", "Method Not Allowed", "Method Not Allowed"},
		{"GET", "/wp-content/uploads", "Moved Permanently", "Moved Permanently"},
		{"GET", "/.env", "Not Found", "Not Found"},
		{"GET", "/.git/config", "Not Found", "Not Found"},
		{"GET", "/no/such/page", "php /index.php", "php /index.php"},
		{"GET", "/", "php /index.php", "php /index.php"},
		{"GET", "/lib.inc", "Not Found", "Forbidden"},    // never served: askrd's own answer
		{"GET", "/A.PHP", "php /index.php", "Forbidden"}, // a .php URL is the app's in worker mode
		{"GET", "/info.php/x", "php /index.php", "php /info.php"},
		{"GET", "/wp-admin", "php /index.php", "Moved Permanently"},
		{"POST", "/style.css", "php /index.php", "Method Not Allowed"},
		{"GET", "/../etc/passwd", "php /index.php", "Bad Request"},
		{"GET", "/.nothing", "php /index.php", "Not Found"},
	} {
		w, p := b.outcome(tc.method, tc.target)
		if w != tc.worker || p != tc.perRequest {
			t.Errorf("%s %s: worker mode %q, per-request %q; want %q, %q", tc.method, tc.target, w, p, tc.worker, tc.perRequest)
		}
	}
}

// cleanPath's shortcut for a path that is clean already gives what the full resolution gives.
func TestCleanPathShortcut(t *testing.T) {
	segs := []string{"", ".", "..", "a", ".b", "c.php"}
	var paths []string
	var gen func(p string, n int)
	gen = func(p string, n int) {
		paths = append(paths, p, p+"/")
		if n == 0 {
			return
		}
		for _, s := range segs {
			gen(p+"/"+s, n-1)
		}
	}
	gen("", 4)
	for _, p := range paths {
		if p == "" {
			continue
		}
		want, wantOK := resolvePath(p)
		got, ok := cleanPath(p)
		if got != want || ok != wantOK {
			t.Errorf("cleanPath(%q) = %q, %v; want %q, %v", p, got, ok, want, wantOK)
		}
		if isClean(p) && want != p {
			t.Errorf("isClean(%q) but it cleans to %q", p, want)
		}
	}
}
