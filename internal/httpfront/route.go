package httpfront

import (
	"io/fs"
	"os"
	"path"
	"strings"
)

// cleanPath resolves the dot segments and repeated slashes of an (unescaped) URL path as nginx
// does for $uri. ok is false for a path that is not absolute, holds a NUL byte, or climbs above
// the root with "..": nginx answers those with 400. A trailing slash is kept.
func cleanPath(p string) (clean string, ok bool) {
	if p == "" || p[0] != '/' || strings.IndexByte(p, 0) >= 0 {
		return "", false
	}
	if isClean(p) {
		return p, true
	}
	return resolvePath(p)
}

// resolvePath is cleanPath of an absolute path without NUL bytes, segment by segment (cleanPath
// takes a shortcut for a path that is clean already).
func resolvePath(p string) (clean string, ok bool) {
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

// isClean reports whether an absolute path is its own cleanPath: no empty, "." or ".." segment
// but a last empty one (the trailing slash).
func isClean(p string) bool {
	for rest := p[1:]; ; {
		seg, more, found := strings.Cut(rest, "/")
		if !found {
			return seg != "." && seg != ".."
		}
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		rest = more
	}
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

// routeKind says what askrd does with a request.
type routeKind int

const (
	routeScript    routeKind = iota // run a PHP script
	routeStatic                     // serve a file
	routeRedirect                   // 301 to the directory's URL with a slash
	routeBad                        // 400
	routeForbidden                  // 403
	routeNotFound                   // 404
)

// route is where a request goes.
type route struct {
	kind     routeKind
	script   string      // routeScript: SCRIPT_NAME, the script's URL path ("/index.php")
	pathInfo string      // routeScript: PATH_INFO
	docURI   string      // routeScript: DOCUMENT_URI, nginx's $uri after try_files and index: the script
	file     *os.File    // routeStatic: the open file (the caller closes it)
	info     fs.FileInfo // routeStatic
	tree     *tree       // routeStatic: the tree the file is in, and its path there (for file.br)
	rel      string      //
	location string      // routeRedirect: the path with its slash
}

// alias serves the URLs under prefix from a directory other than the root: static files only.
type alias struct {
	prefix string // "/wp-content/"
	t      *tree
}

// router is askrd's one router, for both modes: the document root and the aliases (trees, with
// one symbolic-link policy), askr's rules on what is never served or run, and two ways for what
// is no static file to reach PHP, one per mode, picked when the Handler is made:
//   - tryFiles (per-request mode) maps URL paths as nginx does with try_files $uri $uri/
//     /front?$args, index index.php index.html, PHP scripts split as splitScript says;
//   - app (worker mode) gives every URL that is no servable static file to the front controller,
//     the worker script's app.
//
// In both, aliases are nginx's location ^~ prefix { alias dir; } with PHP refused; nothing in a dot
// segment but .well-known is served; PHP sources are never served; nothing outside the root or an
// alias (but public package links, see tree) is reached.
type router struct {
	root    *tree
	front   string // "/index.php"
	aliases []alias
}

// alias returns the alias a clean path is under.
func (rt *router) alias(p string) (alias, bool) {
	for _, a := range rt.aliases {
		if strings.HasPrefix(p, a.prefix) || p+"/" == a.prefix {
			return a, true
		}
	}
	return alias{}, false
}

// frontScript is the route of the front controller for a request to urlPath: PATH_INFO is what
// follows the front controller's own URL ("/index.php/x" → "/x").
func (rt *router) frontScript(urlPath string) route {
	pathInfo := ""
	if rest, ok := strings.CutPrefix(urlPath, rt.front); ok && strings.HasPrefix(rest, "/") {
		pathInfo = rest
	}
	return route{kind: routeScript, script: rt.front, pathInfo: pathInfo, docURI: rt.front + pathInfo}
}

// app routes a request in worker mode: an alias's URL as in per-request mode (an alias never runs
// PHP); else for GET and HEAD a servable regular file of the root; askrd's own 404 for a file that
// must never be served (but a .php name, which is the app's URL); everything else the front
// controller gets, as the app's route (which may look like a file, or climb out with "..").
func (rt *router) app(urlPath string, read bool) route {
	if p, ok := cleanPath(urlPath); ok && !hidden(p) {
		if a, ok := rt.alias(p); ok {
			return a.route(p, read)
		}
	}
	if read {
		if r, ok := rt.appStatic(urlPath); ok {
			return r
		}
	}
	return rt.frontScript(urlPath)
}

// appStatic looks a URL path up in the root for worker mode: ok is false if it names no file askrd
// answers for (the front controller does).
func (rt *router) appStatic(p string) (route, bool) {
	if p == "" || p[0] != '/' || p[len(p)-1] == '/' || strings.IndexByte(p, 0) >= 0 {
		return route{}, false
	}
	rel := strings.TrimPrefix(path.Clean(p), "/")
	if rel == "" {
		return route{}, false
	}
	if !servable(rel) {
		if strings.HasSuffix(strings.ToLower(rel), ".php") {
			return route{}, false
		}
		if _, err := rt.root.lstat(rel); err != nil {
			return route{}, false // not a file: a route of the app (which may look like one)
		}
		return route{kind: routeNotFound}, true
	}
	fi, err := rt.root.stat(rel)
	if err != nil || !fi.Mode().IsRegular() {
		return route{}, false // most often: a route of the app, not a file
	}
	r := rt.root.static(rel, fi, true)
	return r, r.kind == routeStatic
}

// tryFiles routes a request in per-request mode. It opens a static file only for GET and HEAD; for
// other methods a static file's route has no file (the caller answers 405).
func (rt *router) tryFiles(urlPath string, read bool) route {
	p, ok := cleanPath(urlPath)
	if !ok {
		return route{kind: routeBad}
	}
	if hidden(p) {
		return route{kind: routeNotFound}
	}
	if a, ok := rt.alias(p); ok {
		return a.route(p, read)
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
		return rt.index(p, read)
	}
	if fi, err := rt.root.stat(rt.front[1:]); err == nil && fi.Mode().IsRegular() {
		return route{kind: routeScript, script: rt.front, docURI: rt.front}
	}
	return route{kind: routeNotFound}
}

// index is the route of a directory's URL (with its slash): its index.php, else its index.html.
func (rt *router) index(dir string, read bool) route {
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

// rootInfo stands for the FileInfo of the root, which is known to be a directory.
type rootInfo struct{ fs.FileInfo }

func (rootInfo) IsDir() bool       { return true }
func (rootInfo) Mode() fs.FileMode { return fs.ModeDir }

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
// served as a static file (tree.static asks it, in both modes). No segment of rel may be, case aside:
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
