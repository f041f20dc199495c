// Package accesslog owns askrd's access log ([server] access_log): one line per request, from the
// front's request record (httpfront.Record), in the combined log format followed by askr's fields,
// or as JSON lines; written to a file that is reopened on demand (SIGUSR1, logrotate's
// postrotate), or to standard output (under systemd, the journal). It formats and writes; it does
// not handle signals or decide what is logged.
//
// Writes are batched: a line is appended to a buffer under a mutex, and the buffer goes out in
// one write(2) of whole lines when it holds 64 KiB, at the latest flushEvery (100 ms) after its
// first line, and when the log is reopened or closed. A line is never split across two writes, so
// no other writer of the file (O_APPEND) or of the pipe (writes of at most PIPE_BUF bytes) can
// land inside it, and a crash of askrd loses at most the last 100 ms of lines. Batching costs a
// request a few hundred nanoseconds under the mutex instead of a system call of its own (see
// BenchmarkLog).
package accesslog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/askr-php/askr/internal/httpfront"
)

// The formats of [server] access_log_format.
const (
	Combined = "combined"
	JSON     = "json"
)

const (
	// flushEvery bounds how long a line waits in the buffer (what a crash can lose).
	flushEvery = 100 * time.Millisecond
	// bufferSize is what the buffer holds before it is written at once.
	bufferSize = 64 << 10
	// pipeBuf is the most written at once to what is not a regular file: a write to a pipe of at
	// most PIPE_BUF bytes is not interleaved with another's.
	pipeBuf = 4096
)

// Logger writes the access log. Its methods are safe for concurrent use.
type Logger struct {
	format string
	path   string // "" for a writer given to New
	log    *slog.Logger

	mu      sync.Mutex
	out     io.Writer
	file    *os.File // out, if it is a file this Logger opened (closed by Reopen and Close)
	chunk   int      // the most written at once
	buf     []byte   // whole lines not written yet
	timer   *time.Timer
	closed  bool
	lastErr time.Time // when a write error was last logged
	dropped int       // lines lost to write errors since
}

// Open opens the access log at path ("-": standard output) in format (Combined or JSON). Errors
// writing it later are logged to log, at most once a minute.
func Open(path, format string, log *slog.Logger) (*Logger, error) {
	if format != Combined && format != JSON {
		return nil, fmt.Errorf("access log format %q: want %q or %q", format, Combined, JSON)
	}
	if path == "-" {
		return New(os.Stdout, format, log), nil
	}
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	l := New(f, format, log)
	l.path, l.file = path, f
	return l, nil
}

// New returns a Logger writing to w in format.
func New(w io.Writer, format string, log *slog.Logger) *Logger {
	l := &Logger{format: format, log: log, out: w, buf: make([]byte, 0, bufferSize)}
	l.chunk = chunkFor(w)
	l.timer = time.AfterFunc(time.Hour, l.flushTimer)
	l.timer.Stop()
	return l
}

func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open access log: %w", err)
	}
	return f, nil
}

// chunkFor is the most written to w at once: the whole buffer for a regular file, PIPE_BUF for
// anything else (a pipe, a socket such as journald's stream).
func chunkFor(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			return bufferSize
		}
	}
	return pipeBuf
}

// linePool holds the buffers lines are formatted in, outside the mutex.
var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Log writes the line of r (httpfront.Options.Observe).
func (l *Logger) Log(r *httpfront.Record) {
	bp := linePool.Get().(*[]byte)
	line := (*bp)[:0]
	if l.format == JSON {
		line = appendJSON(line, r)
	} else {
		line = appendCombined(line, r)
	}
	l.mu.Lock()
	if !l.closed {
		if len(l.buf)+len(line) > bufferSize {
			l.flush()
		}
		if len(l.buf) == 0 {
			l.timer.Reset(flushEvery)
		}
		l.buf = append(l.buf, line...)
	}
	l.mu.Unlock()
	*bp = line
	linePool.Put(bp)
}

func (l *Logger) flushTimer() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flush()
}

// flush writes the buffer, in writes of whole lines of at most l.chunk bytes (a longer line alone).
// Call with mu held.
func (l *Logger) flush() {
	b := l.buf
	for len(b) > 0 {
		n := len(b)
		if n > l.chunk {
			n = lastLineEnd(b, l.chunk)
		}
		if _, err := l.out.Write(b[:n]); err != nil {
			l.writeFailed(b[:n], err)
		}
		b = b[n:]
	}
	l.buf = l.buf[:0]
}

// lastLineEnd is the length of the whole lines of b that fit in limit (of its first line if none
// does).
func lastLineEnd(b []byte, limit int) int {
	for i := limit - 1; i >= 0; i-- {
		if b[i] == '\n' {
			return i + 1
		}
	}
	for i := limit; i < len(b); i++ {
		if b[i] == '\n' {
			return i + 1
		}
	}
	return len(b)
}

// writeFailed counts the lines lost and logs the error, at most once a minute. Call with mu held.
func (l *Logger) writeFailed(lost []byte, err error) {
	for _, c := range lost {
		if c == '\n' {
			l.dropped++
		}
	}
	if time.Since(l.lastErr) < time.Minute || l.log == nil {
		return
	}
	l.lastErr = time.Now()
	l.log.Error("writing the access log failed; its lines are lost", "path", l.path, "lines", l.dropped, "err", err)
	l.dropped = 0
}

// Path is the file's path ("-" for standard output or another writer).
func (l *Logger) Path() string {
	if l.path == "" {
		return "-"
	}
	return l.path
}

// Reopen writes what is buffered to the file, then opens its path anew (logrotate has renamed the
// file: a new one is created) and writes on there; no line is lost or written twice. If the path
// cannot be opened, the log stays on the old file and the error is returned. Standard output is not
// reopened.
func (l *Logger) Reopen() error {
	if l.path == "" {
		return nil
	}
	f, err := openFile(l.path)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		if f != nil {
			f.Close()
		}
		return errors.New("access log closed")
	}
	if err != nil {
		return err
	}
	l.flush()
	old := l.file
	l.file, l.out = f, f
	l.chunk = chunkFor(f)
	return old.Close()
}

// Close writes what is buffered and closes the file. Lines logged afterwards are dropped.
func (l *Logger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.timer.Stop()
	l.flush()
	if l.file != nil {
		return l.file.Close()
	}
	return nil
}
