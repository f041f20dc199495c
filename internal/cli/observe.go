package cli

// What watches the requests: every request's record (httpfront.Options.Observe) goes to the
// access log and the metrics.

import (
	"context"
	"log/slog"

	"github.com/askr-php/askr/internal/accesslog"
	"github.com/askr-php/askr/internal/config"
	"github.com/askr-php/askr/internal/httpfront"
)

// observers are the functions each request's record is given to, in order.
type observers []func(*httpfront.Record)

// observe is the one Observe of the front: nil if nothing watches (the front then records
// nothing), else each observer in turn.
func (o observers) observe() func(*httpfront.Record) {
	switch len(o) {
	case 0:
		return nil
	case 1:
		return o[0]
	}
	return func(r *httpfront.Record) {
		for _, f := range o {
			f(r)
		}
	}
}

// requestObservers are the observers of the access log, if there is one; Run appends the
// metrics' Observe.
func requestObservers(alog *accesslog.Logger) observers {
	var o observers
	if alog != nil {
		o = append(o, alog.Log)
	}
	return o
}

// openAccessLog opens [server] access_log; nil if there is none. A path that cannot be opened is
// a configuration error.
func openAccessLog(c config.Config, log *slog.Logger) (*accesslog.Logger, error) {
	if c.Server.AccessLog == "" {
		return nil, nil
	}
	l, err := accesslog.Open(c.Server.AccessLog, c.Server.AccessLogFormat, log.With("component", "accesslog"))
	if err != nil {
		return nil, c.Err("server.access_log", "%v", err)
	}
	return l, nil
}

// reopenAccessLog reopens alog at each SIGUSR1 (reopen) until ctx is done.
func reopenAccessLog(ctx context.Context, alog *accesslog.Logger, reopen <-chan struct{}, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-reopen:
			switch {
			case alog == nil:
				log.Info("SIGUSR1: no access log to reopen")
				continue
			case alog.Path() == "-":
				log.Info("SIGUSR1: the access log is standard output; nothing to reopen")
				continue
			}
			if err := alog.Reopen(); err != nil {
				log.Error("reopening the access log failed; it stays on the file it had", "err", err)
				continue
			}
			log.Info("access log reopened", "path", alog.Path())
		}
	}
}
