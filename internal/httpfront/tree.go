package httpfront

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// tree is a directory served by askrd: the document root or an alias's directory, in both modes.
// Lookups go through os.Root, so a symbolic link is followed freely while it stays inside dir. A
// link that leaves the tree is followed only if
//   - its target has the link's owner, hop by hop (nginx's disable_symlinks if_not_owner): a link
//     someone planted in a directory they can write, to a file they do not own, is refused; and
//   - what the path finally names is public: every directory above it searchable and the file
//     readable by any local account. A link never publishes what its owner keeps private (a key,
//     anything in a 0700 home or temporary directory), whoever the owner is — root included, as
//     under a root-run test or a root-owned deploy.
//
// The file such a path names is opened without following any symbolic link (openat2
// RESOLVE_NO_SYMLINKS) and must be the very file the checks saw (same device and inode): a
// directory swapped for a link, or for another directory, between the checks and the open is
// refused, not followed.
//
// So what a package installs (Debian's WordPress links /usr/share/javascript files into its root,
// root-owned and world-readable) is served, and the rest is refused: 403 in per-request mode, the
// front controller in worker mode (askrd serves no file there).
type tree struct {
	dir  string // absolute, cleaned
	root *os.Root
}

func openTree(dir string) (*tree, error) {
	// The directory as the kernel finds it (a root reached through a link, e.g. a deploy's
	// current → releases/7): ".." in a link out of the tree is resolved from there, as open does.
	dir, err := filepath.EvalSymlinks(filepath.Clean(dir))
	if err != nil {
		return nil, err
	}
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
	_, fi, err = t.resolve(rel)
	return fi, err
}

// lstat returns the FileInfo of rel itself (a link is not followed), inside the tree only.
func (t *tree) lstat(rel string) (fs.FileInfo, error) { return t.root.Lstat(rel) }

// open opens rel for reading.
func (t *tree) open(rel string) (*os.File, error) {
	f, err := t.root.Open(rel)
	if !refused(err) {
		return f, err
	}
	p, fi, err := t.resolve(rel)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat2(unix.AT_FDCWD, p, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	f = os.NewFile(uintptr(fd), p)
	if st, err := f.Stat(); err != nil || !os.SameFile(fi, st) {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: p, Err: errMoved}
	}
	return f, nil
}

// errForeignLink and errPrivateTarget are why a symbolic link out of a tree is not followed.
var (
	errForeignLink   = errors.New("symbolic link out of the served directory to a file its owner does not own")
	errPrivateTarget = errors.New("symbolic link out of the served directory to a file not every local account may read")
	errMoved         = errors.New("the path changed while it was checked")
)

// resolve resolves rel in the tree link by link and returns the path of what it names, which has
// no symbolic link left, and its FileInfo. A link whose target lies outside the tree is followed
// only if the target has the link's owner; a path that ends outside the tree must name something
// public.
func (t *tree) resolve(rel string) (string, fs.FileInfo, error) {
	hops := 0
	p, err := t.follow(t.dir, rel, &hops)
	if err != nil {
		return "", nil, err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return "", nil, err
	}
	if !t.contains(p) && !public(p, fi) {
		return "", nil, &fs.PathError{Op: "resolve", Path: rel, Err: errPrivateTarget}
	}
	return p, fi, nil
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

// public reports whether any local account may read p (a path without symbolic links; fi is its
// Lstat): every directory above it searchable by others, p readable by others (and searchable, if
// a directory).
func public(p string, fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeSymlink != 0 {
		return false
	}
	need := fs.FileMode(0o004)
	if fi.IsDir() {
		need = 0o005
	}
	if fi.Mode().Perm()&need != need {
		return false
	}
	for d := filepath.Dir(p); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == "/" {
			return true
		}
	}
}

func owner(fi fs.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid
	}
	return ^uint32(0)
}

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
	return route{kind: routeStatic, file: f, info: st, tree: t, rel: rel}
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
