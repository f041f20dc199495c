package httpfront

import (
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// A link out of the tree to a public directory of the link's owner, and a directory under it that
// someone swaps for a link to a private directory, again and again: between resolve's checks and
// the open, the swap must never let the private file through (it did, within a few hundred tries,
// when the checked path was opened again by name).
func TestLinkSwappedDuringOpenIsRefused(t *testing.T) {
	top := t.TempDir()
	os.Chmod(filepath.Dir(top), 0o755)
	os.Chmod(top, 0o755)
	root := filepath.Join(top, "root")
	out := filepath.Join(top, "out")
	priv := filepath.Join(top, "priv")
	for _, d := range []string{root, out, filepath.Join(out, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(priv, 0o700)
	os.WriteFile(filepath.Join(out, "sub", "f.txt"), []byte("PUBLIC"), 0o644)
	os.WriteFile(filepath.Join(priv, "f.txt"), []byte("SECRET"), 0o600)
	os.Symlink(out, filepath.Join(root, "l"))
	tr, err := openTree(root)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	// Without the race the private file is refused:
	os.Rename(filepath.Join(out, "sub"), filepath.Join(out, "real"))
	os.Symlink(priv, filepath.Join(out, "sub"))
	if f, err := tr.open("l/sub/f.txt"); err == nil {
		b, _ := io.ReadAll(f)
		t.Fatalf("tree.open through a link to a private directory served %q; want it refused", b)
	}
	os.Remove(filepath.Join(out, "sub"))
	os.Rename(filepath.Join(out, "real"), filepath.Join(out, "sub"))

	var stop atomic.Bool
	go func() {
		for !stop.Load() {
			os.Rename(filepath.Join(out, "sub"), filepath.Join(out, "real"))
			os.Symlink(priv, filepath.Join(out, "sub"))
			os.Remove(filepath.Join(out, "sub"))
			os.Rename(filepath.Join(out, "real"), filepath.Join(out, "sub"))
		}
	}()
	defer stop.Store(true)
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
		f, err := tr.open("l/sub/f.txt")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if string(b) == "SECRET" {
			t.Fatalf("after %d tries tree.open served the private file %q", i, b)
		}
	}
}

// A document root reached through a link (a deploy's current → releases/1): ".." in a link out of
// the tree is resolved from where the root really is, as the kernel does, not from the path's text.
func TestDotDotFromALinkedRoot(t *testing.T) {
	top := t.TempDir()
	os.Chmod(filepath.Dir(top), 0o755)
	os.Chmod(top, 0o755)
	for _, d := range []string{"releases/1/public", "releases/shared", "shared"} {
		os.MkdirAll(filepath.Join(top, d), 0o755)
	}
	os.WriteFile(filepath.Join(top, "releases/shared/f.txt"), []byte("KERNEL"), 0o644)
	os.WriteFile(filepath.Join(top, "shared/f.txt"), []byte("LEXICAL"), 0o644)
	os.Symlink("releases/1", filepath.Join(top, "current"))
	os.Symlink("../../shared/f.txt", filepath.Join(top, "releases/1/public/l.txt"))
	real, _ := os.ReadFile(filepath.Join(top, "current/public/l.txt"))
	tr, err := openTree(filepath.Join(top, "current/public"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := tr.open("l.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	if string(b) != string(real) {
		t.Errorf("tree.open(l.txt) = %q; the kernel opens %q", b, real)
	}
}
