package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
)

type entry struct {
	msg    string
	prio   journal.Priority
	fields map[string]string
}

// fakeJournal records what a Handler sends, or fails with err.
type fakeJournal struct {
	mu      sync.Mutex
	entries []entry
	err     error
}

func (f *fakeJournal) send(msg string, prio journal.Priority, fields map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.entries = append(f.entries, entry{msg, prio, fields})
	return nil
}

func newTestLogger(level slog.Level) (*slog.Logger, *fakeJournal, *bytes.Buffer) {
	f := &fakeJournal{}
	var fallback bytes.Buffer
	h := NewHandler(Options{Level: level, Identifier: "askrd", Send: f.send, Fallback: &fallback})
	return slog.New(h), f, &fallback
}

func TestPriority(t *testing.T) {
	log, f, _ := newTestLogger(slog.LevelDebug)
	log.Error("PHP Fatal error:  Uncaught Error: boom")
	log.Warn("PHP Warning:  Undefined variable $x")
	log.Info("serving")
	log.Debug("php-cgi printed a CGI header")
	log.Log(context.Background(), slog.LevelError+4, "above error")
	log.Log(context.Background(), slog.LevelWarn+1, "between warn and error")
	log.Log(context.Background(), slog.LevelDebug+1, "between debug and info")
	want := []journal.Priority{journal.PriErr, journal.PriWarning, journal.PriInfo, journal.PriDebug,
		journal.PriErr, journal.PriWarning, journal.PriDebug}
	var got []journal.Priority
	for _, e := range f.entries {
		got = append(got, e.prio)
	}
	if !slices.Equal(got, want) {
		t.Errorf("priorities = %v; want %v", got, want)
	}
	// The values journalctl -p takes: err=3, warning=4, info=6, debug=7.
	for l, p := range map[slog.Level]journal.Priority{slog.LevelError: 3, slog.LevelWarn: 4, slog.LevelInfo: 6, slog.LevelDebug: 7} {
		if Priority(l) != p {
			t.Errorf("Priority(%v) = %d; want %d", l, Priority(l), p)
		}
	}
}

func TestLevelFilters(t *testing.T) {
	log, f, _ := newTestLogger(slog.LevelInfo)
	log.Debug("hidden")
	log.Info("shown")
	if len(f.entries) != 1 || f.entries[0].msg != `level=INFO msg=shown` {
		t.Errorf("entries = %+v; want only the INFO line", f.entries)
	}
}

func TestMessageAndFields(t *testing.T) {
	log, f, fallback := newTestLogger(slog.LevelInfo)
	w := log.With("component", "pool").With("worker", "worker.php", "pid", 4242)
	w.Error("PHP Fatal error:  Uncaught Error: Call to undefined function nope()", "uri", "/fatal?x=1",
		"err", errors.New("exit status 255"), "max-rss", 128, "Mixed.Case key", "v")
	if len(f.entries) != 1 {
		t.Fatalf("%d entries; want 1", len(f.entries))
	}
	e := f.entries[0]
	wantMsg := `level=ERROR msg="PHP Fatal error:  Uncaught Error: Call to undefined function nope()" component=pool worker=worker.php pid=4242 uri="/fatal?x=1" err="exit status 255" max-rss=128 "Mixed.Case key"=v`
	if e.msg != wantMsg {
		t.Errorf("MESSAGE = %s\nwant      %s", e.msg, wantMsg)
	}
	want := map[string]string{
		"SYSLOG_IDENTIFIER":   "askrd",
		"ASKR_COMPONENT":      "pool",
		"ASKR_WORKER":         "worker.php",
		"ASKR_PID":            "4242",
		"ASKR_URI":            "/fatal?x=1",
		"ASKR_ERR":            "exit status 255",
		"ASKR_MAX_RSS":        "128",
		"ASKR_MIXED_CASE_KEY": "v",
	}
	if !maps.Equal(e.fields, want) {
		t.Errorf("fields = %v\nwant     %v", e.fields, want)
	}
	for name := range e.fields {
		if !validName(name) {
			t.Errorf("field %q is not a valid journal field name", name)
		}
	}
	if fallback.Len() != 0 {
		t.Errorf("fallback got %q; want nothing while the journal takes the lines", fallback.String())
	}
}

// validName is journald's rule for a field a client may set.
func validName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '_' || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range s {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

func TestFieldName(t *testing.T) {
	for key, want := range map[string]string{
		"pid":                      "ASKR_PID",
		"uri":                      "ASKR_URI",
		"_leading":                 "ASKR__LEADING",
		"9lives":                   "ASKR_9LIVES",
		"größe":                    "ASKR_GR__E",
		strings.Repeat("k", 100):   "ASKR_" + strings.Repeat("K", 59),
		"a.b-c d/e":                "ASKR_A_B_C_D_E",
		"ALREADY_UPPER_and_lower1": "ASKR_ALREADY_UPPER_AND_LOWER1",
	} {
		got := FieldName(key)
		if got != want {
			t.Errorf("FieldName(%q) = %q; want %q", key, got, want)
		}
		if !validName(got) {
			t.Errorf("FieldName(%q) = %q is not a valid journal field name", key, got)
		}
	}
}

func TestGroups(t *testing.T) {
	log, f, _ := newTestLogger(slog.LevelInfo)
	log.WithGroup("req").With("uri", "/a").Info("done", slog.Group("time", "queue", "1ms"), "status", 200,
		slog.Group("", "inline", "yes"), slog.Group("empty"))
	e := f.entries[0]
	want := map[string]string{
		"SYSLOG_IDENTIFIER":   "askrd",
		"ASKR_REQ_URI":        "/a",
		"ASKR_REQ_TIME_QUEUE": "1ms",
		"ASKR_REQ_STATUS":     "200",
		"ASKR_REQ_INLINE":     "yes",
	}
	if !maps.Equal(e.fields, want) {
		t.Errorf("fields = %v\nwant     %v", e.fields, want)
	}
	if wantMsg := `level=INFO msg=done req.uri=/a req.time.queue=1ms req.status=200 req.inline=yes`; e.msg != wantMsg {
		t.Errorf("MESSAGE = %s\nwant      %s", e.msg, wantMsg)
	}
}

// Loggers made from one parent keep their own attributes.
func TestWithKeepsSiblingsApart(t *testing.T) {
	log, f, _ := newTestLogger(slog.LevelInfo)
	base := log.With("component", "pool")
	a := base.With("pid", 1)
	b := base.With("pid", 2)
	a.Info("a")
	b.Info("b")
	base.Info("base")
	for i, want := range []string{"1", "2", ""} {
		if got := f.entries[i].fields["ASKR_PID"]; got != want {
			t.Errorf("entry %d: ASKR_PID = %q; want %q", i, got, want)
		}
		if got := f.entries[i].fields["ASKR_COMPONENT"]; got != "pool" {
			t.Errorf("entry %d: ASKR_COMPONENT = %q; want pool", i, got)
		}
	}
}

// A line the journal refuses goes to the fallback (the journal's stream) with its priority as
// journald reads it there, the time and the journal's error.
func TestFallbackLosesNoLine(t *testing.T) {
	log, f, fallback := newTestLogger(slog.LevelInfo)
	f.err = errors.New("could not initialize socket to journald")
	log.With("pid", 7).Warn("PHP Warning:  something", "uri", "/w")
	got := fallback.String()
	if !strings.HasPrefix(got, "<4>time=") || !strings.HasSuffix(got, ` level=WARN msg="PHP Warning:  something" pid=7 uri=/w journal_error="could not initialize socket to journald"`+"\n") {
		t.Errorf("fallback = %q; want <4> (the priority journald reads on its stream), the time, the line, journal_error", got)
	}
	f.err = nil
	log.Info("again")
	if len(f.entries) != 1 || f.entries[0].msg != "level=INFO msg=again" {
		t.Errorf("after a failure, entries = %+v; want the next line in the journal", f.entries)
	}
}

// Lines logged at once from many goroutines each keep their own message and fields.
func TestConcurrentHandle(t *testing.T) {
	log, f, _ := newTestLogger(slog.LevelInfo)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			l := log.With("pid", i)
			for j := range 100 {
				l.Info(fmt.Sprintf("line %d of %d", j, i), "n", j)
			}
		})
	}
	wg.Wait()
	if len(f.entries) != 800 {
		t.Fatalf("%d entries; want 800", len(f.entries))
	}
	for _, e := range f.entries {
		want := fmt.Sprintf(`level=INFO msg="line %s of %s" pid=%s n=%s`, e.fields["ASKR_N"], e.fields["ASKR_PID"], e.fields["ASKR_PID"], e.fields["ASKR_N"])
		if e.msg != want {
			t.Errorf("MESSAGE %q does not match its fields %v", e.msg, e.fields)
		}
	}
}

func TestStderrIsSink(t *testing.T) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(os.Stderr.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	for env, want := range map[string]bool{
		"":                                     false,
		fmt.Sprintf("%d:%d", st.Dev, st.Ino):   true,
		fmt.Sprintf("%d:%d", st.Dev, st.Ino+1): false,
		"garbage":                              false,
	} {
		t.Setenv("JOURNAL_STREAM", env)
		if got := StderrIsSink(); got != want {
			t.Errorf("JOURNAL_STREAM=%q: StderrIsSink() = %v; want %v", env, got, want)
		}
	}
}
