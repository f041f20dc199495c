package httpfront

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/askr-php/askr/internal/channel"
)

// A PHP answer reaches the client through a responder. Up to bufferSize of it is held before
// anything is written, so that a response that fits frees its worker at once and a failure can
// still become a 5xx. Past that, or at PHP's first flush, the head goes out and a writer goroutine
// passes the answer on at the client's pace, while PHP keeps writing into the responder's spool:
// memory up to bufferSize, then a temporary file (unlinked as soon as it is created, so nothing is
// left behind whatever happens to askrd) up to Options.ResponseSpoolSize. PHP waits for the client
// only past both, so a slow reader holds a connection and some disk, not a worker (nginx's
// fastcgi_temp). What PHP flushed is written and flushed to the client as soon as the writer
// reaches it: the spool only holds what the client has not taken yet.

// bufferSize is how much of a response askrd holds in memory: before it writes to the client
// (a response that fits frees its worker at once, however slowly the client reads), and then of
// what the client has not taken yet, before the spool file.
const bufferSize = 1 << 20

// pieceSize is the most written to the client at once: client_timeout bounds each write.
const pieceSize = 32 << 10

// errStopped ends the writer of a response that cannot be completed (PHP failed mid-response).
var errStopped = errors.New("response stopped")

// responder takes a worker's answer (channel.Response) and passes it to the client.
type responder struct {
	ctx       context.Context // the client's request: done when it has gone
	w         http.ResponseWriter
	rc        *http.ResponseController
	timeout   time.Duration // bound on each write to the client (0: none)
	dir       string        // where the spool file is created
	memLimit  int           // bufferSize
	fileLimit int64         // bound on what waits in the spool file (0: no file)
	log       *slog.Logger
	openSpool func(dir string) (spoolFile, error) // createSpool, or a test's

	status  int
	headers []channel.Header
	isHead  bool          // a HEAD request: its head is sent as PHP made it
	spilled bool          // the head is the client's: the writer runs (the status can no longer change)
	done    chan struct{} // closed when the writer has returned
	stopCtx func() bool   // stops the context.AfterFunc that wakes waiters when the client leaves

	// Before the spill only the producer (the goroutine calling Head, Body, Flush and end) uses
	// these; after it, mu guards them, shared with the writer.
	mu        sync.Mutex
	cond      sync.Cond
	mem       []byte    // mem[memOff:] waits to be written
	memBuf    *[]byte   // from memPool, where mem came from
	memOff    int       //
	file      spoolFile // the spool: [fr, fw) waits to be written, after what is in mem
	fr, fw    int64     //
	noFile    bool      // the spool file could not be created or written: PHP waits for the client past mem
	in, out   int64     // bytes taken from PHP, bytes written to the client
	flushAt   int64     // PHP flushed when it had sent this much (-1: never)
	lastFlush int64     // the connection was flushed after this much (-1: never)
	closed    bool      // PHP's answer is complete
	err       error     // the writer's error (sticky), or errStopped
}

func (h *Handler) newResponder(w http.ResponseWriter, r *http.Request, rc *http.ResponseController) *responder {
	return &responder{ctx: r.Context(), w: w, rc: rc, timeout: h.opt.ClientTimeout, dir: h.opt.SpoolDir,
		memLimit: bufferSize, fileLimit: h.opt.ResponseSpoolSize, log: h.log, openSpool: createSpool, flushAt: -1, lastFlush: -1,
		isHead: r.Method == http.MethodHead}
}

// spoolFile is where a response waits for its client beyond memory.
type spoolFile interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
}

// createSpool creates a temporary file in dir and unlinks it at once: its space is freed when it
// is closed, or when askrd exits however it exits.
func createSpool(dir string) (spoolFile, error) {
	f, err := os.CreateTemp(dir, "askr-response-*")
	if err != nil {
		return nil, fmt.Errorf("response spool: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("response spool: %w", err)
	}
	return f, nil
}

func (rs *responder) Head(status int, headers []channel.Header) error {
	rs.status, rs.headers = status, headers
	return nil
}

func (rs *responder) Body(b []byte) error {
	if !rs.spilled {
		if rs.mem == nil {
			rs.memBuf = takeMem()
			rs.mem = (*rs.memBuf)[:0]
		}
		if len(rs.mem)+len(b) <= rs.memLimit {
			rs.mem = append(rs.mem, b...)
			rs.in += int64(len(b))
			return nil
		}
		rs.spill()
	}
	return rs.enqueue(b)
}

// Flush passes on PHP's flush(): the head and everything so far go to the client as soon as it
// takes them.
func (rs *responder) Flush() error {
	if !rs.spilled {
		rs.spill()
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if err := rs.failed(); err != nil {
		return err
	}
	rs.flushAt = rs.in
	rs.cond.Broadcast()
	return nil
}

// spill starts the writer: from now on the client gets the head and the body as it reads.
func (rs *responder) spill() {
	rs.spilled = true
	rs.cond.L = &rs.mu
	rs.done = make(chan struct{})
	rs.stopCtx = context.AfterFunc(rs.ctx, func() {
		rs.mu.Lock()
		rs.cond.Broadcast()
		rs.mu.Unlock()
	})
	go rs.run()
}

// failed is the error that ends the response on the producer's side: the writer's, or the
// client's departure. Call with mu held.
func (rs *responder) failed() error {
	if rs.err != nil {
		return rs.err
	}
	if err := rs.ctx.Err(); err != nil {
		return err // the client has gone: the worker is told (connection_aborted())
	}
	return nil
}

// enqueue puts b behind what the client has not taken yet: into memory while there is room and
// nothing waits in the file, else into the file while it is under its bound, else it waits.
func (rs *responder) enqueue(b []byte) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for len(b) > 0 {
		if err := rs.failed(); err != nil {
			if rs.err != nil {
				rs.closeFile() // the writer has stopped (holding none of it): the spool is of no more use
			}
			return err
		}
		if rs.fw == rs.fr {
			rs.fr, rs.fw = 0, 0 // nothing waits in the file (and the writer holds none of it): reuse it
			if room := rs.memLimit - (len(rs.mem) - rs.memOff); room > 0 {
				n := min(room, len(b))
				rs.mem = append(rs.mem, b[:n]...)
				rs.in += int64(n)
				b = b[n:]
				rs.cond.Broadcast()
				continue
			}
		}
		// fileLimit bounds the file's size, not only what waits in it: the file is rewound only
		// once the client has taken all of it, so a client that reads steadily but slower than PHP
		// writes would otherwise make it grow with the response (nginx's fastcgi_max_temp_file_size
		// bounds the file too).
		if room := rs.fileLimit - rs.fw; room > 0 && !rs.noFile {
			if rs.file == nil && !rs.openFile() {
				continue
			}
			n := int(min(room, int64(len(b))))
			f, off := rs.file, rs.fw
			rs.mu.Unlock() // the writer reads only below fw meanwhile
			m, err := f.WriteAt(b[:n], off)
			rs.mu.Lock()
			rs.fw += int64(m)
			rs.in += int64(m)
			b = b[m:]
			rs.cond.Broadcast()
			if err != nil {
				rs.log.Warn("spooling a response to a temporary file failed; the worker waits for the client", "err", err)
				rs.noFile = true
			}
			continue
		}
		rs.cond.Wait() // for the client
	}
	return nil
}

// openFile creates the spool file. Call with mu held.
func (rs *responder) openFile() bool {
	f, err := rs.openSpool(rs.dir)
	if err != nil {
		rs.log.Warn("spooling a response to a temporary file failed; the worker waits for the client", "err", err)
		rs.noFile = true
		return false
	}
	rs.file = f
	return true
}

// closeFile releases the spool file (its disk space with it). Call with mu held, and only where
// the producer does not write to it.
func (rs *responder) closeFile() {
	if rs.file != nil {
		rs.file.Close()
		rs.file = nil
		rs.fr, rs.fw = 0, 0
	}
}

// run is the writer: it sends the head, then what PHP sent, in order, flushing where PHP flushed.
// It is one function (~80 lines) because it holds mu across its loop and lets go of it only around
// each write and flush: split, that discipline would be spread over several functions.
func (rs *responder) run() {
	defer close(rs.done)
	rs.writeHead(false)
	var buf []byte // for reading the file
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for {
		for rs.err == nil {
			if rs.ctx.Err() != nil {
				rs.err = rs.ctx.Err()
				break
			}
			if len(rs.mem) > rs.memOff || rs.fw > rs.fr || rs.flushAt > rs.lastFlush {
				break
			}
			if rs.closed {
				return
			}
			rs.cond.Wait()
		}
		if rs.err != nil {
			rs.cond.Broadcast()
			return
		}
		var piece []byte
		fromMem := len(rs.mem) > rs.memOff
		var off int64
		switch {
		case fromMem:
			piece = rs.mem[rs.memOff:min(len(rs.mem), rs.memOff+pieceSize)]
		case rs.fw > rs.fr:
			if buf == nil {
				buf = make([]byte, pieceSize)
			}
			piece, off = buf[:min(rs.fw-rs.fr, pieceSize)], rs.fr
		}
		if rs.timeout > 0 {
			rs.rc.SetWriteDeadline(time.Now().Add(rs.timeout))
		}
		f := rs.file
		rs.mu.Unlock()
		var err error
		if !fromMem && len(piece) > 0 {
			if _, err = f.ReadAt(piece, off); err != nil {
				err = fmt.Errorf("read the response spool: %w", err)
				rs.log.Warn("response cut short", "err", err)
			}
		}
		if err == nil {
			err = rs.write(piece, false) // the deadline is set above, where end can override it
		}
		rs.mu.Lock()
		if err != nil {
			if rs.err == nil {
				rs.err = err
			}
			continue
		}
		n := len(piece)
		rs.out += int64(n)
		if fromMem {
			rs.memOff += n
			if rs.memOff == len(rs.mem) {
				rs.mem, rs.memOff = rs.mem[:0], 0
			} else if rs.memOff >= rs.memLimit/2 {
				rs.mem = rs.mem[:copy(rs.mem, rs.mem[rs.memOff:])]
				rs.memOff = 0
			}
		} else {
			rs.fr += int64(n)
		}
		rs.cond.Broadcast()
		if rs.flushAt > rs.lastFlush && rs.out >= rs.flushAt {
			rs.lastFlush = rs.out
			rs.mu.Unlock()
			err := rs.rc.Flush()
			rs.mu.Lock()
			if err != nil && rs.err == nil {
				rs.err = err
			}
		}
	}
}

// end completes the response once PHP's answer is over; complete says whether it is whole.
// Unspilled, what is held is sent now if complete (else the caller answers with an error).
// Spilled, the writer passes the rest on if complete, or is stopped; end waits for it, releases
// the spool and returns the writer's error.
func (rs *responder) end(complete bool) error {
	if !rs.spilled {
		if !complete {
			return nil
		}
		if err := rs.ctx.Err(); err != nil {
			return err // the client left while PHP worked: nothing is sent (logged as 499)
		}
		rs.writeHead(true)
		// In pieces, each with a fresh deadline: client_timeout bounds each write, not the time a
		// slow client takes for the whole of up to bufferSize.
		var err error
		for b := rs.mem; len(b) > 0 && err == nil; {
			n := min(len(b), pieceSize)
			err = rs.write(b[:n], true)
			b = b[n:]
		}
		rs.dropMem()
		return err
	}
	rs.mu.Lock()
	rs.closed = true
	if !complete && rs.err == nil {
		rs.err = errStopped
		rs.rc.SetWriteDeadline(time.Now()) // a write to a stalled client ends now
	}
	rs.cond.Broadcast()
	rs.mu.Unlock()
	<-rs.done
	rs.stopCtx()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.closeFile()
	rs.dropMem()
	return rs.err
}

// memPool keeps the buffers answers are held in (responder.mem) for the next ones, those of up to
// pooledMem bytes: most answers are small, and a fresh buffer grown by append for each cost a
// few allocations per request.
var memPool sync.Pool

const pooledMem = 64 << 10

func takeMem() *[]byte {
	if p, ok := memPool.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, 4<<10)
	return &b
}

// dropMem gives mem back to memPool once nothing refers to it: the client has been written to
// (net/http copied it) and the writer goroutine, if any, has returned.
func (rs *responder) dropMem() {
	if p := rs.memBuf; p != nil && cap(rs.mem) <= pooledMem {
		*p = rs.mem[:0] // append may have grown it
		memPool.Put(p)
	}
	rs.mem, rs.memBuf = nil, nil
}

// writeHead sends the status and PHP's headers. whole says the body is all in mem: a response
// PHP gave no length gets a Content-Length then, as net/http gives one only to a body that fits
// its 2 KiB buffer; a larger one would go out chunked, in more writes.
func (rs *responder) writeHead(whole bool) {
	hdr := rs.w.Header()
	framed := false
	for _, kv := range rs.headers {
		switch {
		case strings.EqualFold(kv.Name, "Status"):
			continue
		case strings.EqualFold(kv.Name, "Content-Length"), strings.EqualFold(kv.Name, "Transfer-Encoding"):
			framed = true
		}
		hdr.Add(kv.Name, kv.Value)
	}
	status := rs.phpStatus()
	if whole && !framed && !rs.isHead && bodyAllowed(status) {
		hdr["Content-Length"] = []string{strconv.Itoa(len(rs.mem))}
	}
	rs.w.WriteHeader(status)
}

// bodyAllowed reports whether a response with status may have a body (RFC 9110: not 1xx, 204, 304).
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// phpStatus is the status of PHP's head (0 before it came): as under php-fpm + nginx,
// header('Status: 404 Not Found') sets it.
func (rs *responder) phpStatus() int {
	status := rs.status
	for _, kv := range rs.headers {
		if strings.EqualFold(kv.Name, "Status") {
			if code, err := strconv.Atoi(strings.SplitN(kv.Value, " ", 2)[0]); err == nil && code >= 200 && code <= 999 {
				status = code
			}
		}
	}
	return status
}

// write writes b to the client, with a fresh write deadline if deadline is set.
func (rs *responder) write(b []byte, deadline bool) error {
	if len(b) == 0 {
		return nil
	}
	if err := rs.ctx.Err(); err != nil {
		return err
	}
	if deadline && rs.timeout > 0 {
		rs.rc.SetWriteDeadline(time.Now().Add(rs.timeout))
	}
	_, err := rs.w.Write(b)
	// A body on a 204/304 or HEAD, or beyond PHP's own Content-Length, is dropped as nginx does.
	if errors.Is(err, http.ErrBodyNotAllowed) || errors.Is(err, http.ErrContentLength) {
		return nil
	}
	return err
}
