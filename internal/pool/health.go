package pool

import (
	"errors"
	"time"

	"github.com/askr-php/askr/internal/channel"
)

// Ping sends a health check to an idle worker, if one is idle; its answer counts as progress. A
// worker that does not answer is killed and replaced.
func (p *Pool) Ping() {
	var w *worker
	select {
	case w = <-p.idle:
	default:
		return
	}
	if !p.takeIdle(w) {
		return // exited or ending: run replaces it
	}
	defer w.hold(false) // after release: run's exit() must not close the process under the ping
	err := p.ping(w, 2*time.Second)
	switch {
	case errors.Is(err, channel.ErrBye):
		p.leaving(w) // logged when it has exited
		p.release(w, false)
	case err != nil:
		p.log.Warn("worker failed its health check; killed", "pid", w.pid, "err", err)
		w.setReason(ExitCrash)
		w.ending.Store(true)
		w.proc.Kill()
		p.release(w, false)
	default:
		p.release(w, true)
	}
}

// ping checks that a worker answers; its answer counts as progress.
func (p *Pool) ping(w *worker, timeout time.Duration) error {
	if err := w.proc.Ping(timeout); err != nil {
		return err
	}
	p.progress.Store(time.Now().UnixNano())
	return nil
}

// leaving notes a worker that answered a request or a ping with Bye: it ends by itself (it is
// neither stopped nor killed: its shutdown runs to the end). Its exit is logged once it has
// exited: by run, or here if run saw the exit first.
func (p *Pool) leaving(w *worker) {
	w.left.Store(true)
	w.ending.Store(true)
	if w.byeAndExit.Add(1) == 2 {
		p.logLeft(w)
	}
}

// Healthy reports whether the pool's owner answers and a worker answered a request, a ping or
// booted within the last interval: what the systemd watchdog is pinged for.
func (p *Pool) Healthy(within time.Duration) bool {
	reply := make(chan []WorkerInfo, 1)
	select {
	case p.snaps <- reply:
		<-reply
	case <-time.After(time.Second):
		return false
	case <-p.done:
		return false
	}
	return time.Since(time.Unix(0, p.progress.Load())) < within
}
