package httpfront

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// tree is a directory served by askrd: the document root or an alias's directory. Lookups go
// through os.Root, so nothing in them resolves outside dir, except a symbolic link whose target is
// owned by the link's owner (nginx's disable_symlinks if_not_owner, for the links that leave the
// tree): what a package installs (Debian's WordPress links /usr/share/javascript files into its
// root) is followed, a link someone else planted in a writable directory to a file they do not
// own is not.
type tree struct {
	dir  string // absolute, cleaned
	root *os.Root
}

func openTree(dir string) (*tree, error) {
	dir = filepath.Clean(dir)
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &tree{dir: dir, root: r}, nil
}

func (t *tree) Close() error { return t.root.Close() }

// refused reports a lookup error other than "no such file": a link askr does not follow, a loop,
// no permission. nginx answers those with 403.
func refused(err error) bool {
	return err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR)
}

// stat returns the FileInfo of rel ("" or "." for the tree's top), following symbolic links.
func (t *tree) stat(rel string) (fs.FileInfo, error) {
	if rel == "" {
		rel = "."
	}
	fi, err := t.root.Stat(rel)
	if !refused(err) { // else maybe a link out of the tree, which os.Root refuses
		return fi, err
	}
	p, err := t.resolve(rel)
	if err != nil {
		return nil, err
	}
	return os.Lstat(p)
}

// open opens rel for reading.
func (t *tree) open(rel string) (*os.File, error) {
	f, err := t.root.Open(rel)
	if !refused(err) {
		return f, err
	}
	p, err := t.resolve(rel)
	if err != nil {
		return nil, err
	}
	return os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
}

// errForeignLink is why a symbolic link out of a tree is not followed.
var errForeignLink = errors.New("symbolic link out of the served directory to a file its owner does not own")

// resolve resolves rel in the tree link by link and returns the path of what it names, which has
// no symbolic link left. A link whose target lies outside the tree is followed only if the target
// has the link's owner.
func (t *tree) resolve(rel string) (string, error) {
	hops := 0
	return t.follow(t.dir, rel, &hops)
}

func (t *tree) follow(dir, p string, hops *int) (string, error) {
	cur := dir
	if filepath.IsAbs(p) {
		cur = "/"
	}
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if *hops++; *hops > 40 {
			return "", &fs.PathError{Op: "resolve", Path: next, Err: syscall.ELOOP}
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		res, err := t.follow(cur, target, hops)
		if err != nil {
			return "", err
		}
		if !t.contains(res) {
			st, err := os.Lstat(res)
			if err != nil {
				return "", err
			}
			if owner(st) != owner(fi) {
				return "", &fs.PathError{Op: "resolve", Path: next, Err: errForeignLink}
			}
		}
		cur = res
	}
	return cur, nil
}

func (t *tree) contains(p string) bool {
	return p == t.dir || strings.HasPrefix(p, t.dir+"/") || t.dir == "/"
}

func owner(fi fs.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid
	}
	return ^uint32(0)
}

// cleanPath resolves the dot segments and repeated slashes of an (unescaped) URL path as nginx
// does for $uri. ok is false for a path that is not absolute, holds a NUL byte, or climbs above
// the root with "..": nginx answers those with 400. A trailing slash is kept.
func cleanPath(p string) (clean string, ok bool) {
	if p == "" || p[0] != '/' || strings.IndexByte(p, 0) >= 0 {
		return "", false
	}
	segs := make([]string, 0, 8)
	for _, s := range strings.Split(p[1:], "/") {
		switch s {
		case "", ".":
		case "..":
			if len(segs) == 0 {
				return "", false
			}
			segs = segs[:len(segs)-1]
		default:
			segs = append(segs, s)
		}
	}
	clean = "/" + strings.Join(segs, "/")
	last := p[strings.LastIndexByte(p, '/')+1:]
	if len(segs) > 0 && (last == "" || last == "." || last == "..") {
		clean += "/"
	}
	return clean, true
}

// hidden reports whether a clean path has a segment starting with a dot other than .well-known:
// nothing in one is served or run.
func hidden(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if strings.HasPrefix(seg, ".") && seg != ".well-known" {
			return true
		}
	}
	return false
}

// splitScript finds the PHP script in a clean path as nginx's `location ~ [^/]\.php(/|$)` with
// `fastcgi_split_path_info ^(.+?\.php)(/.*)$` does: the path up to the first ".php/" (the rest is
// PATH_INFO), else the whole path if it ends in ".php". ".php" is matched case-sensitively, as
// there; other spellings are never run (and never served: see servable).
func splitScript(p string) (script, pathInfo string, ok bool) {
	for i := 1; ; {
		j := strings.Index(p[i:], ".php/")
		if j < 0 {
			break
		}
		j += i
		if p[j-1] != '/' {
			return p[:j+4], p[j+4:], true
		}
		i = j + 1
	}
	if n := len(p); n > 5 && strings.HasSuffix(p, ".php") && p[n-5] != '/' {
		return p, "", true
	}
	return "", "", false
}

// routeKind says what per-request mode does with a request.
type routeKind int

const (
	routeScript    routeKind = iota // run a PHP script
	routeStatic                     // serve a file
	routeRedirect                   // 301 to the directory's URL with a slash
	routeBad                        // 400
	routeForbidden                  // 403
	routeNotFound                   // 404
)

// route is where a request goes in per-request mode.
type route struct {
	kind     routeKind
	script   string      // routeScript: SCRIPT_NAME, the script's URL path ("/index.php")
	pathInfo string      // routeScript: PATH_INFO
	docURI   string      // routeScript: DOCUMENT_URI, nginx's $uri after try_files and index: the script
	file     *os.File    // routeStatic: the open file (the caller closes it)
	info     fs.FileInfo // routeStatic
	location string      // routeRedirect: the path with its slash
}

// alias serves the URLs under prefix from a directory other than the root: static files only.
type alias struct {
	prefix string // "/wp-content/"
	t      *tree
}

// router maps URL paths as nginx does with try_files $uri $uri/ /front?$args, index index.php
// index.html, PHP scripts split as splitScript says, and aliases (location ^~ prefix { alias dir;
// PHP refused }), with askr's rules on top: nothing in a dot segment but .well-known is served or
// run, PHP sources are never served, nothing outside the root or an alias (but package links, see
// tree) is reached.
type router struct {
	root    *tree
	front   string // "/index.php"
	aliases []alias
}

// route looks the URL path up. It opens a static file only for GET and HEAD; for other methods a
// static file's route has no file (the caller answers 405).
func (rt *router) route(urlPath string, read bool) route {
	p, ok := cleanPath(urlPath)
	if !ok {
		return route{kind: routeBad}
	}
	if hidden(p) {
		return route{kind: routeNotFound}
	}
	for _, a := range rt.aliases {
		if strings.HasPrefix(p, a.prefix) || p+"/" == a.prefix {
			return a.route(p, read)
		}
	}
	if script, pathInfo, ok := splitScript(p); ok {
		if fi, err := rt.root.stat(script[1:]); err != nil || !fi.Mode().IsRegular() {
			return route{kind: routeNotFound}
		}
		// try_files $fastcgi_script_name sets $uri, and so DOCUMENT_URI, to the script.
		return route{kind: routeScript, script: script, pathInfo: pathInfo, docURI: script}
	}
	rel := strings.TrimSuffix(p[1:], "/")
	var fi fs.FileInfo
	var err error
	if rel == "" {
		fi = rootInfo{} // the root is a directory: no need to ask
	} else {
		fi, err = rt.root.stat(rel)
	}
	switch {
	case refused(err):
		return route{kind: routeForbidden}
	case err == nil && fi.Mode().IsRegular() && !strings.HasSuffix(p, "/"):
		return rt.root.static(rel, fi, read)
	case err == nil && fi.IsDir() && !strings.HasSuffix(p, "/") && p != "/":
		return route{kind: routeRedirect, location: p + "/"}
	case err == nil && fi.IsDir():
		dir := p
		if !strings.HasSuffix(dir, "/") {
			dir += "/"
		}
		if fi, err := rt.root.stat(dir[1:] + "index.php"); err == nil && fi.Mode().IsRegular() {
			return route{kind: routeScript, script: dir + "index.php", docURI: dir + "index.php"}
		}
		if fi, err := rt.root.stat(dir[1:] + "index.html"); err == nil && fi.Mode().IsRegular() {
			return rt.root.static(dir[1:]+"index.html", fi, read)
		}
		return route{kind: routeForbidden}
	}
	if fi, err := rt.root.stat(rt.front[1:]); err == nil && fi.Mode().IsRegular() {
		return route{kind: routeScript, script: rt.front, docURI: rt.front}
	}
	return route{kind: routeNotFound}
}

// rootInfo stands for the FileInfo of the root, which is known to be a directory.
type rootInfo struct{ fs.FileInfo }

func (rootInfo) IsDir() bool       { return true }
func (rootInfo) Mode() fs.FileMode { return fs.ModeDir }

// static is the route of a regular file at rel: 403 if it must not be served (see servable), else
// the open file when read is set.
func (t *tree) static(rel string, fi fs.FileInfo, read bool) route {
	if !servable(rel) || !targetServable(t.dir, rel) {
		return route{kind: routeForbidden}
	}
	if !read {
		return route{kind: routeStatic, info: fi}
	}
	f, err := t.open(rel)
	if err != nil {
		return route{kind: routeNotFound}
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return route{kind: routeNotFound}
	}
	return route{kind: routeStatic, file: f, info: st}
}

// route looks up a clean path under the alias: static files only, no PHP, no directory index.
func (a alias) route(p string, read bool) route {
	rel := strings.TrimPrefix(p, a.prefix)
	if p+"/" == a.prefix {
		return route{kind: routeRedirect, location: a.prefix}
	}
	if strings.HasSuffix(strings.ToLower(strings.TrimSuffix(rel, "/")), ".php") || strings.Contains(strings.ToLower(rel), ".php/") {
		return route{kind: routeForbidden}
	}
	fi, err := a.t.stat(strings.TrimSuffix(rel, "/"))
	switch {
	case refused(err):
		return route{kind: routeForbidden}
	case err != nil:
		return route{kind: routeNotFound}
	case fi.IsDir() && !strings.HasSuffix(p, "/"):
		return route{kind: routeRedirect, location: p + "/"}
	case fi.Mode().IsRegular() && !strings.HasSuffix(p, "/"):
		return a.t.static(rel, fi, read)
	case fi.Mode().IsRegular():
		return route{kind: routeNotFound}
	}
	return route{kind: routeForbidden}
}

// servable reports whether the file at rel (relative to the root or an alias's directory) may be
// served as a static file; both modes ask it (worker mode's serveStatic, per-request mode's
// tree.static). No segment of rel may be, case aside:
//   - a dotfile or dot directory other than .well-known (.env, .git, .x.php.swp);
//   - PHP source, whatever follows: a name containing ".php", ".pht" or ".phar" (x.php, x.PHP,
//     x.php5, x.phps, x.php.bak, x.php~, x.php.orig, x.phtml, x.phar, dir.php/...);
//   - an include or a leftover of an editor or a deploy: a name ending in ".inc", "~", ".bak",
//     ".swp", ".swo", ".orig", ".save", ".old", ".rej" or ".tmp", or "#…#" (Emacs).
//
// Assets that merely look alike (photo.old.png, vendor.bak.js) are served.
func servable(rel string) bool {
	for seg := range strings.SplitSeq(rel, "/") {
		if strings.HasPrefix(seg, ".") && seg != ".well-known" {
			return false
		}
		if !servableName(strings.ToLower(seg)) {
			return false
		}
	}
	return true
}

// leftovers are the endings of names editors and deploys leave beside a file, and of PHP includes.
var leftovers = []string{"~", ".inc", ".bak", ".swp", ".swo", ".orig", ".save", ".old", ".rej", ".tmp"}

// servableName applies servable's name rules to one lower-case path segment.
func servableName(name string) bool {
	if strings.Contains(name, ".php") || strings.Contains(name, ".pht") || strings.Contains(name, ".phar") {
		return false
	}
	if len(name) > 1 && name[0] == '#' && name[len(name)-1] == '#' {
		return false
	}
	for _, s := range leftovers {
		if strings.HasSuffix(name, s) {
			return false
		}
	}
	return true
}

// targetServable reports whether rel under dir, if its last element is a symbolic link, leads to a
// file whose own name may be served too: a link "a.txt" → "config.php" must not publish PHP source.
func targetServable(dir, rel string) bool {
	full := filepath.Join(dir, rel)
	fi, err := os.Lstat(full)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return true
	}
	real, err := filepath.EvalSymlinks(full)
	return err == nil && servable(filepath.Base(real))
}
