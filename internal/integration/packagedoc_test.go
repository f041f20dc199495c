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
			pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi os.FileInfo) bool {
				return !strings.HasSuffix(fi.Name(), "_test.go")
			}, parser.ParseComments|parser.PackageClauseOnly)
			if err != nil {
				t.Errorf("%s: %v", dir, err)
				return nil
			}
			for name, pkg := range pkgs {
				docs := 0
				for _, f := range pkg.Files {
					if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package "+name) || f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Command ") {
						docs++
					}
				}
				if docs != 1 {
					rel, _ := filepath.Rel(root, dir)
					t.Errorf("package %s (%s) has %d package doc comments; want exactly 1", name, rel, docs)
				}
			}
			return nil
		})
	}
}
