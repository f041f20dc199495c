package httpfront_test

// BenchmarkServeWorker measures askrd's own cost of one worker-mode request, end to end through
// the Handler: routing, the CGI variables and their payload, the channel exchange (the real
// channel.Endpoint, on an in-memory connection that answers with a fixed Head, Body and End as the
// hello worker does), the responder, and the request record with the metrics and the access log
// as askrd has them (metrics always; the access log if configured). It leaves out what is not the
// Handler's: net/http's connection, the pool's lending (pool.BenchmarkCall), the kernel. Each
// iteration also makes one shallow copy of the request (net/http makes a request of its own).

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/accesslog"
	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/httpfront"
	"github.com/askr-php/askr/internal/metrics"
	"github.com/askr-php/askr/internal/pool"
)

func BenchmarkServeWorker(b *testing.B) {
	for _, bc := range []struct {
		name      string
		askrd     bool   // askrd's defaults: metrics and compression on
		accessLog string // "", accesslog.Combined or accesslog.JSON
		headers   bool   // a browser's headers, not wrk's Host alone
	}{
		{name: "bare"},
		{name: "askrd", askrd: true},
		{name: "askrd+log", askrd: true, accessLog: accesslog.Combined},
		{name: "askrd+log+browser", askrd: true, accessLog: accesslog.Combined, headers: true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			opt := httpfront.Options{
				Root: b.TempDir(), Front: "index.php", MaxBodySize: 1 << 20, BodyBufferSize: 1 << 20,
				Software: "askr/bench", ClientTimeout: time.Minute, ResponseSpoolSize: 1 << 30,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Compression: bc.askrd,
			}
			if err := os.WriteFile(filepath.Join(opt.Root, "index.php"), []byte("<?php"), 0o644); err != nil {
				b.Fatal(err)
			}
			var obs []func(*httpfront.Record)
			if bc.accessLog != "" {
				l := accesslog.New(io.Discard, bc.accessLog, nil)
				b.Cleanup(func() { l.Close() })
				obs = append(obs, l.Log)
			}
			if bc.askrd {
				obs = append(obs, metrics.New(metrics.Options{Mode: "worker"}).Observe)
			}
			if len(obs) > 0 {
				opt.Observe = func(r *httpfront.Record) {
					for _, o := range obs {
						o(r)
					}
				}
			}
			h, err := httpfront.New(opt, newHelloBackend())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { h.Close() })

			req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080/", nil)
			req.RemoteAddr = "127.0.0.1:54321"
			req.Body = http.NoBody
			if bc.headers {
				for k, v := range map[string]string{
					"User-Agent":      "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
					"Accept":          "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
					"Accept-Language": "en-US,en;q=0.5",
					"Accept-Encoding": "gzip, deflate, br, zstd",
					"Referer":         "http://127.0.0.1:8080/x",
					"Cookie":          "session=0123456789abcdef; theme=dark",
					"Connection":      "keep-alive",
				} {
					req.Header.Set(k, v)
				}
			}
			req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey,
				&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}))
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				r := *req
				clear(w.h)
				w.status = 0
				h.ServeHTTP(w, &r)
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
}

// discardWriter is a ResponseWriter that keeps the status and drops the body; it has the
// deadlines and the flush of net/http's.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}
func (w *discardWriter) FlushError() error                { return nil }
func (w *discardWriter) SetReadDeadline(time.Time) error  { return nil }
func (w *discardWriter) SetWriteDeadline(time.Time) error { return nil }

// helloBackend lends its one process to every call, as an idle pool with one worker would,
// filling the Visit in as the pool does.
type helloBackend struct{ proc *helloProcess }

func newHelloBackend() *helloBackend {
	c := &helloConn{answer: helloAnswer()}
	return &helloBackend{proc: &helloProcess{ep: channel.NewEndpoint(c)}}
}

func (hb *helloBackend) Call(ctx context.Context, v *pool.Visit, call func(pool.Process) pool.Outcome) error {
	start := time.Now()
	if v.Start.IsZero() {
		v.Start = start
	}
	o := call(hb.proc)
	v.PID, v.Upstream = hb.proc.PID(), time.Since(start)
	return o.Err
}

func (hb *helloBackend) Limits() channel.Limits {
	return channel.Limits{Known: true, FileUploads: true, MaxFiles: 20, MaxFileSize: 2 << 20, PostMaxSize: 8 << 20}
}

// helloProcess is a worker whose channel answers every request as hello-worker.php does.
type helloProcess struct{ ep *channel.Endpoint }

func (p *helloProcess) Exchange(payload []byte, resp channel.Response) channel.Result {
	return p.ep.Exchange(payload, resp)
}
func (p *helloProcess) PID() int { return 4242 }
func (p *helloProcess) Greet(time.Duration) (channel.Hello, error) {
	return channel.Hello{PID: 4242}, nil
}
func (p *helloProcess) Ping(time.Duration) error { return nil }
func (p *helloProcess) Stop() error              { return nil }
func (p *helloProcess) Kill() error              { return nil }
func (p *helloProcess) Done() <-chan struct{}    { return nil }
func (p *helloProcess) Err() error               { return nil }
func (p *helloProcess) Left() bool               { return false }
func (p *helloProcess) Tail() string             { return "" }
func (p *helloProcess) Close() error             { return nil }

// helloAnswer is the frames of hello-worker.php's answer: Head, Body, End.
func helloAnswer() []byte {
	head := binary.BigEndian.AppendUint16(nil, 200)
	head = append(head, "Content-Type: text/plain; charset=utf-8"...)
	body := []byte("Hello from askr worker 4242\nmethod=GET uri=/ served=1\n")
	end := make([]byte, 16)
	binary.BigEndian.PutUint64(end, 2<<20)
	binary.BigEndian.PutUint64(end[8:], 2<<20)
	var a []byte
	a = channel.AppendHeader(a, channel.TypeHead, 0, len(head))
	a = append(a, head...)
	a = channel.AppendHeader(a, channel.TypeBody, 0, len(body))
	a = append(a, body...)
	a = channel.AppendHeader(a, channel.TypeEnd, 0, len(end))
	return append(a, end...)
}

// helloConn is the worker's end of the channel in memory: each request written to it is
// answered with answer.
type helloConn struct {
	net.Conn // not used
	answer   []byte
	unread   []byte
}

func (c *helloConn) Write(p []byte) (int, error) {
	c.unread = c.answer
	return len(p), nil
}

func (c *helloConn) Read(p []byte) (int, error) {
	if len(c.unread) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.unread)
	c.unread = c.unread[n:]
	return n, nil
}

func (c *helloConn) SetDeadline(time.Time) error      { return nil }
func (c *helloConn) SetReadDeadline(time.Time) error  { return nil }
func (c *helloConn) SetWriteDeadline(time.Time) error { return nil }
