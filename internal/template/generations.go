package template

import (
	"time"

	"github.com/askr-php/askr/internal/channel"
)

// tmpl is one template process askrd holds: the current one, the staged one, or an old one (retired
// by a Commit, abandoned, or booted when no longer needed) that has not exited yet. run owns it.
type tmpl struct {
	p        templateProcess
	gen      int64
	workers  map[int]bool // the workers forked from it that were admitted and have not exited (pids)
	retired  bool         // replaced by a newer template: stopped once its last worker has exited
	stopping bool         // asked to stop (Stop frame) or killed
	exited   bool         // its exit has been dealt with (onExited): released
}

func newTmpl(p templateProcess, gen int64) *tmpl {
	return &tmpl{p: p, gen: gen, workers: map[int]bool{}}
}

// stop asks the template to exit (a Stop frame: it exits without killing its workers), or kills
// it if the frame cannot be written.
func (m *tmpl) stop() {
	m.stopping = true
	c := m.p.Conn()
	c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(channel.AppendHeader(nil, channel.TypeStop, 0, 0)); err != nil {
		m.p.Kill()
	}
	c.SetWriteDeadline(time.Time{})
}

// workerExit reports that a worker forked from a template has exited.
type workerExit struct {
	m   *tmpl
	pid int
}

// watchWorker has run told when the worker pid, forked from m and admitted with the handle h, exits.
func (t *Template) watchWorker(m *tmpl, pid int, h pidHandle) {
	m.workers[pid] = true
	go func() {
		<-h.Done()
		report(t, t.workerExits, workerExit{m, pid}, nil)
	}()
}

// watchTemplate has run told when the template m exits.
func (t *Template) watchTemplate(m *tmpl) {
	t.known[m.p.PID()] = true
	go func() {
		<-m.p.Done()
		report(t, t.exited, m.p, nil)
	}()
}

func (t *Template) onWorkerExit(e workerExit) {
	delete(e.m.workers, e.pid)
	t.stopIfDone(e.m)
}

// retire puts m among the old templates: stopped once its last worker has exited (at once if it
// has none).
func (t *Template) retire(m *tmpl) {
	m.retired = true
	t.old = append(t.old, m)
	t.stopIfDone(m)
}

// stopIfDone stops a retired template that has no worker left and no fork under way.
func (t *Template) stopIfDone(m *tmpl) {
	if !m.retired || m.stopping || m.exited || len(m.workers) > 0 || t.closed {
		return
	}
	for _, f := range t.pending {
		if f.tmpl == m {
			return
		}
	}
	t.log.Info("retired template has no worker left; stopping it", "pid", m.p.PID(), "generation", m.gen)
	m.stop()
	time.AfterFunc(10*time.Second, func() { report(t, t.stopTimeouts, m, nil) })
}

// onStopTimeout kills a template that was asked to stop 10 s ago and has not exited.
func (t *Template) onStopTimeout(m *tmpl) {
	if !m.exited {
		t.log.Warn("template did not exit within 10 s of its Stop; killing it", "pid", m.p.PID())
		m.p.Kill()
	}
}

// held lists the templates askrd holds whose exit has not been dealt with: the current one, the
// staged one and the old ones.
func (t *Template) held() []*tmpl {
	var all []*tmpl
	for _, m := range append([]*tmpl{t.cur, t.staged}, t.old...) {
		if m != nil && !m.exited {
			all = append(all, m)
		}
	}
	return all
}

// lookup returns the template whose process is p, or nil if it has exited and been dealt with.
func (t *Template) lookup(p templateProcess) *tmpl {
	for _, m := range t.held() {
		if m.p == p {
			return m
		}
	}
	return nil
}

// dropOld forgets an old template that has exited.
func (t *Template) dropOld(m *tmpl) {
	for i, o := range t.old {
		if o == m {
			t.old = append(t.old[:i], t.old[i+1:]...)
			return
		}
	}
}
