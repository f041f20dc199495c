package template

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/askr-php/askr/internal/channel"
)

// forkRequest is one fork asked for: by a Start or StartStaged (reply) or for the spare (reply nil).
type forkRequest struct {
	reply chan forkResult
	token string
	tmpl  *tmpl       // the template asked
	gen   int64       // its generation
	logs  *os.File    // the FIFO the worker will write its log lines to
	timer *time.Timer // ForkTimeout
	asked time.Time   // when the template was asked
}

type forkResult struct {
	w   *worker
	err error
}

// onStart hands out the spare if it is alive and of the current generation, or asks the current
// template for a fork.
func (t *Template) onStart(reply chan forkResult) {
	if t.closed {
		reply <- forkResult{err: errClosed}
		return
	}
	if w := t.spare; w != nil {
		t.spare = nil
		if w.alive() && w.gen == t.gen.Load() {
			reply <- forkResult{w: w}
			t.fillSpare()
			return
		}
		w.discard()
	}
	t.askFork(&forkRequest{reply: reply})
}

// fillSpare asks for the spare worker unless there is one, one is being forked, or none is wanted.
func (t *Template) fillSpare() {
	if !t.opt.Spare || t.spare != nil || t.filling || t.closed {
		return
	}
	t.filling = true
	t.askFork(&forkRequest{})
}

// askFork asks the current template for a fork, or has the request wait for a template to boot.
func (t *Template) askFork(f *forkRequest) {
	if !t.running() {
		t.forkWaiters = append(t.forkWaiters, f)
		t.ensureBoot()
		return
	}
	t.askForkOf(t.cur, f)
}

// askForkOf sends template m a Fork frame for f.
func (t *Template) askForkOf(m *tmpl, f *forkRequest) {
	f.tmpl, f.gen, f.token, f.asked = m, m.gen, newToken(), time.Now()
	logs, err := openLog(filepath.Join(t.opt.Dir, "log-"+f.token))
	if err != nil {
		t.finish(f, nil, err)
		return
	}
	f.logs = logs
	payload := f.token + "\n" + logs.Name()
	frame := append(channel.AppendHeader(nil, channel.TypeFork, 0, len(payload)), payload...)
	c := m.p.Conn()
	c.SetWriteDeadline(time.Now().Add(t.opt.ForkTimeout)) // a few bytes: the template takes them at once
	_, err = c.Write(frame)
	c.SetWriteDeadline(time.Time{})
	if err != nil {
		t.finish(f, nil, fmt.Errorf("ask template pid %d to fork: %w", m.p.PID(), err))
		return
	}
	t.pending[f.token] = f
	token := f.token
	f.timer = time.AfterFunc(t.opt.ForkTimeout, func() { report(t, t.timeouts, token, nil) })
}

// onForkTimeout fails a fork whose worker has not connected within ForkTimeout.
func (t *Template) onForkTimeout(token string) {
	if f := t.pending[token]; f != nil {
		t.finish(f, nil, fmt.Errorf("template pid %d: no forked worker connected within %v", f.tmpl.p.PID(), t.opt.ForkTimeout))
	}
}

// finish ends a fork request with its worker or its error: a Start gets the answer (and the spare
// is forked ahead), the spare is kept (or, not wanted or of an older generation, discarded).
func (t *Template) finish(f *forkRequest, w *worker, err error) {
	if f.token != "" {
		delete(t.pending, f.token)
	}
	if f.tmpl != nil {
		defer t.stopIfDone(f.tmpl) // a retired template may have waited for this fork
	}
	if f.timer != nil {
		f.timer.Stop()
	}
	if err != nil && f.logs != nil {
		f.logs.Close()
		os.Remove(f.logs.Name())
	}
	if f.reply != nil {
		f.reply <- forkResult{w: w, err: err}
		if err == nil && f.tmpl == t.cur {
			t.fillSpare()
		}
		return
	}
	t.filling = false
	switch {
	case err != nil:
		t.log.Debug("no spare worker", "err", err)
	case t.spare == nil && !t.closed && t.opt.Spare && w.gen == t.gen.Load():
		t.spare = w
	default:
		w.discard()
		if w.gen != t.gen.Load() {
			t.fillSpare() // forked by a template replaced meanwhile: the current one forks the spare
		}
	}
}

func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// openLog makes the FIFO a forked worker writes its log lines to, and opens it for reading. It is
// opened read-write so that it never reports end-of-file while the worker has it closed.
func openLog(path string) (*os.File, error) {
	os.Remove(path)
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("worker log FIFO: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("worker log FIFO: %w", err)
	}
	return f, nil
}
