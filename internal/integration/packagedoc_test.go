package integration

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every package says in its doc comment what it owns.
func TestEveryPackageHasADocComment(t *testing.T) {
	root := repoRoot(t)
	for _, top := range []string{"cmd", "internal"} {
		filepath.WalkDir(filepath.Join(root, top), func(dir string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() || d.Name() == "testdata" {
				if d != nil && d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return err
			}
			docs := map[string]int{} // package name → doc comments
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Errorf("%s: %v", dir, err)
				return nil
			}
			for _, e := range entries {
				if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
					continue
				}
				f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, parser.ParseComments|parser.PackageClauseOnly)
				if err != nil {
					t.Errorf("%s: %v", dir, err)
					return nil
				}
				name, n := f.Name.Name, 0
				if f.Doc != nil && (strings.HasPrefix(f.Doc.Text(), "Package "+name) || strings.HasPrefix(f.Doc.Text(), "Command ")) {
					n = 1
				}
				docs[name] += n
			}
			for name, n := range docs {
				if n != 1 {
					rel, _ := filepath.Rel(root, dir)
					t.Errorf("package %s (%s) has %d package doc comments; want exactly 1", name, rel, n)
				}
			}
			return nil
		})
	}
}
