package httpfront

// The worker channel backend (worker mode): the request goes to a php-cgi worker of the pool as
// one encoded payload; the worker's answer reaches the responder. Every call into package pool of
// worker mode is in this file.

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/pool"
)

// Backend runs a request in PHP (the worker pool).
type Backend interface {
	// Serve runs the request (once: a request whose worker died while it had it is not run again).
	Serve(ctx context.Context, payload []byte, resp pool.Response) error
	// Limits returns the upload limits of PHP's configuration (zero until a worker reported them).
	Limits() channel.Limits
}

// workerBackend runs requests in the worker pool.
type workerBackend struct {
	pool Backend
	cgi  *cgiEnv
}

// forms: askrd parses multipart forms for the worker runtime, with PHP's limits.
func (b workerBackend) forms() (channel.Limits, bool) { return b.pool.Limits(), true }

func (b workerBackend) serve(r *http.Request, rt route, body *body, rs *responder) error {
	return fromPool(b.pool.Serve(r.Context(), b.cgi.encode(r, rt, body), rs))
}

// fromPool marks the pool's errors with the front's own, which finish answers.
func fromPool(err error) error {
	var kind error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pool.ErrTimeout):
		kind = errTimeout
	case errors.Is(err, pool.ErrBadResponse):
		kind = errBadResponse
	case errors.Is(err, pool.ErrWorkerDied):
		kind = errWorkerDied
	case errors.Is(err, pool.ErrQueueFull), errors.Is(err, pool.ErrQueueTimout),
		errors.Is(err, pool.ErrUnavailable), errors.Is(err, pool.ErrClosed):
		kind = errUnavailable
	default:
		return err
	}
	return fmt.Errorf("%w: %w", kind, err)
}
