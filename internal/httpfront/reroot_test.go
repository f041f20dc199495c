package httpfront

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// A deploy switches current -> releases/N; Reroot (on reload) serves the new release's files, and
// an alias through a link follows too.
func TestRerootFollowsASwitchedLink(t *testing.T) {
	base := t.TempDir()
	for _, rel := range []string{"1", "2"} {
		for _, dir := range []string{"public", "assets"} {
			d := filepath.Join(base, "releases", rel, dir)
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, "v.txt"), []byte(dir+" release "+rel), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	current := filepath.Join(base, "current")
	link := func(rel string) {
		t.Helper()
		tmp := current + ".new"
		os.Remove(tmp)
		if err := os.Symlink(filepath.Join("releases", rel), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, current); err != nil {
			t.Fatal(err)
		}
	}
	link("1")
	h, err := New(Options{Root: filepath.Join(current, "public"), Front: "index.php",
		Aliases: []Alias{{Prefix: "/assets/", Dir: filepath.Join(current, "assets")}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	get := func(path string) string {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w.Body.String()
	}
	if changed, err := h.Reroot(); changed || err != nil {
		t.Fatalf("Reroot() with nothing switched = %t, %v; want false, nil", changed, err)
	}
	link("2")
	if got := get("/v.txt"); got != "public release 1" {
		t.Errorf("GET /v.txt before Reroot = %q; want release 1 (the root as resolved at start)", got)
	}
	if changed, err := h.Reroot(); !changed || err != nil {
		t.Fatalf("Reroot() after the switch = %t, %v; want true, nil", changed, err)
	}
	if got := get("/v.txt"); got != "public release 2" {
		t.Errorf("GET /v.txt after Reroot = %q; want release 2", got)
	}
	if got := get("/assets/v.txt"); got != "assets release 2" {
		t.Errorf("GET /assets/v.txt after Reroot = %q; want release 2", got)
	}
	// A root that is gone leaves the current one serving.
	if err := os.Remove(current); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Reroot(); err == nil {
		t.Errorf("Reroot() with the root gone = nil error; want one")
	}
	if got := get("/v.txt"); got != "public release 2" {
		t.Errorf("GET /v.txt after a failed Reroot = %q; want release 2 still", got)
	}
}
