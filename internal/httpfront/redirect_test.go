package httpfront

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestRedirect(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Root: root, Front: "index.php", Redirects: []Redirect{
		{From: "www.example.com", To: "https://example.com", Status: 308},
		{From: "*.old.example", To: "https://new.example/", Status: 301},
		{From: "*.example.com", To: "https://never.example", Status: 302}, // after www: the first match wins
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	tests := []struct {
		method, target, host string
		status               int
		location             string // "" for no redirect: the static file
	}{
		{"GET", "/a/b?x=1&y=%20", "www.example.com", 308, "https://example.com/a/b?x=1&y=%20"},
		{"POST", "/form", "WWW.Example.COM:8080", 308, "https://example.com/form"},
		{"GET", "/", "www.example.com.", 308, "https://example.com/"},
		{"GET", "/p%2Fq", "a.b.old.example", 301, "https://new.example/p%2Fq"},
		{"GET", "/hello.txt", "old.example", 301, "https://new.example/hello.txt"},
		{"GET", "/x", "shop.example.com", 302, "https://never.example/x"},
		{"GET", "/y", "example.com", 302, "https://never.example/y"}, // *.example.com includes example.com, as in the original
		{"GET", "/hello.txt", "example.org", 200, ""},
		{"GET", "/hello.txt", "notold.example", 200, ""},
		{"GET", "/hello.txt", "www.example.com.evil", 200, ""},
		{"GET", "/hello.txt", "[::1]:80", 200, ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.target, nil)
		r.Host = tt.host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.status || w.Header().Get("Location") != tt.location {
			t.Errorf("%s %s (Host %s) = %d, Location %q; want %d, %q", tt.method, tt.target, tt.host, w.Code, w.Header().Get("Location"), tt.status, tt.location)
		}
		if tt.location == "" && w.Body.String() != "hello" {
			t.Errorf("%s %s (Host %s) body = %q; want the static file", tt.method, tt.target, tt.host, w.Body.String())
		}
	}
	// Without rules nothing is redirected.
	h2, err := New(Options{Root: root, Front: "index.php"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	r := httptest.NewRequest(http.MethodGet, "/hello.txt", nil)
	r.Host = "www.example.com"
	w := httptest.NewRecorder()
	h2.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Errorf("GET /hello.txt without rules = %d; want 200", w.Code)
	}
}
