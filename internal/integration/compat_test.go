package integration

// Tests behind docs/compatibility.md: request bodies, uploads, streaming, client aborts and
// response headers behave as under php-fpm.

import (
	"bufio"
	"cmp"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// seeded is a reproducible stream of n pseudo-random bytes that is never held in memory.
func seeded(n int64, seed uint64) io.Reader {
	return io.LimitReader(rngReader{rand.New(rand.NewPCG(seed, seed))}, n)
}

type rngReader struct{ r *rand.Rand }

func (g rngReader) Read(p []byte) (int, error) {
	for i := 0; i < len(p); i += 8 {
		v := g.r.Uint64()
		for j := 0; j < 8 && i+j < len(p); j++ {
			p[i+j] = byte(v >> (8 * j))
		}
	}
	return len(p), nil
}

// procKB reads a "Vm…:  N kB" line of /proc/PID/status.
func procKB(t testing.TB, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// memoryBound watches a process's resident memory while a large request runs: its peak may
// exceed what it used idle by at most limit bytes.
type memoryBound struct {
	t    testing.TB
	name string
	pid  int
	idle int64 // kB
}

func watchMemory(t testing.TB, name string, pid int) memoryBound {
	t.Helper()
	// "5" resets the peak (VmHWM) to the current RSS (proc(5)).
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Fatalf("resetting the peak RSS of %s: %v", name, err)
	}
	return memoryBound{t: t, name: name, pid: pid, idle: procKB(t, pid, "VmRSS")}
}

func (m memoryBound) check(limit int64) {
	m.t.Helper()
	peak := procKB(m.t, m.pid, "VmHWM")
	m.t.Logf("%s (pid %d): idle RSS %d kB, peak RSS %d kB", m.name, m.pid, m.idle, peak)
	if peak-m.idle > limit>>10 {
		m.t.Errorf("%s peak RSS %d kB is %d kB above idle %d kB; bound %d kB", m.name, peak, peak-m.idle, m.idle, limit>>10)
	}
}

// TestInlineBodiesThroughPHPInput: bodies under body_buffer_size travel in the Request frame's
// payload, which the worker reads with one recv() when it fits 64 KiB and in more when not (the
// frame comes in pieces): php://input has each whole, around those bounds.
func TestInlineBodiesThroughPHPInput(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	for i, size := range []int64{1, 60 << 10, 64<<10 - 700, 64 << 10, 64<<10 + 1, 130 << 10, 900 << 10} {
		b, _ := io.ReadAll(seeded(size, uint64(i+7)))
		h := sha1.Sum(b)
		r := s.do("PUT", "/input-sha1", strings.NewReader(string(b)), "Content-Type", "application/octet-stream")
		var got struct {
			SHA1   string `json:"sha1"`
			Length int64  `json:"length"`
		}
		if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.status != 200 {
			t.Fatalf("PUT of %d bytes: %d %q (%v)", size, r.status, r.body, err)
		}
		if want := hex.EncodeToString(h[:]); got.SHA1 != want || got.Length != size {
			t.Errorf("PUT of %d bytes: php://input sha1 %s, %d bytes; want %s, %d", size, got.SHA1, got.Length, want, size)
		}
	}
}

// TestHugeBodyThroughPHPInput: a 100 MB PUT is spooled by askrd and read in pieces through
// php://input; neither askrd nor the worker holds it in memory.
func TestHugeBodyThroughPHPInput(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB body")
	}
	// A handler without the $request parameter: one with it gets the body in $request['body'].
	s := startAskrd(t, opts{args: []string{"--workers", "1"}, config: "[server]\nmax_body_size = \"128M\"\n", env: []string{"ASKR_TEST_NO_PARAM=1"}})
	wpid := pidOf(t, s)
	askrdMem, workerMem := watchMemory(t, "askrd", s.cmd.Process.Pid), watchMemory(t, "worker", wpid)

	const size = 100 << 20
	h := sha1.New()
	req, _ := http.NewRequest("PUT", s.URL+"/input-sha1", io.TeeReader(seeded(size, 1), h))
	req.ContentLength = size
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		SHA1   string `json:"sha1"`
		Length int64  `json:"length"`
		Peak   int64  `json:"peak"`
	}
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(h.Sum(nil)); got.SHA1 != want || got.Length != size {
		t.Errorf("php://input: sha1 %s, %d bytes; want %s, %d", got.SHA1, got.Length, want, size)
	}
	if got.Peak > 16<<20 {
		t.Errorf("PHP's peak memory while reading php://input = %d bytes", got.Peak)
	}
	askrdMem.check(64 << 20)
	workerMem.check(64 << 20)
	if wpid2 := pidOf(t, s); wpid2 != wpid {
		t.Errorf("worker %d was replaced by %d", wpid, wpid2)
	}
	s.noTempFiles()
}

// noTempFiles checks that askrd's TMPDIR (private to the test) holds no spooled body or upload.
func (s *server) noTempFiles() {
	t := s.t
	t.Helper()
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "askr-body-") || strings.HasPrefix(e.Name(), "askr-upload-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

type uploadsAnswer struct {
	Files  any `json:"files"` // PHP's json_encode() gives [] for an empty array
	Checks []struct {
		Tmp            string `json:"tmp"`
		IsUploadedFile bool   `json:"is_uploaded_file"`
		SHA1           string `json:"sha1"`
	} `json:"checks"`
	NotUploaded bool   `json:"not_uploaded"`
	Moved       bool   `json:"moved"`
	MovedSHA1   string `json:"moved_sha1"`
	MoveOther   bool   `json:"move_other"`
}

type part struct{ field, filename, content string }

func postParts(t testing.TB, s *server, path string, parts ...part) uploadsAnswer {
	t.Helper()
	var buf strings.Builder
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		if p.filename == "-" {
			mw.WriteField(p.field, p.content)
			continue
		}
		w, _ := mw.CreateFormFile(p.field, p.filename)
		io.WriteString(w, p.content)
	}
	mw.Close()
	r := s.do("POST", path, strings.NewReader(buf.String()), "Content-Type", mw.FormDataContentType())
	if r.status != 200 {
		t.Fatalf("POST %s = %d: %s", path, r.status, r.body)
	}
	var a uploadsAnswer
	if err := json.Unmarshal([]byte(r.body), &a); err != nil {
		t.Fatalf("POST %s: %v: %s", path, err, r.body)
	}
	return a
}

// TestUploadFunctions: is_uploaded_file() and move_uploaded_file() accept the files askrd stored
// for this request, and nothing else (with the askr extension).
func TestUploadFunctions(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	dest := filepath.Join(t.TempDir(), "moved.txt")
	a := postParts(t, s, "/uploads?move="+dest, part{"doc", "a.txt", "first file"})
	if len(a.Checks) != 1 || !a.Checks[0].IsUploadedFile {
		t.Fatalf("is_uploaded_file($_FILES[doc][tmp_name]) is not true: %+v", a)
	}
	if a.NotUploaded {
		t.Errorf("is_uploaded_file(__FILE__) = true")
	}
	if !a.Moved || a.MovedSHA1 != sha1hex([]byte("first file")) {
		t.Errorf("move_uploaded_file: %v, sha1 %q", a.Moved, a.MovedSHA1)
	}
	if a.MoveOther {
		t.Errorf("move_uploaded_file(__FILE__) = true")
	}
	// The next request's files only: the first request's path is no longer an upload.
	b := postParts(t, s, "/uploads", part{"doc", "b.txt", "second"})
	if len(b.Checks) != 1 || !b.Checks[0].IsUploadedFile || b.Checks[0].Tmp == a.Checks[0].Tmp {
		t.Fatalf("second request: %+v", b)
	}
	s.noTempFiles()
}

// TestUploadLimitsFollowPHPIni: askrd applies the worker's upload_max_filesize, max_file_uploads,
// MAX_FILE_SIZE, file_uploads and post_max_size with PHP's error codes.
func TestUploadLimitsFollowPHPIni(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"},
		config: "[worker]\nini = \"\"\"\nupload_max_filesize = 1K\nmax_file_uploads = 2\npost_max_size = 64K\n\"\"\"\n"})
	big := strings.Repeat("x", 2000)
	a := postParts(t, s, "/uploads",
		part{"small", "s.txt", "ok"},
		part{"large", "l.txt", big},
		part{"third", "t.txt", "dropped"},
		part{"empty", "", ""})
	files := func() map[string]any { m, _ := a.Files.(map[string]any); return m }
	f := func(name, key string) any {
		m, _ := files()[name].(map[string]any)
		if m == nil {
			return nil
		}
		return m[key]
	}
	if f("small", "error") != float64(0) || f("small", "size") != float64(2) {
		t.Errorf("$_FILES[small] = %v", files()["small"])
	}
	if f("large", "error") != float64(1) || f("large", "size") != float64(0) || f("large", "tmp_name") != "" {
		t.Errorf("$_FILES[large] = %v; want error 1 (UPLOAD_ERR_INI_SIZE), size 0, no tmp_name", files()["large"])
	}
	if _, ok := files()["third"]; ok {
		t.Errorf("a third file passed max_file_uploads = 2: %v", files()["third"])
	}
	if f("empty", "error") != float64(4) {
		t.Errorf("$_FILES[empty] = %v; want error 4", files()["empty"])
	}
	s.waitLog("Maximum number of allowable file uploads has been exceeded", 10*time.Second)

	// MAX_FILE_SIZE in the form, before the file: UPLOAD_ERR_FORM_SIZE.
	a = postParts(t, s, "/uploads", part{"MAX_FILE_SIZE", "-", "10"}, part{"f", "f.txt", "eleven byte"})
	if f("f", "error") != float64(2) || f("f", "tmp_name") != "" {
		t.Errorf("$_FILES[f] over MAX_FILE_SIZE = %v; want error 2", files()["f"])
	}

	// Over post_max_size: neither $_POST nor $_FILES, a warning in the log, as php-fpm.
	a = postParts(t, s, "/uploads", part{"title", "-", "t"}, part{"f", "f.txt", strings.Repeat("y", 70<<10)})
	if len(files()) != 0 {
		t.Errorf("$_FILES over post_max_size = %v; want empty", a.Files)
	}
	s.waitLog("exceeds the limit of 65536 bytes", 10*time.Second)
	s.noTempFiles()
}

// sseEvent is one event as the client received it.
type sseEvent struct {
	n       int
	flushed time.Time // when PHP flushed it (its own clock, the same machine)
	arrived time.Time
}

// readSSE reads the events of resp, decoding a body that came compressed.
func readSSE(t testing.TB, resp *http.Response) []sseEvent {
	t.Helper()
	var events []sseEvent
	enc := resp.Header.Get("Content-Encoding")
	if resp.Uncompressed {
		enc = "" // Go's transport asked for gzip itself and decodes it
	}
	sc := bufio.NewScanner(decoder(t, enc, resp.Body))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		arrived := time.Now()
		var n int
		var ts float64
		if _, err := fmt.Sscanf(line, "%d %f", &n, &ts); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		sec := int64(ts)
		events = append(events, sseEvent{n, time.Unix(sec, int64((ts-float64(sec))*1e9)), arrived})
	}
	return events
}

// TestServerSentEvents: each flush() reaches the client at once, in chunked transfer encoding,
// compressed (server.compression is on by default) as the client asks: br, gzip or not at all.
func TestServerSentEvents(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	for _, tc := range []struct{ via, enc string }{{"flush", "br"}, {"ob_flush", "br"}, {"flush", "gzip"}, {"flush", ""}} {
		t.Run(tc.via+"/"+cmp.Or(tc.enc, "identity"), func(t *testing.T) {
			via := tc.via
			req, err := http.NewRequest("GET", s.URL+"/sse?n=5&gap_ms=150&via="+via, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Accept-Encoding", cmp.Or(tc.enc, "identity"))
			resp, err := rawClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") || len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
				t.Errorf("Content-Type %q, Transfer-Encoding %v; want text/event-stream, chunked", ct, resp.TransferEncoding)
			}
			if enc := resp.Header.Get("Content-Encoding"); enc != tc.enc {
				t.Errorf("Content-Encoding %q; want %q", enc, tc.enc)
			}
			events := readSSE(t, resp)
			if len(events) != 5 {
				t.Fatalf("%d events; want 5", len(events))
			}
			for i, e := range events {
				lag := e.arrived.Sub(e.flushed)
				t.Logf("event %d arrived %v after its %s()", e.n, lag, via)
				if e.n != i+1 || lag > 50*time.Millisecond {
					t.Errorf("event %d (want %d) arrived %v after its %s(); want within 50ms", e.n, i+1, lag, via)
				}
			}
		})
	}
}

// TestClientAbortIsNoticed: a client that leaves mid-stream makes connection_aborted() 1; with
// ignore_user_abort the app finishes its own way, without it the script stops (shutdown functions
// still run), as under php-fpm. askrd keeps serving either way.
func TestClientAbortIsNoticed(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	for _, tc := range []struct {
		ignore string
		want   []string
	}{
		// The app sees it at its next flush() and stops on its own; shutdown functions run only
		// when the worker ends, as in any worker loop.
		{"1", []string{"noticed at"}},
		// PHP ends the script at that flush(): the shutdown functions run (and the worker is replaced).
		{"0", []string{"shutdown aborted=1"}},
	} {
		t.Run("ignore_user_abort="+tc.ignore, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "marker")
			conn, err := net.Dial("tcp", s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "GET /abort?ignore=%s&marker=%s HTTP/1.1\r\nHost: x\r\n\r\n", tc.ignore, marker)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(resp.Body, make([]byte, 4096)); err != nil {
				t.Fatal(err)
			}
			conn.Close() // mid-stream
			var got string
			if !poll(20*time.Second, func() bool {
				b, _ := os.ReadFile(marker)
				got = string(b)
				return strings.Contains(got, tc.want[0]) || strings.Contains(got, "never noticed")
			}) {
				t.Fatalf("the app never finished after the client left: %q", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("app saw %q; want %q in it", got, w)
				}
			}
			if strings.Contains(got, "never noticed") {
				t.Errorf("connection_aborted() stayed 0: %q", got)
			}
			if r := s.get("/"); r.status != 200 {
				t.Errorf("after the abort: %d %s", r.status, r.body)
			}
		})
	}
}

// TestHeaderInjectionRejected: a header value with CR or LF never reaches the client; PHP
// refuses it and the warning is logged.
func TestHeaderInjectionRejected(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	r := s.get("/inject")
	if r.status != 200 || r.body != "after injection" || r.header.Get("X-Fine") != "yes" {
		t.Fatalf("/inject = %d %q %v", r.status, r.body, r.header)
	}
	for _, h := range []string{"Set-Cookie", "X-Evil", "X-Injected", "X-Injected-Lf"} {
		if v, ok := r.header[h]; ok {
			t.Errorf("header %s: %q reached the client", h, v)
		}
	}
	s.waitLog("Header may not contain more than a single header", 10*time.Second)
}

// TestResponseEdges: where askr's responses differ from php-fpm's, and the defaults they share.
func TestResponseEdges(t *testing.T) {
	s := startAskrd(t, opts{args: []string{"--workers", "1"}})
	resp, err := client.Get(s.URL + "/reason")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// net/http sends the standard reason phrase; php-fpm + nginx would send "Gone Fishing".
	if resp.Status != "404 Not Found" {
		t.Errorf("status line %q; want the standard \"404 Not Found\"", resp.Status)
	}
	r := s.get("/flushed")
	// After flush() the head has gone: a later header() does not reach the client, yet PHP's
	// headers_sent() stays false (php-fpm: true, and header() warns).
	if r.body != "early not sent" || r.header.Get("X-Late") != "" {
		t.Errorf("/flushed = %q, X-Late %q; want \"early not sent\" and no X-Late", r.body, r.header.Get("X-Late"))
	}
	if ct := r.header.Get("Content-Type"); ct != "text/html; charset=UTF-8" {
		t.Errorf("default Content-Type %q; want PHP's default_mimetype and default_charset", ct)
	}
	// ob_end_clean() can neither remove askr's buffer nor clean it (php-fpm: level 0 at once).
	if r := s.get("/ob-loop"); r.body != "kept level 1 after 5 tries" {
		t.Errorf("/ob-loop = %q; want \"kept level 1 after 5 tries\"", r.body)
	}
	// What askr_defer() callbacks output or flush goes nowhere; the next request is whole.
	if r := s.get("/defer-flush"); r.body != "main" {
		t.Errorf("/defer-flush = %q", r.body)
	}
	if r := s.get("/"); r.status != 200 || r.body != "worker ok" {
		t.Errorf("the request after /defer-flush = %d %q", r.status, r.body)
	}
	// flush() before any output sends nothing, so later headers still count.
	if r := s.get("/flush-first"); r.body != "x" || r.header.Get("X-After-Flush") != "1" {
		t.Errorf("/flush-first = %q, X-After-Flush %q", r.body, r.header.Get("X-After-Flush"))
	}
	// ignore_user_abort() is php.ini's again at every request.
	s.get("/ignore-abort?set=1")
	if r := s.get("/ignore-abort"); r.body != "0" {
		t.Errorf("ignore_user_abort() after a request that set it = %q; want 0", r.body)
	}
	// php-cgi offers no fastcgi_finish_request() (askr_defer() runs work after the response).
	if r := s.get("/functions"); r.body != `{"fastcgi_finish_request":false}` {
		t.Errorf("/functions = %q", r.body)
	}
	// A shutdown function runs when the worker ends, not after each request.
	marker := filepath.Join(t.TempDir(), "shutdown")
	s.get("/shutdown-fn?marker=" + marker)
	s.get("/")
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the shutdown function ran after its request")
	}
	s.stop()
	if b, _ := os.ReadFile(marker); string(b) != "ran" {
		t.Errorf("the shutdown function did not run when the worker ended: %q", b)
	}
}
