package cli

import (
	"errors"
	"log/slog"
	"time"

	"github.com/askr-php/askr/internal/backtrace"
	"github.com/askr-php/askr/internal/config"
	"github.com/askr-php/askr/internal/pool"
)

// slowLog is request_slowlog_timeout: the pool calls onSlow once for a request that has run past
// it, and slowLog logs the request with the PHP stack of the process that has it, read from
// outside (package backtrace) without stopping or signalling the process.
type slowLog struct {
	stacks *backtrace.Reader
	log    *slog.Logger
}

// slowOptions sets the slow log in opt when c asks for it: phpCGI is the php-cgi every mode runs;
// if askrd cannot read its stacks, the slow log says so once here and logs slow requests without.
func slowOptions(opt *pool.Options, c config.Config, phpCGI string, log *slog.Logger) {
	after := c.Server.RequestSlowlogTimeout.D()
	if after <= 0 {
		return
	}
	s := &slowLog{stacks: backtrace.NewReader(), log: log.With("component", "slowlog")}
	if err := s.stacks.Check(phpCGI); err != nil {
		s.log.Warn("request_slowlog_timeout: slow requests are logged without their PHP backtrace", "err", err)
	}
	opt.SlowAfter, opt.OnSlow = after, s.onSlow
}

// onSlow logs one slow request: its process, method, URI, how long it has run, and the PHP
// backtrace of what it is doing now, php-fpm's slowlog lines in one attribute.
func (s *slowLog) onSlow(pid int, v *pool.Visit, ran time.Duration) {
	var method, uri string
	if v != nil {
		method, uri = v.Method, v.URI
	}
	attrs := []any{"pid", pid, "method", method, "uri", uri, "running", ran.Round(time.Millisecond).Seconds()}
	st, err := s.stacks.Read(pid)
	switch {
	case errors.Is(err, backtrace.ErrUnsupported): // "not available for PHP 8.3 (…)"
		attrs = append(attrs, "backtrace", err.Error())
	case err != nil:
		attrs = append(attrs, "backtrace", "not available: "+err.Error())
	default:
		attrs = append(attrs, "backtrace", st.String())
	}
	s.log.Warn("slow request", attrs...)
}
