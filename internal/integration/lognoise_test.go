package integration

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// An exit() and an out-of-memory fatal error in a request are one event each, and each is one
// line in askrd's log, at its level, tagged with the pid of the worker it happened in: no
// "Content-type: …" from php-cgi, no second error from the runtime's header reset. Both modes
// (ASKR_TEST_COW=1: the workers are forked by the template, and their lines must not be the
// template's). In worker mode also with display_errors on, where PHP prints the fatal error to
// stdout after logging it.
func TestOneLogLinePerWorkerEvent(t *testing.T) {
	inis := []string{""}
	if !cowMode() {
		inis = append(inis, "display_errors = 1")
	}
	for _, ini := range inis {
		t.Run("ini="+ini, func(t *testing.T) {
			s := startAskrd(t, opts{args: []string{"--workers", "1", "--ini", ini}})
			// linesSince returns the lines logged after offset, and the new offset.
			linesSince := func(offset int) ([]string, int) {
				logs := s.logs.String()
				var out []string
				for _, l := range strings.Split(strings.TrimSpace(logs[offset:]), "\n") {
					if l != "" {
						out = append(out, l)
					}
				}
				return out, len(logs)
			}
			_, offset := linesSince(0)
			pid := pidOf(t, s)
			for _, ev := range []struct {
				path, level, msg string
				status           int
			}{
				{"/exit", "INFO", "askr: exit() during a request: this worker ends after its response and is replaced", 200},
				{"/fatal", "ERROR", "PHP Fatal error:  Allowed memory size of 16777216 bytes exhausted", 500},
				{"/exit", "INFO", "askr: exit() during a request", 200},
			} {
				if r := s.get(ev.path); r.status != ev.status {
					t.Fatalf("GET %s = %d; want %d", ev.path, r.status, ev.status)
				}
				next := 0
				if !poll(10*time.Second, func() bool { next = pidOf(t, s); return next != pid }) {
					t.Fatalf("worker %d not replaced after GET %s", pid, ev.path)
				}
				want := "level=" + ev.level + " msg=\"" + ev.msg
				if !poll(5*time.Second, func() bool { return strings.Contains(s.logs.String()[offset:], want) }) {
					t.Fatalf("no %q logged after GET %s:\n%s", want, ev.path, s.logs.String()[offset:])
				}
				var lines []string
				lines, offset = linesSince(offset)
				if len(lines) != 1 || !strings.Contains(lines[0], want) || !strings.HasSuffix(lines[0], " pid="+strconv.Itoa(pid)) || strings.Contains(lines[0], "template=") {
					t.Errorf("GET %s logged %d lines:\n%s\nwant one, %q…, tagged worker pid=%d", ev.path, len(lines), strings.Join(lines, "\n"), want, pid)
				}
				pid = next
			}
			// Nothing comes late (a line of the last event would be here).
			pidOf(t, s)
			if lines, _ := linesSince(offset); len(lines) != 0 {
				t.Errorf("logged after the events were over:\n%s", strings.Join(lines, "\n"))
			}
			if logs := s.logs.String(); strings.Contains(logs, "Content-type") || strings.Contains(logs, "Cannot modify header information") {
				t.Errorf("askrd's log has php-cgi's Content-type or the runtime's header warning:\n%s", logs)
			}
		})
	}
}
