package httpfront

import (
	"os"
	"path/filepath"
	"testing"
)

func TestServable(t *testing.T) {
	for _, tc := range []struct {
		rel  string
		want bool
	}{
		{"style.css", true},
		{"img/logo.png", true},
		{".well-known/acme-challenge/x", true},
		{"index.php", false},
		{"Admin.PHP", false},
		{"a.php/b.css", false},
		{"app.phar", false},
		{".env", false},
		{".git/config", false},
		{"assets/.secret/x.js", false},
		{"sub/.htaccess", false},
		// PHP source under any name, includes, editor and deploy leftovers.
		{"x.php.bak", false},
		{"x.php~", false},
		{"x.phtml", false},
		{"X.PHTML", false},
		{"x.pht", false},
		{"x.php5", false},
		{"x.phps", false},
		{"x.php.orig", false},
		{"x.php.save", false},
		{"x.php.old", false},
		{"x.php.dist", false},
		{"dir.php/x.txt", false},
		{"x.inc", false},
		{"lib/DB.INC", false},
		{".x.php.swp", false},
		{"x.swp", false},
		{"x.swo", false},
		{"notes.txt~", false},
		{"site.bak", false},
		{"backup.bak/style.css", false},
		{"x.orig", false},
		{"x.rej", false},
		{"x.tmp", false},
		{"#x.php#", false},
		{"#notes#", false},
		// Assets that merely look alike.
		{"photo.old.png", true},
		{"vendor.bak.js", true},
		{"include.js", true},
		{"photo.jpg", true},
		{"a#b.txt", true},
		{"#", true},
		{"graph.phones.svg", true},
	} {
		if got := servable(tc.rel); got != tc.want {
			t.Errorf("servable(%q) = %v; want %v", tc.rel, got, tc.want)
		}
	}
}

func TestTargetServable(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"config.php", "real.txt", ".env"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"a.txt": "config.php", "b.txt": "real.txt", "c.txt": ".env", "d.txt": "a.txt", "e.txt": "missing"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	for rel, want := range map[string]bool{"real.txt": true, "b.txt": true, "a.txt": false, "c.txt": false, "d.txt": false, "e.txt": false, "none.txt": true} {
		if got := targetServable(dir, rel); got != want {
			t.Errorf("targetServable(%q) = %v; want %v", rel, got, want)
		}
	}
}
