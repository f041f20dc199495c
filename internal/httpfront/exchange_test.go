package httpfront

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/pool"
)

// An exchange's result tells the pool what it needs: an invalid head is the application's
// ErrBadResponse, a Bye is Left, and the rest is passed on as it is.
func TestOutcomeOfAnExchange(t *testing.T) {
	bad := fmt.Errorf("%w: bad header line %q", channel.ErrBadHeader, "Bad Name: x")
	gone := errors.New("client gone")
	for _, tc := range []struct {
		r    channel.Result
		want pool.Outcome
	}{
		{channel.Result{Memory: 5}, pool.Outcome{Memory: 5}},
		{channel.Result{Exits: true, Memory: 6}, pool.Outcome{Exits: true, Memory: 6}},
		{channel.Result{Err: channel.ErrBye, Bye: true, Unsent: true}, pool.Outcome{Err: channel.ErrBye, Left: true, Unsent: true}},
		{channel.Result{Err: gone, ClientGone: true}, pool.Outcome{Err: gone, ClientGone: true}},
		{channel.Result{Err: gone, ClientGone: true, Broken: true}, pool.Outcome{Err: gone, ClientGone: true, Broken: true}},
		{channel.Result{Err: io.ErrUnexpectedEOF, Broken: true}, pool.Outcome{Err: io.ErrUnexpectedEOF, Broken: true}},
		{channel.Result{Err: io.ErrClosedPipe, Broken: true, Unsent: true}, pool.Outcome{Err: io.ErrClosedPipe, Broken: true, Unsent: true}},
	} {
		if got := outcome(tc.r); got != tc.want {
			t.Errorf("outcome(%+v) = %+v; want %+v", tc.r, got, tc.want)
		}
	}
	o := outcome(channel.Result{Err: bad, Exits: true})
	if !errors.Is(o.Err, pool.ErrBadResponse) || o.Err.Error() != pool.ErrBadResponse.Error()+": "+bad.Error() || !o.Exits || o.Broken {
		t.Errorf("outcome of an invalid head = %+v; want ErrBadResponse with its text, Exits kept", o)
	}
}

// A process without a channel cannot run a worker-mode request: it is broken.
func TestExchangeNeedsAChannel(t *testing.T) {
	o := exchange(slog.New(slog.NewTextHandler(io.Discard, nil)), []byte("req"), nil)(&fakeFCGI{})
	if !o.Broken || o.Err == nil {
		t.Errorf("exchange with a FastCGI process = %+v; want Broken with an error", o)
	}
}
