package httpfront

// The FastCGI backend (per-request mode): the pool lends a php-cgi process, which gets the CGI
// variables as FastCGI params and the body on FCGI_STDIN; its CGI head and body reach the
// responder. Every call into package pool of per-request mode is in this file.

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/fastcgi"
	"github.com/askr-php/askr/internal/pool"
)

// FastCGIBackend runs requests in php-cgi processes speaking FastCGI (per-request mode): the pool,
// which lends one process per request (pool.Pool.Call).
type FastCGIBackend interface {
	Call(ctx context.Context, v *pool.Visit, call func(pool.Process) pool.Outcome) error
}

// FastCGIProcess is a process a FastCGIBackend lends (phpcgi.FastCGIProcess).
type FastCGIProcess interface {
	// Do runs one FastCGI request. reusable reports that the process can take another request
	// (it is idle again), reached that the request got to it at all.
	Do(ctx context.Context, req *fastcgi.Request) (reusable, reached bool, err error)
}

// fastcgiBackend runs requests in the php-cgi processes of a FastCGIBackend.
type fastcgiBackend struct {
	pool FastCGIBackend
	cgi  *cgiEnv
}

// forms: php-cgi parses forms and uploads itself (is_uploaded_file() works by construction).
func (b fastcgiBackend) forms() (channel.Limits, bool) { return channel.Limits{}, false }

// serve sends the route's script the CGI variables and the body (from memory or the spool file);
// the answer streams back.
func (b fastcgiBackend) serve(r *http.Request, rt route, body *body, rs *responder, v *pool.Visit) error {
	params := make([]fastcgi.Param, 0, 28+len(r.Header))
	b.cgi.vars(r, rt, body.size, fastcgiSAPI, func(k, v string) {
		params = append(params, fastcgi.Param{Name: k, Value: v})
	})
	err := b.pool.Call(r.Context(), v, func(proc pool.Process) pool.Outcome {
		fp, ok := proc.(FastCGIProcess)
		if !ok {
			return pool.Outcome{Err: fmt.Errorf("process %d does not speak FastCGI", proc.PID()), Broken: true}
		}
		stdin, err := body.reader()
		if err != nil {
			return pool.Outcome{Err: fmt.Errorf("reopen the request body: %w", err)}
		}
		defer stdin.Close()
		hs := fastcgi.NewHeadSplitter(fastcgi.DefaultMaxHead, func(hd *fastcgi.Head) error { return cgiHead(rs, hd) }, fcgiBody{rs})
		reusable, reached, err := fp.Do(r.Context(), &fastcgi.Request{Params: params, Stdin: stdin, Stdout: hs})
		if err == nil {
			err = hs.Close()
		}
		if errors.Is(err, fastcgi.ErrBadHead) || errors.Is(err, fastcgi.ErrHeadTooLarge) ||
			errors.Is(err, fastcgi.ErrNoHead) || errors.Is(err, errBadStatus) {
			err = fmt.Errorf("%w: %v", pool.ErrBadResponse, err)
		}
		return pool.Outcome{Err: err, Broken: !reusable, Unsent: !reached, Status: rs.phpStatus()}
	})
	return fromPool(err)
}

// errBadStatus is a Status header the response cannot have.
var errBadStatus = errors.New("status outside 200-999")

// cgiHead passes php-cgi's response head on (the Status header sets the status).
func cgiHead(rs *responder, hd *fastcgi.Head) error {
	if hd.Status < 200 {
		return fmt.Errorf("%w: %d", errBadStatus, hd.Status)
	}
	hs := make([]channel.Header, 0, len(hd.Header))
	for name, values := range hd.Header {
		for _, v := range values {
			hs = append(hs, channel.Header{Name: name, Value: v})
		}
	}
	return rs.Head(hd.Status, hs)
}

// fcgiBody is the body side of a HeadSplitter: php-cgi's output goes to the responder, which
// holds up to 1 MiB until php-cgi pauses (Flush: it flushed, or is still working) or ends, and
// spools what a slow client has not taken yet.
type fcgiBody struct{ rs *responder }

func (f fcgiBody) Write(b []byte) (int, error) {
	if err := f.rs.Body(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (f fcgiBody) Flush() error { return f.rs.Flush() }
