package sidecar

import (
	"fmt"
	"log/slog"
	"time"
)

// schedule starts sl's Program at every boundary (a multiple of its Interval since the Unix
// epoch) until Stop. A boundary that finds the previous run still going is owed a run: it starts
// as the previous run ends if that is within a tenth of the interval (Laravel's schedule:run with
// sub-minute tasks runs to the end of its minute and a little past it), else it is skipped and
// logged; so is an owed boundary the next one finds still waiting. Runs never overlap. A boundary
// the timer missed (askrd stopped, the machine suspended) is logged and never run late.
func (s *Supervisor) schedule(sl *slot) {
	defer s.wg.Done()
	iv := sl.prog.Interval
	s.set(sl, func(st *Status) { st.State = StateWaiting })
	next := time.Now().Truncate(iv).Add(iv)
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	var run Proc
	var runLog *slog.Logger
	var runStart, owed time.Time
	skip := func(due time.Time, why string) {
		sl.log.Warn(fmt.Sprintf("scheduler: the run due at %s is skipped: the run started at %s (pid %d) %s",
			clock(due, iv), clock(runStart, iv), run.PID(), why))
		s.set(sl, func(st *Status) { st.Skipped++ })
	}
	for {
		var done <-chan struct{}
		if run != nil {
			done = run.Done()
		}
		select {
		case <-s.stop:
			if run != nil {
				s.terminate(sl, runLog, run)
			}
			s.set(sl, func(st *Status) { st.State = StateStopped })
			return
		case <-done:
			failed, text := exitOf(run)
			ran := time.Since(runStart).Round(time.Millisecond)
			if failed {
				runLog.Warn("scheduler: the run failed", "exit", text, "ran", ran)
			} else {
				runLog.Debug("scheduler: the run finished", "exit", text, "ran", ran)
			}
			s.set(sl, func(st *Status) { st.State, st.PID, st.LastExit, st.ExitedAt = StateWaiting, 0, text, time.Now() })
			if !owed.IsZero() {
				late := time.Since(owed)
				if late > iv/10 || s.stopping() {
					skip(owed, fmt.Sprintf("ran until %s; a late start is allowed for %s", clock(time.Now(), iv), iv/10))
					owed, run = time.Time{}, nil
					continue
				}
				sl.log.Info(fmt.Sprintf("scheduler: the run due at %s starts %s late, as the previous run has ended",
					clock(owed, iv), late.Round(time.Millisecond)))
				owed = time.Time{}
				if run, runStart = s.startRun(sl); run != nil {
					runLog = sl.log.With("pid", run.PID())
				}
				continue
			}
			run = nil
		case now := <-t.C:
			due, missed := boundary(next, now, iv)
			if due.IsZero() { // early by the wall clock (it was set back): wait for next
				t.Reset(time.Until(next))
				continue
			}
			if missed > 0 {
				sl.log.Warn(fmt.Sprintf("scheduler: %d run(s) due from %s to %s missed (askrd was late): not run",
					missed, clock(next, iv), clock(due.Add(-iv), iv)))
			}
			next = due.Add(iv)
			t.Reset(time.Until(next))
			if s.stopping() {
				continue // the next turn ends the loop
			}
			if run != nil {
				if !owed.IsZero() {
					skip(owed, "is still running")
				}
				owed = due
				continue
			}
			run, runStart = s.startRun(sl)
			if run != nil {
				runLog = sl.log.With("pid", run.PID())
			}
		}
	}
}

// startRun starts one run of a scheduler; nil when it cannot be started (logged).
func (s *Supervisor) startRun(sl *slot) (Proc, time.Time) {
	s.set(sl, func(st *Status) { st.State = StateStarting })
	p, err := sl.prog.Launch(sl.index)
	now := time.Now()
	if err != nil {
		sl.log.Warn("scheduler: cannot start the run", "err", err)
		s.set(sl, func(st *Status) {
			st.State, st.LastExit, st.ExitedAt = StateWaiting, "start failed: "+err.Error(), now
		})
		return nil, now
	}
	s.set(sl, func(st *Status) {
		st.State, st.PID, st.Started, st.Restarts = StateRunning, p.PID(), now, st.Restarts+1
	})
	return p, now
}

// boundary decides what the timer set for the boundary next, firing at now, runs: the last
// boundary at or before now (due), after missed earlier ones since next that are not run. due is
// zero when now is still before next (the wall clock was set back).
func boundary(next, now time.Time, iv time.Duration) (due time.Time, missed int) {
	last := now.Truncate(iv)
	if last.Before(next) {
		return time.Time{}, 0
	}
	return last, int(last.Sub(next) / iv)
}

// clock writes a boundary or a start time as the log shows it: 12:01:00 (with milliseconds when
// the interval is not whole seconds).
func clock(t time.Time, iv time.Duration) string {
	if iv%time.Second != 0 {
		return t.Format("15:04:05.000")
	}
	return t.Format("15:04:05")
}
