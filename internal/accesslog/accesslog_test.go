package accesslog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/httpfront"
	"github.com/askr-php/askr/internal/pool"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// start is a fixed time in UTC; the combined format writes local time, so the tests run in UTC.
var start = time.Date(2026, 12, 6, 12, 35, 56, 100e6, time.UTC)

func phpRecord() *httpfront.Record {
	return &httpfront.Record{Start: start, Duration: 12500 * time.Microsecond, RemoteAddr: "192.0.2.7:40000",
		Method: "POST", URI: "/form?x=1", Proto: "HTTP/1.1", Host: "example.com", Referer: "http://example.com/",
		UserAgent: "curl/8.0", User: "alice", Status: 201, BytesIn: 17, BytesOut: 1234, PHP: true,
		Visit: pool.Visit{Method: "POST", URI: "/form?x=1", Start: start, QueueWait: 1500 * time.Microsecond, Upstream: 10 * time.Millisecond, PID: 4321}}
}

func staticRecord() *httpfront.Record {
	return &httpfront.Record{Start: start, Duration: 2 * time.Second, RemoteAddr: "[2001:db8::1]:443",
		Method: "GET", URI: "/style.css", Proto: "HTTP/2.0", Status: 304}
}

func TestCombined(t *testing.T) {
	time.Local = time.UTC
	for _, tc := range []struct {
		name string
		r    *httpfront.Record
		want string
	}{
		{"php", phpRecord(), `192.0.2.7 - alice [06/Dec/2026:12:35:56 +0000] "POST /form?x=1 HTTP/1.1" 201 1234 "http://example.com/" "curl/8.0" rt=0.012 php=0.010 wait=0.001 pid=4321` + "\n"},
		{"static", staticRecord(), `2001:db8::1 - - [06/Dec/2026:12:35:58 +0000] "GET /style.css HTTP/2.0" 304 0 "-" "-" rt=2.000 php=- wait=- pid=-` + "\n"},
		{"php, no worker took it", func() *httpfront.Record {
			r := phpRecord()
			r.Status, r.Visit.PID, r.Visit.Upstream, r.Visit.QueueWait = 503, 0, 0, 1234*time.Millisecond
			return r
		}(), `192.0.2.7 - alice [06/Dec/2026:12:35:56 +0000] "POST /form?x=1 HTTP/1.1" 503 1234 "http://example.com/" "curl/8.0" rt=0.012 php=- wait=1.234 pid=-` + "\n"},
		{"forged", func() *httpfront.Record {
			r := phpRecord()
			r.UserAgent = "x\" 200 0 \"-\" \"y\n1.2.3.4 - - [fake]"
			r.Referer = "a\\b\x1b[31m\x7f"
			r.User = "é\xff"
			r.URI = "/\"\t"
			return r
		}(), `192.0.2.7 - \xC3\xA9\xFF [06/Dec/2026:12:35:56 +0000] "POST /\x22\x09 HTTP/1.1" 201 1234 "a\x5Cb\x1B[31m\x7F" "x\x22 200 0 \x22-\x22 \x22y\x0A1.2.3.4 - - [fake]" rt=0.012 php=0.010 wait=0.001 pid=4321` + "\n"},
	} {
		if got := string(appendCombined(nil, tc.r)); got != tc.want {
			t.Errorf("%s: appendCombined =\n%s\nwant\n%s", tc.name, got, tc.want)
		}
	}
}

func TestJSON(t *testing.T) {
	r := phpRecord()
	r.UserAgent = "line\nbreak \"quoted\" \\ \x01 é 😀 \u2028"
	r.Referer = "bad \xff\xfe utf-8"
	line := appendJSON(nil, r)
	if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
		t.Fatalf("appendJSON = %q; want one line", line)
	}
	for _, c := range line[:len(line)-1] {
		if c < 0x20 || c >= 0x7f {
			t.Fatalf("appendJSON = %q; want printable ASCII only", line)
		}
	}
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("appendJSON = %s: %v", line, err)
	}
	want := map[string]any{"ts": "2026-12-06T12:35:56.112Z", "remote": "192.0.2.7", "method": "POST", "uri": "/form?x=1",
		"proto": "HTTP/1.1", "status": 201.0, "bytes_in": 17.0, "bytes_out": 1234.0, "duration_ms": 12.5, "php_ms": 10.0,
		"queue_ms": 1.5, "pid": 4321.0, "host": "example.com", "referer": "bad \ufffd\ufffd utf-8", "user_agent": r.UserAgent, "user": "alice"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("appendJSON: %s = %#v; want %#v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("appendJSON has %d fields; want %d: %s", len(got), len(want), line)
	}
	var st map[string]any
	if err := json.Unmarshal(appendJSON(nil, staticRecord()), &st); err != nil {
		t.Fatal(err)
	}
	if st["php_ms"] != nil || st["queue_ms"] != nil || st["pid"] != nil || st["remote"] != "2001:db8::1" || st["referer"] != "" {
		t.Errorf("appendJSON of a static file = %v; want php_ms, queue_ms and pid null, the remote without its port", st)
	}
}

// Open refuses an unknown format and a path it cannot create.
func TestOpenErrors(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "a.log"), "common", quiet); err == nil {
		t.Error("Open(format common) = nil error; want one")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing", "a.log"), Combined, quiet); err == nil || !strings.Contains(err.Error(), "open access log") {
		t.Errorf("Open(in a missing directory) = %v; want an error opening the access log", err)
	}
}

// The file is created 0640 (less the umask), appended to, and a line reaches it within
// flushEvery without a Close.
func TestFileFlushedSoon(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, []byte("earlier\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, Combined, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Log(phpRecord())
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Count(string(b), "\n") == 2 && strings.HasPrefix(string(b), "earlier\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s the file holds %q; want the earlier line and the new one", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	path2 := filepath.Join(t.TempDir(), "new.log")
	l2, err := Open(path2, JSON, quiet)
	if err != nil {
		t.Fatal(err)
	}
	l2.Close()
	if fi, err := os.Stat(path2); err != nil || fi.Mode().Perm()&^0o640 != 0 {
		t.Errorf("new access log: %v, %v; want at most 0640", fi.Mode(), err)
	}
}

// writes records the writes a Logger makes to something that is not a regular file.
type writes struct {
	mu  sync.Mutex
	all [][]byte
	err error
}

func (w *writes) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all = append(w.all, bytes.Clone(b))
	if w.err != nil {
		return 0, w.err
	}
	return len(b), nil
}

// To a pipe (or anything but a regular file) no write is longer than PIPE_BUF unless it is one
// line, and every write is whole lines.
func TestWritesAreWholeLines(t *testing.T) {
	w := &writes{}
	l := New(w, Combined, quiet)
	long := phpRecord()
	long.UserAgent = strings.Repeat("u", 5000)
	for i := range 200 {
		r := phpRecord()
		r.URI = fmt.Sprintf("/%d", i)
		l.Log(r)
		if i == 100 {
			l.Log(long)
		}
	}
	l.Close()
	lines := 0
	for _, b := range w.all {
		n := bytes.Count(b, []byte("\n"))
		lines += n
		if b[len(b)-1] != '\n' || (len(b) > pipeBuf && n != 1) {
			t.Errorf("a write of %d bytes, %d lines, ending in %q; want whole lines, at most %d bytes unless one line", len(b), n, b[len(b)-1], pipeBuf)
		}
	}
	if lines != 201 {
		t.Errorf("%d lines written; want 201", lines)
	}
	l.Log(phpRecord()) // after Close: dropped, no panic
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// A write error loses the lines of that write, is logged (once a minute), and the log goes on.
func TestWriteError(t *testing.T) {
	var logged bytes.Buffer
	w := &writes{err: errors.New("disk full")}
	l := New(w, Combined, slog.New(slog.NewTextHandler(&logged, nil)))
	l.Log(phpRecord())
	l.Log(phpRecord())
	l.Close()
	if !strings.Contains(logged.String(), "disk full") || !strings.Contains(logged.String(), "lines=2") {
		t.Errorf("logged %q; want the error and the 2 lines lost", logged.String())
	}
}

// load logs n records per goroutine, each with the URI /g-i, and returns once all are logged.
func load(l *Logger, goroutines, n int) {
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range n {
				r := phpRecord()
				r.URI = fmt.Sprintf("/%d-%d", g, i)
				l.Log(r)
			}
		})
	}
	wg.Wait()
}

// uris counts the URIs of the combined lines in files, and fails on a line that is not whole.
func uris(t *testing.T, files ...string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			line := sc.Text()
			_, rest, ok := strings.Cut(line, `"POST `)
			uri, _, ok2 := strings.Cut(rest, " HTTP/1.1\" 201 ")
			if !ok || !ok2 || !strings.HasSuffix(line, " pid=4321") {
				t.Errorf("%s: line %q is not whole", f, line)
				continue
			}
			seen[uri]++
		}
		fh.Close()
	}
	return seen
}

func checkOnce(t *testing.T, seen map[string]int, goroutines, n int) {
	t.Helper()
	bad := 0
	for g := range goroutines {
		for i := range n {
			if c := seen[fmt.Sprintf("/%d-%d", g, i)]; c != 1 && bad < 10 {
				t.Errorf("/%d-%d logged %d times; want once", g, i, c)
				bad++
			}
		}
	}
	if len(seen) != goroutines*n {
		t.Errorf("%d distinct lines; want %d", len(seen), goroutines*n)
	}
}

// Many goroutines: every line once, whole.
func TestConcurrentLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l, err := Open(path, Combined, quiet)
	if err != nil {
		t.Fatal(err)
	}
	load(l, 16, 2000)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	checkOnce(t, uris(t, path), 16, 2000)
}

// Rotation under load, as logrotate does it: rename the file, Reopen; the files together hold
// every line once.
func TestReopenUnderLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	l, err := Open(path, Combined, quiet)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { load(l, 8, 3000); close(done) }()
	files := []string{path}
	for i := 1; ; i++ {
		select {
		case <-done:
		default:
			rotated := fmt.Sprintf("%s.%d", path, i)
			if err := os.Rename(path, rotated); err != nil {
				t.Fatal(err)
			}
			files = append(files, rotated)
			if err := l.Reopen(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		break
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Logf("only %d rotations during the load", len(files)-1)
	}
	checkOnce(t, uris(t, files...), 8, 3000)
	if err := l.Reopen(); err == nil {
		t.Error("Reopen after Close = nil error; want one")
	}
}

// A path that cannot be reopened keeps the log on the old file.
func TestReopenFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "access.log")
	os.Mkdir(filepath.Dir(path), 0o755)
	l, err := Open(path, Combined, quiet)
	if err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(filepath.Dir(path), moved); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err == nil {
		t.Error("Reopen of a path whose directory is gone = nil error; want one")
	}
	l.Log(phpRecord())
	l.Close()
	if b, _ := os.ReadFile(filepath.Join(moved, "access.log")); strings.Count(string(b), "\n") != 1 {
		t.Errorf("the old file holds %q; want the line logged after the failed reopen", b)
	}
}

// BenchmarkLog is the cost of one line to a file from many goroutines (compare with
// BenchmarkLogPerLine, a write(2) per line).
func BenchmarkLog(b *testing.B) {
	for _, format := range []string{Combined, JSON} {
		b.Run(format, func(b *testing.B) {
			l, err := Open(filepath.Join(b.TempDir(), "access.log"), format, quiet)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			r := phpRecord()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					l.Log(r)
				}
			})
		})
	}
}

// BenchmarkLogPerLine writes each line with a write(2) of its own under the mutex, for comparison.
func BenchmarkLogPerLine(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "access.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var mu sync.Mutex
	r := phpRecord()
	b.RunParallel(func(pb *testing.PB) {
		var line []byte
		for pb.Next() {
			line = appendCombined(line[:0], r)
			mu.Lock()
			f.Write(line)
			mu.Unlock()
		}
	})
}
