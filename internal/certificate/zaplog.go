package certificate

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"go.uber.org/zap/zapcore"
)

// slogCore is a zapcore.Core that writes certmagic's log (zap) to askrd's slog.Logger: the
// level, the message and the fields, so the CA's problem details appear in askrd's log.
type slogCore struct {
	log    *slog.Logger
	fields []zapcore.Field // from With
}

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (c slogCore) Enabled(l zapcore.Level) bool {
	return c.log.Enabled(context.Background(), slogLevel(l))
}

func (c slogCore) With(fields []zapcore.Field) zapcore.Core {
	return slogCore{log: c.log, fields: append(append([]zapcore.Field(nil), c.fields...), fields...)}
}

func (c slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys)+1)
	if e.LoggerName != "" {
		attrs = append(attrs, slog.String("logger", e.LoggerName))
	}
	for _, k := range keys {
		attrs = append(attrs, slogAttr(k, enc.Fields[k]))
	}
	level := slogLevel(e.Level)
	if msg, _ := enc.Fields["error"].(string); level > slog.LevelInfo && strings.HasSuffix(msg, context.Canceled.Error()) {
		level = slog.LevelInfo // askrd stopping (Start's ctx ended), not a failure to look into
	}
	c.log.LogAttrs(context.Background(), level, e.Message, attrs...)
	return nil
}

// slogAttr keeps strings, numbers, booleans and times as they are and prints anything else
// (arrays, objects) with fmt.
func slogAttr(k string, v any) slog.Attr {
	switch v.(type) {
	case string, bool, int, int64, int32, uint64, uint32, float64, float32:
		return slog.Any(k, v)
	default:
		if s, ok := v.(fmt.Stringer); ok {
			return slog.String(k, s.String())
		}
		return slog.String(k, fmt.Sprint(v))
	}
}

func (c slogCore) Sync() error { return nil }
