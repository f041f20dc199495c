package template

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// retag is a slog.Handler whose handler can be replaced while it is in use: a forked worker's log
// pump starts at its admission with the worker's tags, and StartRole retags what the process
// writes once it runs a role script ("role=queue" instead of the worker script's name).
type retag struct{ h atomic.Pointer[slog.Handler] }

func newRetag(h slog.Handler) *retag {
	r := &retag{}
	r.h.Store(&h)
	return r
}

func (r *retag) set(h slog.Handler) { r.h.Store(&h) }

func (r *retag) cur() slog.Handler { return *r.h.Load() }

func (r *retag) Enabled(ctx context.Context, l slog.Level) bool { return r.cur().Enabled(ctx, l) }

func (r *retag) Handle(ctx context.Context, rec slog.Record) error { return r.cur().Handle(ctx, rec) }

// WithAttrs and WithGroup fix the handler of the moment: the pump logs through the retag itself.
func (r *retag) WithAttrs(as []slog.Attr) slog.Handler { return r.cur().WithAttrs(as) }

func (r *retag) WithGroup(name string) slog.Handler { return r.cur().WithGroup(name) }
