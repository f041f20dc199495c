package integration

// Compression (server.compression, on by default) and the immutable caching of build output
// (server.static_immutable) end to end: real php-cgi, real askrd, raw responses decoded here.

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
)

// rawClient sends the Accept-Encoding a test names and leaves the body as it came: Go's transport
// would otherwise ask for gzip itself and decode it out of sight.
var rawClient = &http.Client{
	Timeout:       60 * time.Second,
	Transport:     &http.Transport{DisableCompression: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// rawGet sends GET (or HEAD) path with the header pairs given; the body is returned as sent.
func (s *server) rawGet(method, path string, header ...string) (*http.Response, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.URL+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp, b
}

// decoder reads a body in the Content-Encoding it came with ("" if Go decoded it already).
func decoder(t testing.TB, enc string, r io.Reader) io.Reader {
	t.Helper()
	switch enc {
	case "":
		return r
	case "br":
		return brotli.NewReader(r)
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("a gzip body: %v", err)
		}
		return zr
	}
	t.Fatalf("Content-Encoding %q", enc)
	return nil
}

// decoded is a whole body decoded.
func decoded(t testing.TB, enc string, b []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(decoder(t, enc, bytes.NewReader(b)))
	if err != nil {
		t.Fatalf("decoding a %s body: %v", enc, err)
	}
	return out
}

// compressRoot is a document root with static files (a stylesheet, a precompressed script, build
// output, an image) and, for per-request mode, the PHP scripts of worker.php's /page and
// /gzipped.
func compressRoot(t *testing.T) (root string, css, js, jsBr []byte) {
	root = t.TempDir()
	var b bytes.Buffer
	for i := range 400 {
		fmt.Fprintf(&b, ".c%d { color: #%06x; margin: %dpx }\n", i, i*2654435761%0xffffff, i%17)
	}
	css, js = b.Bytes(), bytes.Repeat([]byte("console.log('askr precompressed');\n"), 100)
	var br bytes.Buffer
	bw := brotli.NewWriterLevel(&br, 11)
	bw.Write(js)
	if err := bw.Close(); err != nil {
		t.Fatal(err)
	}
	jsBr = br.Bytes()
	files := map[string][]byte{
		"app.css": css, "app.js": js, "app.js.br": jsBr, "build/assets/app-4f2a.js": js, "assets/site.js": js,
		"logo.png": bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 1000),
		"page.php": []byte(`<?php for ($i = 0; $i < (int) ($_GET['n'] ?? 100); $i++) { echo '<li>item ', $i, ' of the page</li>', "\n"; }`),
		"gzipped.php": []byte(`<?php header('Content-Type: text/plain'); header('Content-Encoding: gzip');
echo gzencode(str_repeat("already compressed by PHP\n", 200));`),
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root, css, js, jsBr
}

// TestCompression: PHP's responses and static files come compressed with br or gzip as the
// client asks, and decode to exactly the uncompressed bytes; a precompressed app.js.br is sent
// as it is; a body PHP encoded itself is passed on unchanged; build output is immutable. Worker
// mode (CoW with ASKR_TEST_COW=1) and per-request mode.
func TestCompression(t *testing.T) {
	root, css, js, jsBr := compressRoot(t)
	for _, mode := range []struct {
		name       string
		perRequest bool
		page, gz   string
	}{
		{"worker", false, "/page?n=2000", "/gzipped"},
		{"per-request", true, "/page.php?n=2000", "/gzipped.php"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			s := startAskrd(t, opts{root: root, perRequest: mode.perRequest, args: []string{"--workers", "1"}})
			resp, plain := s.rawGet("GET", mode.page)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || !bytes.HasPrefix(plain, []byte("<li>item 0 of the page</li>\n")) || !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
				t.Fatalf("GET %s without Accept-Encoding: %d, Content-Encoding %q, Vary %q, %.40q; want 200, none, Accept-Encoding, the page", mode.page, resp.StatusCode, resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"), plain)
			}
			for _, tc := range []struct{ path, accept, enc string }{
				{mode.page, "br", "br"},
				{mode.page, "gzip", "gzip"},
				{mode.page, "gzip, deflate, br, zstd", "br"},
				{mode.page, "br;q=0.5, gzip", "gzip"},
				{"/app.css", "br", "br"},
				{"/app.css", "gzip", "gzip"},
				{"/app.css", "identity", ""},
			} {
				want := plain
				if tc.path == "/app.css" {
					want = css
				}
				resp, b := s.rawGet("GET", tc.path, "Accept-Encoding", tc.accept)
				if got := resp.Header.Get("Content-Encoding"); resp.StatusCode != 200 || got != tc.enc {
					t.Errorf("GET %s, Accept-Encoding %q: %d, Content-Encoding %q; want 200, %q", tc.path, tc.accept, resp.StatusCode, got, tc.enc)
					continue
				}
				if got := decoded(t, tc.enc, b); !bytes.Equal(got, want) {
					t.Errorf("GET %s, Accept-Encoding %q: %d bytes on the wire decode to %d bytes, not the %d uncompressed ones", tc.path, tc.accept, len(b), len(got), len(want))
				}
				if !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
					t.Errorf("GET %s, Accept-Encoding %q: Vary %q; want Accept-Encoding", tc.path, tc.accept, resp.Header.Get("Vary"))
				}
				// (net/http sets the length of a compressed body that fits in its buffer.)
				if tc.enc != "" && (resp.ContentLength != -1 && resp.ContentLength != int64(len(b)) || len(b) > len(want)/2) {
					t.Errorf("GET %s, Accept-Encoding %q: Content-Length %d, %d of %d bytes; want none or the compressed length, and compressed", tc.path, tc.accept, resp.ContentLength, len(b), len(want))
				}
			}

			// The precompressed sibling, with the file's type and its own length; a Range of it.
			resp, b := s.rawGet("GET", "/app.js", "Accept-Encoding", "gzip, br")
			if resp.Header.Get("Content-Encoding") != "br" || !bytes.Equal(b, jsBr) || resp.ContentLength != int64(len(jsBr)) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
				t.Errorf("GET /app.js, br accepted: Content-Encoding %q, Content-Type %q, Content-Length %d, %d bytes; want br, text/javascript, app.js.br's %d bytes", resp.Header.Get("Content-Encoding"), resp.Header.Get("Content-Type"), resp.ContentLength, len(b), len(jsBr))
			}
			if got := decoded(t, "br", b); !bytes.Equal(got, js) {
				t.Errorf("app.js.br decodes to %d bytes; want app.js's %d", len(got), len(js))
			}
			if resp, b := s.rawGet("GET", "/app.js", "Accept-Encoding", "br", "Range", "bytes=0-3"); resp.StatusCode != 206 || !bytes.Equal(b, jsBr[:4]) {
				t.Errorf("GET /app.js, br, Range 0-3: %d %q; want 206 and app.js.br's first 4 bytes", resp.StatusCode, b)
			}
			if resp, b := s.rawGet("GET", "/app.js"); resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(b, js) {
				t.Errorf("GET /app.js, no Accept-Encoding: Content-Encoding %q, %d bytes; want app.js as it is", resp.Header.Get("Content-Encoding"), len(b))
			}

			// Not compressed: ranges, HEAD, images, 304.
			if resp, b := s.rawGet("GET", "/app.css", "Accept-Encoding", "br", "Range", "bytes=0-9"); resp.StatusCode != 206 || resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(b, css[:10]) {
				t.Errorf("GET /app.css, Range 0-9: %d, Content-Encoding %q, %q; want 206, none, the first 10 bytes", resp.StatusCode, resp.Header.Get("Content-Encoding"), b)
			}
			if resp, _ := s.rawGet("HEAD", mode.page, "Accept-Encoding", "br"); resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" {
				t.Errorf("HEAD %s: %d, Content-Encoding %q; want 200, none", mode.page, resp.StatusCode, resp.Header.Get("Content-Encoding"))
			}
			if resp, b := s.rawGet("GET", "/logo.png", "Accept-Encoding", "br, gzip"); resp.Header.Get("Content-Encoding") != "" || len(b) != 4000 {
				t.Errorf("GET /logo.png: Content-Encoding %q, %d bytes; want none, 4000", resp.Header.Get("Content-Encoding"), len(b))
			}
			resp, _ = s.rawGet("GET", "/app.css", "Accept-Encoding", "br")
			if resp, b := s.rawGet("GET", "/app.css", "Accept-Encoding", "br", "If-None-Match", resp.Header.Get("Etag")); resp.StatusCode != 304 || len(b) != 0 {
				t.Errorf("GET /app.css, If-None-Match its compressed ETag: %d, %d bytes; want 304", resp.StatusCode, len(b))
			}

			// A body PHP compressed itself goes out as it is, whatever the client prefers.
			want := []byte(strings.Repeat("already compressed by PHP\n", 200))
			for _, accept := range []string{"gzip", "br"} {
				resp, b := s.rawGet("GET", mode.gz, "Accept-Encoding", accept)
				if resp.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(decoded(t, "gzip", b), want) {
					t.Errorf("GET %s, Accept-Encoding %s: Content-Encoding %q, %d bytes; want PHP's gzip, decoding once to its text", mode.gz, accept, resp.Header.Get("Content-Encoding"), len(b))
				}
			}

			// Build output is cached for a year; other files as before.
			if resp, _ := s.rawGet("GET", "/build/assets/app-4f2a.js"); resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
				t.Errorf("GET /build/assets/app-4f2a.js: %d, Cache-Control %q; want immutable", resp.StatusCode, resp.Header.Get("Cache-Control"))
			}
			if resp, _ := s.rawGet("GET", "/app.css"); resp.Header.Get("Cache-Control") != "" {
				t.Errorf("GET /app.css: Cache-Control %q; want none", resp.Header.Get("Cache-Control"))
			}
		})
	}
}

// TestCompressionOff: compression = false sends every response as it is, without Vary;
// static_immutable names other prefixes.
func TestCompressionOff(t *testing.T) {
	root, css, _, _ := compressRoot(t)
	s := startAskrd(t, opts{root: root, args: []string{"--workers", "1"},
		config: "[server]\ncompression = false\nstatic_immutable = [\"/assets/\"]\n"})
	for _, path := range []string{"/page?n=2000", "/app.css", "/app.js"} {
		resp, b := s.rawGet("GET", path, "Accept-Encoding", "br, gzip")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Vary") != "" {
			t.Errorf("GET %s: %d, Content-Encoding %q, Vary %q; want 200 and neither", path, resp.StatusCode, resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
		}
		if path == "/app.css" && !bytes.Equal(b, css) {
			t.Errorf("GET /app.css: %d bytes; want the file's %d", len(b), len(css))
		}
	}
	if resp, _ := s.rawGet("GET", "/build/assets/app-4f2a.js"); resp.Header.Get("Cache-Control") != "" {
		t.Errorf("GET /build/assets/app-4f2a.js with static_immutable = [\"/assets/\"]: Cache-Control %q; want none", resp.Header.Get("Cache-Control"))
	}
	if resp, _ := s.rawGet("GET", "/assets/site.js"); resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Errorf("GET /assets/site.js with static_immutable = [\"/assets/\"]: Cache-Control %q; want immutable", resp.Header.Get("Cache-Control"))
	}
}
