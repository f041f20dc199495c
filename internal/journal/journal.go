// Package journal writes askrd's log to systemd's journal with its native protocol when the
// journal is what stderr reaches ($JOURNAL_STREAM names stderr's device and inode, as systemd sets
// it for a service), so that every line carries its level as the journal's priority (ERROR → err,
// WARN → warning, INFO → info, DEBUG → debug: `journalctl -p warning` shows the problems) and its
// attributes as fields (pid → ASKR_PID, uri → ASKR_URI). The message text is the one the text
// handler writes on stderr, without the time (the journal has its own). A line the journal refuses
// is written to stderr instead, never lost, after the "<N>" prefix that gives journald its
// priority there. The package owns only this slog.Handler; the caller (cli) decides when to use it.
package journal

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/coreos/go-systemd/v22/journal"
)

// StderrIsSink reports whether stderr is connected to the journal: whether $JOURNAL_STREAM is
// stderr's device:inode. A stderr redirected elsewhere (a pipe, a file) is not, even under systemd.
func StderrIsSink() bool {
	ok, err := journal.StderrIsJournalStream()
	return ok && err == nil
}

// Options configure a Handler.
type Options struct {
	// Level is the lowest level logged (nil: INFO).
	Level slog.Leveler
	// Identifier is SYSLOG_IDENTIFIER, the name journalctl shows before each line ("askrd").
	Identifier string
	// Send writes one entry to the journal; nil: the native protocol (go-systemd's journal.Send).
	Send func(message string, priority journal.Priority, fields map[string]string) error
	// Fallback gets, as the text handler writes it (with the time) after the "<N>" priority prefix
	// journald reads on a stream (sd-daemon(3)), a line Send failed to write (nil: os.Stderr, the
	// journal's stream).
	Fallback io.Writer
}

// Handler is a slog.Handler that writes to the journal. Make it with NewHandler.
type Handler struct {
	opt    *Options
	text   slog.Handler // renders MESSAGE into buf.b
	buf    *renderBuf
	backup slog.Handler // renders a line the journal refused into bbuf.b, for Fallback
	bbuf   *renderBuf
	fields []field // of WithAttrs, already named
	prefix string  // the field name prefix of the open groups: "ASKR_" + "G_" per group
}

type field struct{ name, value string }

// renderBuf is the text handler's writer: Handle holds mu while the text handler writes into b.
type renderBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (r *renderBuf) Write(p []byte) (int, error) { return r.b.Write(p) }

// NewHandler returns a Handler with opt.
func NewHandler(opt Options) *Handler {
	if opt.Send == nil {
		opt.Send = journal.Send
	}
	if opt.Level == nil {
		opt.Level = slog.LevelInfo
	}
	if opt.Fallback == nil {
		opt.Fallback = os.Stderr
	}
	buf, bbuf := &renderBuf{}, &renderBuf{}
	noTime := func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	return &Handler{
		opt:    &opt,
		text:   slog.NewTextHandler(buf, &slog.HandlerOptions{Level: opt.Level, ReplaceAttr: noTime}),
		buf:    buf,
		backup: slog.NewTextHandler(bbuf, &slog.HandlerOptions{Level: opt.Level}),
		bbuf:   bbuf,
		prefix: "ASKR_",
	}
}

// Enabled reports whether level is logged.
func (h *Handler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.opt.Level.Level()
}

// Handle writes r to the journal: MESSAGE as the text handler renders it (without time= and the
// trailing newline), PRIORITY from the level, SYSLOG_IDENTIFIER, and a field per attribute. If the
// journal refuses it, the line goes to Fallback with the journal's error.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	h.buf.mu.Lock()
	h.buf.b.Reset()
	err := h.text.Handle(ctx, r)
	msg := strings.TrimSuffix(h.buf.b.String(), "\n")
	h.buf.mu.Unlock()
	if err != nil {
		return err
	}
	fields := make(map[string]string, len(h.fields)+r.NumAttrs()+1)
	if h.opt.Identifier != "" {
		fields["SYSLOG_IDENTIFIER"] = h.opt.Identifier
	}
	for _, f := range h.fields {
		fields[f.name] = f.value
	}
	r.Attrs(func(a slog.Attr) bool {
		addField(fields, h.prefix, a)
		return true
	})
	if err := h.opt.Send(msg, Priority(r.Level), fields); err != nil {
		return h.fallback(ctx, r, err)
	}
	return nil
}

// fallback writes r, which the journal refused with err, to Fallback.
func (h *Handler) fallback(ctx context.Context, r slog.Record, err error) error {
	r = r.Clone()
	r.AddAttrs(slog.String("journal_error", err.Error()))
	h.bbuf.mu.Lock()
	defer h.bbuf.mu.Unlock()
	h.bbuf.b.Reset()
	fmt.Fprintf(&h.bbuf.b, "<%d>", Priority(r.Level))
	if err := h.backup.Handle(ctx, r); err != nil {
		return err
	}
	_, err = h.opt.Fallback.Write(h.bbuf.b.Bytes())
	return err
}

// WithAttrs returns a Handler whose lines carry attrs too.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	c := *h
	m := map[string]string{}
	for _, a := range attrs {
		addField(m, h.prefix, a)
	}
	c.fields = h.fields[:len(h.fields):len(h.fields)] // appending copies: h keeps its own
	for name, v := range m {
		c.fields = append(c.fields, field{name, v})
	}
	c.text = h.text.WithAttrs(attrs)
	c.backup = h.backup.WithAttrs(attrs)
	return &c
}

// WithGroup returns a Handler whose later attributes are in the group name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + fieldPart(name) + "_"
	c.text = h.text.WithGroup(name)
	c.backup = h.backup.WithGroup(name)
	return &c
}

// Priority is the journal's priority for a slog level.
func Priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}

// FieldName is the journal field of an attribute key: "ASKR_" and the key in upper case, each
// character other than A-Z, 0-9 and _ replaced by _, at most 64 characters (journald's limit).
func FieldName(key string) string { return limit("ASKR_" + fieldPart(key)) }

// addField adds a's fields to m under prefix: a group's attributes as PREFIX_GROUP_KEY, as the
// text handler writes them group.key.
func addField(m map[string]string, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += fieldPart(a.Key) + "_"
		}
		for _, g := range v.Group() {
			addField(m, prefix, g)
		}
		return
	}
	if a.Key == "" {
		return
	}
	m[limit(prefix+fieldPart(a.Key))] = v.String()
}

func fieldPart(key string) string {
	return strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z':
			return c - 'a' + 'A'
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			return c
		}
		return '_'
	}, key)
}

func limit(name string) string {
	if len(name) > 64 {
		return name[:64]
	}
	return name
}
