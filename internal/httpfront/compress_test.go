package httpfront

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/pool"
	"github.com/klauspost/compress/gzip"
)

func TestAcceptEncoding(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   coding
	}{
		{"", identity},
		{"identity", identity},
		{"gzip", gzipCoding},
		{"x-gzip", gzipCoding},
		{"br", brCoding},
		{"gzip, deflate, br", brCoding}, // a tie: br
		{"br, gzip", brCoding},
		{"gzip;q=1.0, br;q=0.8", gzipCoding},
		{"br;q=0.5, gzip;q=0.5", brCoding},
		{"br;q=0, gzip", gzipCoding},
		{"br;q=0, gzip;q=0", identity},
		{"*", brCoding},
		{"*;q=0.5, gzip", gzipCoding},
		{"gzip;q=0, *", brCoding},
		{"br;q=0, *;q=0", identity},
		{"deflate, compress", identity},
		{"BR , GZIP ; Q=0.3", brCoding},
		{"br;q=oops, gzip", gzipCoding}, // an element whose q cannot be read is ignored
		{"br;q=2", identity},
		{"gzip ;level=1;q=0.9", gzipCoding},
	} {
		var values []string
		if tc.header != "" {
			values = []string{tc.header}
		}
		if got := acceptEncoding(values).best(); got != tc.want {
			t.Errorf("Accept-Encoding %q: %v; want %v", tc.header, got, tc.want)
		}
	}
	// Several fields are one list.
	if got := acceptEncoding([]string{"gzip;q=0.2", "br;q=0.1"}).best(); got != gzipCoding {
		t.Errorf("two Accept-Encoding fields: %v; want gzip", got)
	}
}

func TestCompressible(t *testing.T) {
	yes := []string{"text/html; charset=UTF-8", "text/css", "text/plain", "text/event-stream", "TEXT/JavaScript",
		"application/json", "application/problem+json", "application/ld+json", "application/javascript",
		"application/xml", "application/rss+xml", "image/svg+xml", "application/wasm", "image/x-icon", "font/ttf"}
	no := []string{"", "image/png", "image/jpeg", "image/webp", "video/mp4", "audio/mpeg", "application/zip",
		"application/gzip", "font/woff2", "font/woff", "application/octet-stream", "application/pdf"}
	for _, ct := range yes {
		if !compressible(ct) {
			t.Errorf("compressible(%q) = false; want true", ct)
		}
	}
	for _, ct := range no {
		if compressible(ct) {
			t.Errorf("compressible(%q) = true; want false", ct)
		}
	}
}

// decode undoes a Content-Encoding.
func decode(t *testing.T, enc string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch enc {
	case "":
		return b
	case "br":
		r = brotli.NewReader(bytes.NewReader(b))
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("gzip body: %v", err)
		}
		r = zr
	default:
		t.Fatalf("Content-Encoding %q", enc)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding the %s body: %v", enc, err)
	}
	return out
}

// page is a compressible body of n bytes, not all alike.
func page(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "<li>item %d of the list</li>\n", i)
	}
	return b.Bytes()[:n]
}

// answerWith is a fakePool answer: the status, headers ("Name: value") and body of PHP's answer.
func answerWith(status int, body []byte, headers ...string) func(channel.Response) error {
	return func(resp channel.Response) error {
		hs := make([]channel.Header, 0, len(headers))
		for _, h := range headers {
			name, value, _ := strings.Cut(h, ": ")
			hs = append(hs, channel.Header{Name: name, Value: value})
		}
		if err := resp.Head(status, hs); err != nil {
			return err
		}
		return resp.Body(body)
	}
}

// PHP's responses: compressed as Accept-Encoding prefers when compressible and large enough, and
// otherwise passed on as they are; the bodies decode to exactly what PHP sent.
func TestCompressPHPResponses(t *testing.T) {
	big, small := page(20000), page(500)
	gzipped := decodeNot(t, big)
	for _, tc := range []struct {
		name    string
		method  string
		status  int
		body    []byte
		headers []string
		req     []string
		enc     string // the Content-Encoding wanted
		vary    bool
		etag    string
	}{
		{"br", "GET", 200, big, []string{"Content-Type: text/html; charset=UTF-8"}, []string{"Accept-Encoding", "gzip, deflate, br"}, "br", true, ""},
		{"gzip", "GET", 200, big, []string{"Content-Type: application/json"}, []string{"Accept-Encoding", "gzip"}, "gzip", true, ""},
		{"gzip preferred", "GET", 200, big, []string{"Content-Type: text/html"}, []string{"Accept-Encoding", "br;q=0.5, gzip"}, "gzip", true, ""},
		{"none accepted", "GET", 200, big, []string{"Content-Type: text/html"}, nil, "", true, ""},
		{"refused", "GET", 200, big, []string{"Content-Type: text/html"}, []string{"Accept-Encoding", "br;q=0, gzip;q=0"}, "", true, ""},
		{"small", "GET", 200, small, []string{"Content-Type: text/html"}, []string{"Accept-Encoding", "br"}, "", true, ""},
		{"image", "GET", 200, big, []string{"Content-Type: image/png"}, []string{"Accept-Encoding", "br"}, "", false, ""},
		{"no type", "GET", 200, big, nil, []string{"Accept-Encoding", "br"}, "", false, ""},
		{"encoded by PHP", "GET", 200, gzipped, []string{"Content-Type: text/html", "Content-Encoding: gzip"}, []string{"Accept-Encoding", "br, gzip"}, "gzip", true, ""},
		{"range", "GET", 200, big, []string{"Content-Type: text/html"}, []string{"Accept-Encoding", "br", "Range", "bytes=0-9"}, "", true, ""},
		{"partial", "GET", 206, big, []string{"Content-Type: text/html", "Content-Range: bytes 0-19999/40000"}, []string{"Accept-Encoding", "br"}, "", true, ""},
		{"no-transform", "GET", 200, big, []string{"Content-Type: text/html", "Cache-Control: public, no-transform"}, []string{"Accept-Encoding", "br"}, "", true, ""},
		{"HEAD", "HEAD", 200, big, []string{"Content-Type: text/html"}, []string{"Accept-Encoding", "br"}, "", true, ""},
		{"304", "GET", 304, nil, []string{"Content-Type: text/html", "Etag: \"v1\""}, []string{"Accept-Encoding", "br", "If-None-Match", "\"v1\""}, "", true, "\"v1\""},
		{"204", "GET", 204, nil, []string{"Content-Type: text/html"}, []string{"Accept-Encoding", "br"}, "", true, ""},
		{"404 page", "GET", 404, big, []string{"Content-Type: text/html"}, []string{"Accept-Encoding", "br"}, "br", true, ""},
		{"strong ETag", "GET", 200, big, []string{"Content-Type: text/html", "Etag: \"v1\""}, []string{"Accept-Encoding", "br"}, "br", true, "W/\"v1\""},
		{"weak ETag", "GET", 200, big, []string{"Content-Type: text/html", "Etag: W/\"v1\""}, []string{"Accept-Encoding", "gzip"}, "gzip", true, "W/\"v1\""},
		{"length", "GET", 200, big, []string{"Content-Type: text/html", "Content-Length: 20000"}, []string{"Accept-Encoding", "br"}, "br", true, ""},
		{"small length", "GET", 200, small, []string{"Content-Type: text/html", "Content-Length: 500"}, []string{"Accept-Encoding", "br"}, "", true, ""},
		{"vary kept", "GET", 200, big, []string{"Content-Type: text/html", "Vary: Cookie"}, []string{"Accept-Encoding", "br"}, "br", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakePool{answer: answerWith(tc.status, tc.body, tc.headers...)}
			h, _ := workerHandler(t, f, Options{Compression: true})
			w := serve(h, tc.method, "/app", nil, tc.req...)
			if w.Code != tc.status {
				t.Fatalf("status %d; want %d", w.Code, tc.status)
			}
			hdr := w.Header()
			if got := hdr.Get("Content-Encoding"); got != tc.enc {
				t.Errorf("Content-Encoding %q; want %q", got, tc.enc)
			}
			if got := strings.Join(hdr.Values("Vary"), ", "); strings.Contains(got, "Accept-Encoding") != tc.vary || strings.Count(got, "Accept-Encoding") > 1 {
				t.Errorf("Vary %q; want Accept-Encoding: %v (once)", got, tc.vary)
			}
			if tc.etag != "" && hdr.Get("Etag") != tc.etag {
				t.Errorf("ETag %q; want %q", hdr.Get("Etag"), tc.etag)
			}
			switch {
			case tc.status == 304 || tc.status == 204: // (a HEAD's body is dropped by net/http, not by the recorder)
				if w.Body.Len() != 0 {
					t.Errorf("a body of %d bytes; want none", w.Body.Len())
				}
			case tc.name == "encoded by PHP":
				if !bytes.Equal(w.Body.Bytes(), tc.body) {
					t.Errorf("PHP's gzip body changed: %d bytes; want its %d", w.Body.Len(), len(tc.body))
				}
			default:
				if got := decode(t, tc.enc, w.Body.Bytes()); !bytes.Equal(got, tc.body) {
					t.Errorf("the body decodes to %d bytes, not the %d PHP sent", len(got), len(tc.body))
				}
			}
			if tc.enc != "" && tc.name != "encoded by PHP" {
				if cl := hdr.Get("Content-Length"); cl != "" {
					t.Errorf("Content-Length %s on a compressed body", cl)
				}
				if w.Body.Len() >= len(tc.body)/2 {
					t.Errorf("compressed to %d of %d bytes", w.Body.Len(), len(tc.body))
				}
			}
		})
	}
}

// decodeNot gzips b: a body PHP compressed itself.
func decodeNot(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Per-request mode: php-cgi's answer goes through the same compressor.
func TestCompressPerRequest(t *testing.T) {
	body := page(8000)
	f := &fakeFCGI{answer: func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "Content-type: text/html; charset=UTF-8\r\n\r\n%s", body)
		return err
	}}
	h, _ := perRequestHandler(t, f, Options{Compression: true})
	w := serve(h, "GET", "/info.php", nil, "Accept-Encoding", "gzip")
	if w.Code != 200 || w.Header().Get("Content-Encoding") != "gzip" || !bytes.Equal(decode(t, "gzip", w.Body.Bytes()), body) {
		t.Errorf("per-request answer: %d, Content-Encoding %q, %d bytes; want 200, gzip, decoding to PHP's %d bytes", w.Code, w.Header().Get("Content-Encoding"), w.Body.Len(), len(body))
	}
	// Off: nothing changes, not even Vary.
	h, _ = perRequestHandler(t, f, Options{})
	w = serve(h, "GET", "/info.php", nil, "Accept-Encoding", "gzip")
	if w.Header().Get("Content-Encoding") != "" || w.Header().Get("Vary") != "" || !bytes.Equal(w.Body.Bytes(), body) {
		t.Errorf("without Compression: Content-Encoding %q, Vary %q, %d bytes; want none, none, PHP's %d", w.Header().Get("Content-Encoding"), w.Header().Get("Vary"), w.Body.Len(), len(body))
	}
}

// A streamed response is compressed and each of PHP's flushes reaches the client at once: the
// next event is produced only after the client has decoded the one before.
func TestCompressStreamFlushes(t *testing.T) {
	for _, enc := range []string{"br", "gzip"} {
		t.Run(enc, func(t *testing.T) {
			next := make(chan struct{})
			f := &fakePool{answer: func(resp channel.Response) error {
				if err := resp.Head(200, []channel.Header{{Name: "Content-Type", Value: "text/event-stream"}}); err != nil {
					return err
				}
				for i := range 3 {
					if err := resp.Body(fmt.Appendf(nil, "data: event %d\n\n", i)); err != nil {
						return err
					}
					if err := resp.Flush(); err != nil {
						return err
					}
					select {
					case <-next:
					case <-time.After(10 * time.Second):
						return fmt.Errorf("event %d was not read", i)
					}
				}
				return nil
			}}
			h, _ := workerHandler(t, f, Options{Compression: true})
			srv := httptest.NewServer(h)
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL+"/events", nil)
			req.Header.Set("Accept-Encoding", enc)
			tr := &http.Transport{DisableCompression: true}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.Header.Get("Content-Encoding") != enc {
				t.Fatalf("Content-Encoding %q; want %s", resp.Header.Get("Content-Encoding"), enc)
			}
			var r io.Reader = brotli.NewReader(resp.Body)
			if enc == "gzip" {
				if r, err = gzip.NewReader(resp.Body); err != nil {
					t.Fatal(err)
				}
			}
			lines := bufio.NewReader(r)
			for i := range 3 {
				line, err := lines.ReadString('\n')
				if want := fmt.Sprintf("data: event %d\n", i); line != want || err != nil {
					t.Fatalf("line %q, %v; want %q", line, err, want)
				}
				if _, err := lines.ReadString('\n'); err != nil {
					t.Fatal(err)
				}
				next <- struct{}{}
			}
			if rest, err := io.ReadAll(lines); err != nil || len(rest) != 0 {
				t.Errorf("after the events: %q, %v; want the end of a whole %s stream", rest, err, enc)
			}
		})
	}
}

// Static files: compressed on the fly when compressible, a precompressed sibling sent when the
// client accepts it (with the file's type, its own length, ranges and 304), images and small files
// as they are, /build/ immutable.
func TestCompressStatic(t *testing.T) {
	css := page(6000)
	files := map[string][]byte{"build/app.css": css, "app.css": css, "small.css": page(300), "pic.png": page(6000),
		"pre.js": page(5000), "pre.js.br": []byte("precompressed br"), "pre.js.gz": []byte("precompressed gzip"),
		"gzonly.svg": page(3000), "gzonly.svg.gz": []byte("svg gz")}
	f := &fakePool{}
	h, root := workerHandler(t, f, Options{Compression: true, Immutable: []string{"/build/"}})
	for name, b := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		target string
		req    []string
		code   int
		enc    string
		body   []byte // decoded
		ctype  string
		vary   bool
	}{
		{"/app.css", []string{"Accept-Encoding", "br"}, 200, "br", css, "text/css; charset=utf-8", true},
		{"/app.css", []string{"Accept-Encoding", "gzip"}, 200, "gzip", css, "text/css; charset=utf-8", true},
		{"/app.css", nil, 200, "", css, "text/css; charset=utf-8", true},
		{"/app.css", []string{"Accept-Encoding", "br", "Range", "bytes=0-9"}, 206, "", css[:10], "text/css; charset=utf-8", true},
		{"/small.css", []string{"Accept-Encoding", "br"}, 200, "", files["small.css"], "text/css; charset=utf-8", true},
		{"/pic.png", []string{"Accept-Encoding", "br"}, 200, "", files["pic.png"], "image/png", false},
		{"/pre.js", []string{"Accept-Encoding", "gzip, br"}, 200, "br", []byte("precompressed br"), "text/javascript; charset=utf-8", true},
		{"/pre.js", []string{"Accept-Encoding", "gzip"}, 200, "gzip", []byte("precompressed gzip"), "text/javascript; charset=utf-8", true},
		{"/pre.js", []string{"Accept-Encoding", "br", "Range", "bytes=3-5"}, 206, "br", []byte("com"), "text/javascript; charset=utf-8", true},
		{"/gzonly.svg", []string{"Accept-Encoding", "br, gzip"}, 200, "gzip", []byte("svg gz"), "image/svg+xml", true},
	} {
		w := serve(h, "GET", tc.target, nil, tc.req...)
		hdr := w.Header()
		got := w.Body.Bytes()
		if tc.enc != "" && !strings.HasPrefix(tc.target, "/pre") && !strings.HasPrefix(tc.target, "/gzonly") {
			got = decode(t, tc.enc, got)
		}
		if w.Code != tc.code || hdr.Get("Content-Encoding") != tc.enc || !bytes.Equal(got, tc.body) || hdr.Get("Content-Type") != tc.ctype {
			t.Errorf("GET %s %v: %d, Content-Encoding %q, Content-Type %q, body %.20q; want %d, %q, %q, %.20q", tc.target, tc.req, w.Code, hdr.Get("Content-Encoding"), hdr.Get("Content-Type"), got, tc.code, tc.enc, tc.ctype, tc.body)
		}
		if strings.Contains(hdr.Get("Vary"), "Accept-Encoding") != tc.vary {
			t.Errorf("GET %s %v: Vary %q; want Accept-Encoding: %v", tc.target, tc.req, hdr.Get("Vary"), tc.vary)
		}
		if cl := hdr.Get("Content-Length"); (tc.enc == "" || strings.HasPrefix(tc.target, "/pre")) && cl != fmt.Sprint(w.Body.Len()) {
			t.Errorf("GET %s %v: Content-Length %q for %d bytes", tc.target, tc.req, cl, w.Body.Len())
		}
	}
	if f.calls != 0 {
		t.Errorf("static files ran PHP %d times", f.calls)
	}

	// ETags: the on-the-fly variant's is the file's, weak; 304 for it. The precompressed one has its own.
	plain := serve(h, "GET", "/app.css", nil).Header().Get("Etag")
	br := serve(h, "GET", "/app.css", nil, "Accept-Encoding", "br").Header().Get("Etag")
	if br != "W/"+plain || plain == "" {
		t.Errorf("ETag %q compressed, %q not; want W/ and the same tag", br, plain)
	}
	if w := serve(h, "GET", "/app.css", nil, "Accept-Encoding", "br", "If-None-Match", br); w.Code != 304 || w.Body.Len() != 0 {
		t.Errorf("If-None-Match %s: %d, %d bytes; want 304", br, w.Code, w.Body.Len())
	}
	pre := serve(h, "GET", "/pre.js", nil, "Accept-Encoding", "br").Header().Get("Etag")
	if pre == serve(h, "GET", "/pre.js", nil).Header().Get("Etag") || !strings.HasSuffix(pre, `-br"`) {
		t.Errorf("precompressed ETag %q: want its own, ending in -br", pre)
	}
	if w := serve(h, "GET", "/pre.js", nil, "Accept-Encoding", "br", "If-None-Match", pre); w.Code != 304 || w.Header().Get("Content-Encoding") != "" {
		t.Errorf("If-None-Match %s: %d, Content-Encoding %q; want 304 without one", pre, w.Code, w.Header().Get("Content-Encoding"))
	}
	if w := serve(h, "HEAD", "/app.css", nil, "Accept-Encoding", "br"); w.Code != 200 || w.Header().Get("Content-Encoding") != "" || w.Body.Len() != 0 {
		t.Errorf("HEAD /app.css: %d, Content-Encoding %q, %d bytes; want 200, none, none", w.Code, w.Header().Get("Content-Encoding"), w.Body.Len())
	}

	// Immutable build output; other files keep what they had (no Cache-Control).
	for target, want := range map[string]string{"/build/app.css": immutableCache, "/app.css": "", "/x/../build/app.css": immutableCache} {
		if got := serve(h, "GET", target, nil).Header().Get("Cache-Control"); got != want {
			t.Errorf("GET %s: Cache-Control %q; want %q", target, got, want)
		}
	}
}

// PHP's flush decides a response still under minCompressSize: Laravel ends every response with
// flush(), so a small page is sent as it is; an event stream is compressed from its first flush;
// a response with enough bytes by then is compressed and keeps streaming.
func TestCompressFlushDecides(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ctype  string
		chunks [][]byte // each followed by a flush
		enc    string
	}{
		{"small page then flush", "text/html; charset=UTF-8", [][]byte{page(300)}, ""},
		{"event stream", "text/event-stream", [][]byte{[]byte("data: 1\n\n"), []byte("data: 2\n\n")}, "br"},
		{"large first flush", "application/json", [][]byte{page(2000), page(100), page(5000)}, "br"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []byte
			f := &fakePool{answer: func(resp channel.Response) error {
				if err := resp.Head(200, []channel.Header{{Name: "Content-Type", Value: tc.ctype}}); err != nil {
					return err
				}
				for _, c := range tc.chunks {
					want = append(want, c...)
					if err := resp.Body(c); err != nil {
						return err
					}
					if err := resp.Flush(); err != nil {
						return err
					}
				}
				return nil
			}}
			h, _ := workerHandler(t, f, Options{Compression: true})
			w := serve(h, "GET", "/app", nil, "Accept-Encoding", "br, gzip")
			if got := w.Header().Get("Content-Encoding"); got != tc.enc {
				t.Errorf("Content-Encoding %q; want %q", got, tc.enc)
			}
			if !strings.Contains(w.Header().Get("Vary"), "Accept-Encoding") {
				t.Errorf("Vary %q; want Accept-Encoding", w.Header().Get("Vary"))
			}
			if got := decode(t, tc.enc, w.Body.Bytes()); !bytes.Equal(got, want) {
				t.Errorf("the body decodes to %d bytes, not the %d PHP sent", len(got), len(want))
			}
		})
	}
}

// pagePool answers every request with the same HTML page (about the Laravel example's size).
type pagePool struct{ body []byte }

func (p pagePool) Call(ctx context.Context, v *pool.Visit, call func(pool.Process) pool.Outcome) error {
	return call(pageWorker{&fakeFCGI{}, p.body}).Err
}

func (pagePool) Limits() channel.Limits { return channel.Limits{} }

type pageWorker struct {
	*fakeFCGI
	body []byte
}

func (w pageWorker) Exchange(p []byte, resp channel.Response) channel.Result {
	resp.Head(200, []channel.Header{{Name: "Content-Type", Value: "text/html; charset=UTF-8"}})
	return channel.Result{Err: resp.Body(w.body)}
}

// What compression costs a request of PHP: off, on for a client that accepts none (Vary only),
// and br and gzip of a 1 KB page.
func BenchmarkCompress(b *testing.B) {
	root := b.TempDir()
	if err := os.WriteFile(filepath.Join(root, "index.php"), []byte("<?php"), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		on     bool
		accept string
	}{{"off", false, "br"}, {"on/identity", true, ""}, {"on/br", true, "gzip, deflate, br"}, {"on/gzip", true, "gzip"}} {
		h, err := New(Options{Root: root, Front: "index.php", SpoolDir: b.TempDir(), MaxBodySize: 1 << 20, BodyBufferSize: 64 << 10,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Compression: tc.on}, pagePool{page(1000)})
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest("GET", "/app", nil)
				if tc.accept != "" {
					r.Header.Set("Accept-Encoding", tc.accept)
				}
				h.ServeHTTP(httptest.NewRecorder(), r)
			}
		})
	}
}
