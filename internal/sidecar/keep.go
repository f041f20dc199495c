package sidecar

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
	"time"
)

// The back-off of a process that keeps failing: a process that ran less than stableAfter, or
// could not be started, is started again after backoffMin, then twice as long each time, up to
// backoffMax; one that ran stableAfter or longer is started again at once.
const (
	backoffMin  = 100 * time.Millisecond
	backoffMax  = 30 * time.Second
	stableAfter = 10 * time.Second
)

// backoff is the wait before the next start after fails short runs or failed starts in a row.
func backoff(fails int) time.Duration {
	if fails <= 0 {
		return 0
	}
	d := backoffMin
	for i := 1; i < fails && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

// keep keeps sl's process running until Stop: it starts it, waits for its exit, logs it and
// starts it again (after a back-off while it keeps failing), and answers Restart's requests.
func (s *Supervisor) keep(sl *slot) {
	defer s.wg.Done()
	var restarts []chan struct{} // Restart calls waiting for the next start
	defer func() { release(restarts) }()
	fails, starts := 0, 0
	for {
		if s.stopping() { // Stop came during a Restart's terminate, or with the back-off's end
			s.set(sl, func(st *Status) { st.State = StateStopped })
			return
		}
		s.set(sl, func(st *Status) { st.State = StateStarting })
		p, err := sl.prog.Launch(sl.index)
		var delay time.Duration
		if err != nil {
			fails++
			delay = backoff(fails)
			sl.log.Warn("cannot start", "err", err, "retry_in", delay)
			s.set(sl, func(st *Status) {
				st.State, st.PID, st.LastExit, st.ExitedAt = StateBackoff, 0, "start failed: "+err.Error(), time.Now()
			})
			release(restarts) // once the status shows the start
			restarts = nil
		} else {
			starts++
			started := time.Now()
			log := sl.log.With("pid", p.PID())
			s.set(sl, func(st *Status) {
				st.State, st.PID, st.Started, st.Restarts = StateRunning, p.PID(), started, starts-1
			})
			release(restarts)
			restarts = nil
			select {
			case <-s.stop:
				s.terminate(sl, log, p)
				return
			case r := <-sl.restart:
				restarts = append(restarts, r)
				s.terminate(sl, log, p)
				fails = 0
				continue
			case <-p.Done():
			}
			var again bool
			if delay, again = s.exited(sl, log, p, time.Since(started), &fails); !again {
				s.idle(sl)
				return
			}
		}
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-s.stop:
				t.Stop()
				s.set(sl, func(st *Status) { st.State = StateStopped })
				return
			case r := <-sl.restart:
				t.Stop()
				restarts = append(restarts, r)
				fails = 0
			case <-t.C:
			}
		}
	}
}

// exited logs how p, which ran for ran, ended, counts a short run in fails (resets it after a
// long one) and returns the back-off before the next start; again is false when p is not to be
// restarted (restart = "on-failure" after a success).
func (s *Supervisor) exited(sl *slot, log *slog.Logger, p Proc, ran time.Duration, fails *int) (delay time.Duration, again bool) {
	failed, text := exitOf(p)
	if ran >= s.stableAfter {
		*fails = 0
	} else {
		*fails++
	}
	ran = ran.Round(time.Millisecond)
	if sl.prog.OnFailure && !failed {
		log.Info("exited; not restarted (restart = on-failure)", "exit", text, "ran", ran)
		s.set(sl, func(st *Status) { st.State, st.PID, st.LastExit, st.ExitedAt = StateStopped, 0, text, time.Now() })
		return 0, false
	}
	delay = backoff(*fails)
	level := slog.LevelInfo
	if failed || *fails > 0 { // a failure, or a short run: a CoW fork's status is unknown, its crash loop is not
		level = slog.LevelWarn
	}
	log.Log(context.Background(), level, "exited", "exit", text, "ran", ran, "restart_in", delay)
	s.set(sl, func(st *Status) { st.State, st.PID, st.LastExit, st.ExitedAt = StateBackoff, 0, text, time.Now() })
	return delay, true
}

// stopping reports whether Stop has been called.
func (s *Supervisor) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// idle holds a slot whose process is not to be restarted until Stop, answering Restart at once.
func (s *Supervisor) idle(sl *slot) {
	for {
		select {
		case <-s.stop:
			return
		case r := <-sl.restart:
			close(r)
		}
	}
}

// terminate stops p: SIGTERM, SIGKILL after the Program's grace; it returns once p has exited.
func (s *Supervisor) terminate(sl *slot, log *slog.Logger, p Proc) {
	s.set(sl, func(st *Status) { st.State = StateStopping })
	grace := sl.prog.Grace
	if err := p.Signal(syscall.SIGTERM); err != nil {
		log.Debug("SIGTERM", "err", err)
	}
	t := time.NewTimer(grace)
	select {
	case <-p.Done():
		t.Stop()
	case <-t.C:
		log.Warn(fmt.Sprintf("did not exit within grace %s after SIGTERM: killed", grace))
		if err := p.Signal(syscall.SIGKILL); err != nil {
			log.Debug("SIGKILL", "err", err)
		}
		<-p.Done()
	}
	_, text := exitOf(p)
	log.Info("stopped", "exit", text)
	s.set(sl, func(st *Status) { st.State, st.PID, st.LastExit, st.ExitedAt = StateStopped, 0, text, time.Now() })
}

// exitOf says how p ended ("exited" when it cannot be known) and releases it.
func exitOf(p Proc) (failed bool, text string) {
	failed, text, known := p.Exit()
	if !known {
		text = "exited"
	}
	p.Close()
	return failed, text
}

// release tells the Restart calls waiting on rs that their slot has started again.
func release(rs []chan struct{}) {
	for _, r := range rs {
		close(r)
	}
}
