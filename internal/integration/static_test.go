package integration

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStaticFiles(t *testing.T) {
	root := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("style.css", "body { color: red }\n")
	write("data.json", `{"a":1}`)
	write("index.php", "<?php echo 'PHP SOURCE';")
	write("secret.php", "<?php $password = 'hunter2';")
	write(".env", "APP_KEY=secret")
	write(".git/config", "[core]")
	write(".well-known/acme-challenge/token", "acme-token")
	write("sub/page.html", "<p>page</p>")
	outside := filepath.Join(t.TempDir(), "outside.txt")
	os.WriteFile(outside, []byte("OUTSIDE"), 0o644)
	os.Symlink(outside, filepath.Join(root, "link.txt"))

	s := startAskrd(t, opts{root: root, args: []string{"--workers", "1"}})

	r := s.get("/style.css")
	if r.status != 200 || r.body != "body { color: red }\n" || !strings.HasPrefix(r.header.Get("Content-Type"), "text/css") {
		t.Errorf("/style.css = %d %q type %q", r.status, r.body, r.header.Get("Content-Type"))
	}
	etag, lm := r.header.Get("Etag"), r.header.Get("Last-Modified")
	if etag == "" || lm == "" {
		t.Fatalf("/style.css lacks ETag (%q) or Last-Modified (%q)", etag, lm)
	}
	if r := s.get("/data.json"); !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("/data.json Content-Type = %q", r.header.Get("Content-Type"))
	}
	if r := s.get("/style.css", "If-None-Match", etag); r.status != 304 || r.body != "" {
		t.Errorf("If-None-Match: %d %q; want 304 and no body", r.status, r.body)
	}
	if r := s.get("/style.css", "If-Modified-Since", lm); r.status != 304 {
		t.Errorf("If-Modified-Since: %d; want 304", r.status)
	}
	if r := s.get("/style.css", "If-Modified-Since", time.Unix(0, 0).UTC().Format(http.TimeFormat)); r.status != 200 {
		t.Errorf("If-Modified-Since long ago: %d; want 200", r.status)
	}
	if r := s.get("/style.css", "Range", "bytes=0-3"); r.status != 206 || r.body != "body" || r.header.Get("Content-Range") != "bytes 0-3/20" {
		t.Errorf("Range: %d %q %q; want 206 \"body\" bytes 0-3/20", r.status, r.body, r.header.Get("Content-Range"))
	}
	if r := s.do("HEAD", "/style.css", nil); r.status != 200 || r.body != "" || r.header.Get("Content-Length") != "20" {
		t.Errorf("HEAD: %d %q length %q", r.status, r.body, r.header.Get("Content-Length"))
	}
	if r := s.get("/.well-known/acme-challenge/token"); r.body != "acme-token" {
		t.Errorf(".well-known not served: %d %q", r.status, r.body)
	}
	if r := s.get("/sub/page.html"); r.body != "<p>page</p>" {
		t.Errorf("/sub/page.html = %d %q", r.status, r.body)
	}

	// Never served as files: they go to PHP (the front controller), which answers "worker ok".
	for _, p := range []string{"/index.php", "/secret.php", "/SECRET.PHP", "/.env", "/.git/config", "/sub/../.env",
		"/link.txt", "/../outside.txt", "/%2e%2e/outside.txt", "/sub/%2e%2e/%2e%2e/outside.txt", "/secret.php/", "/sub/", "/style.css/"} {
		req, _ := http.NewRequest("GET", s.URL, nil)
		req.URL = &url.URL{Scheme: "http", Host: s.Addr, Opaque: p}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		b := make([]byte, 512)
		n, _ := resp.Body.Read(b)
		resp.Body.Close()
		body := string(b[:n])
		for _, leak := range []string{"PHP SOURCE", "hunter2", "APP_KEY", "[core]", "OUTSIDE"} {
			if strings.Contains(body, leak) {
				t.Errorf("GET %s leaked %q: %d %q", p, leak, resp.StatusCode, body)
			}
		}
		if resp.StatusCode == 200 && body != "worker ok" {
			t.Errorf("GET %s = 200 %q; want the front controller's answer", p, body)
		}
	}
}
