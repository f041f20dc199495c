package httpfront

// The worker channel backend (worker mode): the request goes to a php-cgi worker of the pool as
// one encoded payload; the worker's answer reaches the responder. Every call into package pool of
// worker mode is in this file.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/pool"
)

// Backend runs a request in PHP (the worker pool).
type Backend interface {
	// Call lends a worker to call, which runs the request on it (see exchange); a request whose
	// worker died while it had it is not run again.
	Call(ctx context.Context, v *pool.Visit, call func(pool.Process) pool.Outcome) error
	// Limits returns the upload limits of PHP's configuration (zero until a worker reported them).
	Limits() channel.Limits
}

// ChannelProcess is a process a worker-mode Backend lends: a worker with askr's channel
// (phpcgi.Process, a CoW worker of package template).
type ChannelProcess interface {
	// Exchange sends the worker one request and passes its answer to resp
	// (channel.Endpoint.Exchange).
	Exchange(payload []byte, resp channel.Response) channel.Result
}

// workerBackend runs requests in the worker pool.
type workerBackend struct {
	pool Backend
	cgi  *cgiEnv
	log  *slog.Logger
}

// forms: askrd parses multipart forms for the worker runtime, with PHP's limits.
func (b workerBackend) forms() (channel.Limits, bool) { return b.pool.Limits(), true }

func (b workerBackend) serve(r *http.Request, rt route, body *body, rs *responder, v *pool.Visit) error {
	return fromPool(b.pool.Call(r.Context(), v, exchange(b.log, b.cgi.encode(r, rt, body), rs)))
}

// exchange returns the conversation of one worker-mode request, for Backend.Call: payload goes to
// the lent worker on its channel, and the worker's answer to resp.
func exchange(log *slog.Logger, payload []byte, resp channel.Response) func(pool.Process) pool.Outcome {
	return func(proc pool.Process) pool.Outcome {
		cp, ok := proc.(ChannelProcess)
		if !ok {
			return pool.Outcome{Err: fmt.Errorf("process %d has no worker channel", proc.PID()), Broken: true}
		}
		r := cp.Exchange(payload, resp)
		if errors.Is(r.Err, channel.ErrProtocol) {
			log.Error("worker broke the channel protocol; killed", "pid", proc.PID(), "err", r.Err)
		}
		o := outcome(r)
		if s, ok := resp.(statusHolder); ok {
			o.Status = s.phpStatus()
		}
		return o
	}
}

// statusHolder is a channel.Response that knows the status of the head it was given (the
// responder), for pool.Outcome.Status.
type statusHolder interface{ phpStatus() int }

// outcome is what the pool needs to know of a channel exchange's result.
func outcome(r channel.Result) pool.Outcome {
	err := r.Err
	if errors.Is(err, channel.ErrBadHeader) {
		err = fmt.Errorf("%w: %v", pool.ErrBadResponse, err)
	}
	return pool.Outcome{Err: err, Broken: r.Broken, Unsent: r.Unsent, ClientGone: r.ClientGone,
		Exits: r.Exits, Left: r.Bye, Memory: r.Memory, Peak: r.Peak}
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
	case errors.Is(err, pool.ErrQueueFull), errors.Is(err, pool.ErrQueueTimeout),
		errors.Is(err, pool.ErrUnavailable), errors.Is(err, pool.ErrClosed):
		kind = errUnavailable
	default:
		return err
	}
	return fmt.Errorf("%w: %w", kind, err)
}
