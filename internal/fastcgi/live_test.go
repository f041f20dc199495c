package fastcgi

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tests against Debian's php-cgi (skipped where it is not installed).

// bodyOf runs one request and returns its STDOUT after the head, and STDERR.
func bodyOf(t *testing.T, c *Conn, req *Request) (string, string) {
	t.Helper()
	var body, stderr bytes.Buffer
	hs := NewHeadSplitter(DefaultMaxHead, func(*Head) error { return nil }, &body)
	req.Stdout, req.Stderr = hs, &stderr
	if _, err := c.Do(testContext(t, 20*time.Second), req); err != nil {
		t.Fatalf("Do(%s) error = %v", req.Params, err)
	}
	if err := hs.Close(); err != nil {
		t.Fatalf("Do(%s): %v", req.Params, err)
	}
	return body.String(), stderr.String()
}

// With FCGI_KEEP_CONN, php-cgi serves request after request on one connection (and accepts no
// other connection meanwhile).
func TestLiveKeepConn(t *testing.T) {
	p := startPHPCGI(t)
	c := NewConn(p.dial(t))
	var pids []string
	for i := range 5 {
		pid, _ := bodyOf(t, c, &Request{Params: cgiParams(script(t, "pid.php"), "GET", "", 0), KeepConn: true})
		pids = append(pids, pid)
		body := fmt.Sprintf("n=%d", i)
		got, _ := bodyOf(t, c, &Request{
			Params:   cgiParams(script(t, "post.php"), "POST", "", len(body), "CONTENT_TYPE", "application/x-www-form-urlencoded"),
			Stdin:    strings.NewReader(body),
			KeepConn: true,
		})
		if want := fmt.Sprintf(`post={"n":"%d"}`, i); !strings.Contains(got, want) {
			t.Errorf("request %d: POST answered %q; want %s", i, got, want)
		}
		if !c.Reusable() {
			t.Fatalf("request %d: Reusable() = false; want true", i)
		}
	}
	for _, pid := range pids[1:] {
		if pid != pids[0] {
			t.Errorf("pids = %q; want one process", pids)
		}
	}

	// While the connection is kept, a second one waits in the listen queue.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	other := NewConn(p.dial(t))
	if _, err := other.Do(ctx, &Request{Params: cgiParams(script(t, "pid.php"), "GET", "", 0)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Do() on a second connection error = %v; want context.DeadlineExceeded (php-cgi serves the kept one)", err)
	}
	c.Close()
	got, _ := bodyOf(t, NewConn(p.dial(t)), &Request{Params: cgiParams(script(t, "pid.php"), "GET", "", 0)})
	if got != pids[0] {
		t.Errorf("after Close, a new connection got pid %q; want %q", got, pids[0])
	}
}

// Without FCGI_KEEP_CONN, php-cgi shuts its end down after END_REQUEST, but then reads until the
// client closes the connection before it accepts the next one (Do closes it).
func TestLiveWithoutKeepConn(t *testing.T) {
	p := startPHPCGI(t)
	nc := p.dial(t)
	nc.Write(concat(
		AppendRecord(nil, TypeBeginRequest, RequestID, beginRequestContent(RoleResponder, 0)),
		appendParams(nil, cgiParams(script(t, "pid.php"), "GET", "", 0)),
		AppendRecord(nil, TypeStdin, RequestID, nil)))
	r := NewReader(nc)
	var types []string
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next() error = %v; want records then io.EOF", err)
		}
		types = append(types, rec.Type.String())
	}
	if got := strings.Join(types, " "); got != "STDOUT END_REQUEST" {
		t.Errorf("records = %s; want STDOUT END_REQUEST, then the end of the connection", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := NewConn(p.dial(t)).Do(ctx, &Request{Params: cgiParams(script(t, "pid.php"), "GET", "", 0)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Do() while the first connection is open error = %v; want context.DeadlineExceeded", err)
	}
	nc.Close()
	for range 3 {
		c := NewConn(p.dial(t))
		bodyOf(t, c, &Request{Params: cgiParams(script(t, "pid.php"), "GET", "", 0)})
		if c.Reusable() {
			t.Errorf("Reusable() without KeepConn = true; want false")
		}
	}
}

// hashingReader yields n pseudo-random bytes, hashing them as they go and remembering the largest
// Read it was asked for; it never holds more than one Read's worth.
type hashingReader struct {
	n, off  int
	h       hash.Hash
	maxRead int
	x       uint32
}

func (r *hashingReader) Read(p []byte) (int, error) {
	r.maxRead = max(r.maxRead, len(p))
	if r.off == r.n {
		return 0, io.EOF
	}
	k := min(len(p), r.n-r.off)
	for i := range k {
		r.x = r.x*1664525 + 1013904223
		p[i] = byte(r.x >> 24)
	}
	r.h.Write(p[:k])
	r.off += k
	return k, nil
}

// A multi-megabyte body streams through in records of at most 65 535 bytes, never held whole.
func TestLiveLargeStdin(t *testing.T) {
	p := startPHPCGI(t)
	const size = 8 << 20
	body := &hashingReader{n: size, h: md5.New(), x: 1}
	c := NewConn(p.dial(t))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got, _ := bodyOf(t, c, &Request{
		Params:   cgiParams(script(t, "post.php"), "POST", "", size, "CONTENT_TYPE", "application/octet-stream"),
		Stdin:    body,
		KeepConn: true,
	})
	runtime.ReadMemStats(&after)
	want := fmt.Sprintf("length=%d\nmd5=%x\npost=[]\n", size, body.h.Sum(nil))
	if got != want {
		t.Errorf("post.php answered %q; want %q", got, want)
	}
	if body.maxRead > MaxContent {
		t.Errorf("largest Read of the body = %d bytes; want at most %d", body.maxRead, MaxContent)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20 {
		t.Errorf("sending an 8 MiB body allocated %d bytes; want it streamed (under 2 MiB)", alloc)
	}
	if !c.Reusable() {
		t.Errorf("Reusable() after a body of CONTENT_LENGTH bytes = false; want true")
	}
}

// chunkWriter passes each STDOUT record to a func, which may react before the next arrives.
type chunkWriter func(p []byte) error

func (w chunkWriter) Write(p []byte) (int, error) { return len(p), w(p) }

// Output a script flush()es reaches the caller before the script goes on: the script waits for a
// file that the test creates only once it has the first chunk.
func TestLiveStreamsStdout(t *testing.T) {
	p := startPHPCGI(t)
	goFile := filepath.Join(t.TempDir(), "go")
	var chunks []string
	var body bytes.Buffer
	hs := NewHeadSplitter(DefaultMaxHead, func(*Head) error { return nil }, chunkWriter(func(b []byte) error {
		chunks = append(chunks, string(b))
		body.Write(b)
		if len(chunks) == 1 {
			return os.WriteFile(goFile, nil, 0o644) // lets the script continue
		}
		return nil
	}))
	_, err := NewConn(p.dial(t)).Do(testContext(t, 20*time.Second), &Request{
		Params: cgiParams(script(t, "flush.php"), "GET", "go="+goFile, 0),
		Stdout: hs,
	})
	if err != nil {
		t.Fatalf("Do(flush.php) error = %v", err)
	}
	if want := []string{"first chunk\n", "second chunk\n"}; fmt.Sprint(chunks) != fmt.Sprint(want) {
		t.Errorf("body chunks = %q; want %q (the first before the script went on)", chunks, want)
	}
}

// Cancelling a request whose script produces output: Do returns at once, and php-cgi aborts the
// script at its next write to the closed connection, then serves the next connection.
func TestLiveCancel(t *testing.T) {
	p := startPHPCGI(t)
	dir := t.TempDir()
	stop, done := filepath.Join(dir, "stop"), filepath.Join(dir, "done")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	_, err := NewConn(p.dial(t)).Do(ctx, &Request{
		Params: cgiParams(script(t, "loop.php"), "GET", "stop="+stop+"&done="+done, 0),
		Stdout: chunkWriter(func([]byte) error {
			cancel() // as a client that went away once the response had started
			return nil
		}),
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Do(loop.php) error = %v; want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Do(loop.php) took %v; want a prompt return", d)
	}
	// php-cgi is single-process: it serves the next request only once the script has ended, and
	// an aborted script never reaches its last line.
	bodyOf(t, NewConn(p.dial(t)), &Request{Params: cgiParams(script(t, "pid.php"), "GET", "", 0)})
	if _, err := os.Stat(done); err == nil {
		t.Errorf("loop.php ran to its end after the request was cancelled; want it aborted")
	}
}

// A script that writes nothing does not notice a cancelled request: it runs on (bounded only by
// max_execution_time) and php-cgi serves nobody else meanwhile. Callers that need the process
// back must kill it.
func TestLiveCancelSilentScriptRunsOn(t *testing.T) {
	p := startPHPCGI(t)
	goFile := filepath.Join(t.TempDir(), "go")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := NewConn(p.dial(t)).Do(ctx, &Request{Params: cgiParams(script(t, "wait.php"), "GET", "go="+goFile, 0)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do(wait.php) error = %v; want context.DeadlineExceeded", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	next := NewConn(p.dial(t))
	if _, err := next.Do(ctx2, &Request{Params: cgiParams(script(t, "pid.php"), "GET", "", 0)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Do() while the cancelled script runs error = %v; want context.DeadlineExceeded", err)
	}
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bodyOf(t, NewConn(p.dial(t)), &Request{Params: cgiParams(script(t, "pid.php"), "GET", "", 0)})
}

// php-cgi exits (status 0) after PHP_FCGI_MAX_REQUESTS requests (default 500; 0 = no limit),
// even on a kept connection.
func TestLiveMaxRequests(t *testing.T) {
	p := startPHPCGI(t, "PHP_FCGI_MAX_REQUESTS=3")
	c := NewConn(p.dial(t))
	for range 3 {
		bodyOf(t, c, &Request{Params: cgiParams(script(t, "pid.php"), "GET", "", 0), KeepConn: true})
	}
	if !p.waitExit(10 * time.Second) {
		t.Fatalf("php-cgi still runs after PHP_FCGI_MAX_REQUESTS=3 requests")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("php-cgi exit status = %d; want 0", code)
	}
	if _, err := c.Do(testContext(t, 10*time.Second), &Request{Params: cgiParams(script(t, "pid.php"), "GET", "", 0), KeepConn: true}); err == nil {
		t.Errorf("Do() after php-cgi exited error = nil")
	}
}

// SIGTERM while a request runs: php-cgi finishes it, then exits with status 0. (Idle, it dies of
// the signal.)
func TestLiveSIGTERMFinishesTheRequest(t *testing.T) {
	p := startPHPCGI(t)
	dir := t.TempDir()
	started, goFile := filepath.Join(dir, "started"), filepath.Join(dir, "go")
	var body bytes.Buffer
	res := make(chan error, 1)
	c := NewConn(p.dial(t))
	go func() {
		_, err := c.Do(testContext(t, 20*time.Second), &Request{
			Params: cgiParams(script(t, "wait.php"), "GET", "started="+started+"&go="+goFile, 0),
			Stdout: &body,
		})
		res <- err
	}()
	waitFor(t, func() bool { _, err := os.Stat(started); return err == nil })
	p.cmd.Process.Signal(syscall.SIGTERM)
	if p.waitExit(200 * time.Millisecond) {
		t.Fatalf("php-cgi exited at SIGTERM during a request: %v", p.cmd.ProcessState)
	}
	os.WriteFile(goFile, nil, 0o644)
	if err := <-res; err != nil || !strings.HasSuffix(body.String(), "\r\n\r\ndone\n") {
		t.Errorf("Do(wait.php) = %q, %v; want the whole response", body.String(), err)
	}
	if !p.waitExit(10 * time.Second) {
		t.Fatalf("php-cgi still runs after SIGTERM and its request")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("php-cgi exit status = %d; want 0", code)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within 10 s")
		}
	}
}

// The process environment reaches $_SERVER and getenv() next to the request's params; the
// php://stdout and php://stderr streams are the process's own fds 1 and 2, not the FastCGI
// streams, and error_log() goes to STDERR records.
func TestLiveEnvironmentAndStdio(t *testing.T) {
	p := startPHPCGI(t, "ASKR_PROBE=from-env")
	got, stderr := bodyOf(t, NewConn(p.dial(t)), &Request{Params: cgiParams(script(t, "env.php"), "GET", "", 0, "X_PARAM", "p")})
	want := `{"getenv":"from-env","server":"from-env","env":null,"param":"p","getenv_param":"p"}` + "\n"
	if got != want || stderr != "" {
		t.Errorf("env.php answered %q, STDERR %q; want %q, nothing", got, stderr, want)
	}
	waitFor(t, func() bool { return strings.Contains(p.out.String(), "to php://stdout") })
	if out := p.out.String(); !strings.Contains(out, "to php://stderr\n") {
		t.Errorf("process output = %q; want both php:// writes", out)
	}
}

// GET_VALUES: php-cgi neither multiplexes nor takes more than one connection, and keeps the
// connection for a request afterwards.
func TestLiveGetValues(t *testing.T) {
	p := startPHPCGI(t)
	c := NewConn(p.dial(t))
	ps, err := c.GetValues(testContext(t, 10*time.Second), MaxConns, MaxReqs, MpxsConns)
	if want := []Param{{MpxsConns, "0"}, {MaxReqs, "1"}, {MaxConns, "1"}}; err != nil || fmt.Sprint(ps) != fmt.Sprint(want) {
		t.Errorf("GetValues() = %q, %v; want %q", ps, err, want)
	}
	bodyOf(t, c, &Request{Params: cgiParams(script(t, "pid.php"), "GET", "", 0)})
}

// flushBody is a HeadSplitter body that counts Flushes and runs onFlush at each.
type flushBody struct {
	bytes.Buffer
	onFlush func(body string) error
}

func (f *flushBody) Flush() error { return f.onFlush(f.String()) }

// php-cgi's flush() reaches Request.Stdout as a Flush after the head and the flushed output: the
// script waits for a file that the test creates only at that Flush.
func TestLiveFlushReachesStdout(t *testing.T) {
	p := startPHPCGI(t)
	goFile := filepath.Join(t.TempDir(), "go")
	var flushed []string
	body := &flushBody{onFlush: func(s string) error {
		flushed = append(flushed, s)
		return os.WriteFile(goFile, nil, 0o644)
	}}
	hs := NewHeadSplitter(DefaultMaxHead, func(*Head) error { return nil }, body)
	if _, err := NewConn(p.dial(t)).Do(testContext(t, 20*time.Second), &Request{
		Params: cgiParams(script(t, "flush.php"), "GET", "go="+goFile, 0),
		Stdout: hs,
	}); err != nil {
		t.Fatalf("Do(flush.php) error = %v", err)
	}
	if len(flushed) == 0 || flushed[0] != "first chunk\n" {
		t.Errorf("body at each Flush = %q; want the first at \"first chunk\\n\"", flushed)
	}
	if got := body.String(); got != "first chunk\nsecond chunk\n" {
		t.Errorf("body = %q; want both chunks", got)
	}
}
