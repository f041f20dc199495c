package cli

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"testing"

	"github.com/askr-php/askr/internal/journal"
)

// askrd logs to the journal natively only when stderr is the journal's stream ($JOURNAL_STREAM);
// otherwise as text, as always.
func TestNewLoggerJournal(t *testing.T) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(os.Stderr.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	if h := newLogger(os.Stderr).Handler(); !isJournal(h) {
		t.Errorf("newLogger(stderr) with stderr the journal stream: handler %T; want *journal.Handler", h)
	}
	var buf bytes.Buffer
	if h := newLogger(&buf).Handler(); isJournal(h) {
		t.Errorf("newLogger(buffer): handler %T; want the text handler", h)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1))
	if h := newLogger(os.Stderr).Handler(); isJournal(h) {
		t.Errorf("newLogger(stderr) with stderr not the journal stream: handler %T; want the text handler", h)
	}
	t.Setenv("JOURNAL_STREAM", "")
	if _, ok := newLogger(os.Stderr).Handler().(*slog.TextHandler); !ok {
		t.Errorf("newLogger(stderr) outside systemd is not the text handler")
	}
}

func isJournal(h slog.Handler) bool { _, ok := h.(*journal.Handler); return ok }
