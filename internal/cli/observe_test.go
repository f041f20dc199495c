package cli

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/config"
	"github.com/askr-php/askr/internal/httpfront"
)

// SIGUSR1 arrives on reopen (and does not end askrd); several at once are one pending reopen.
func TestSIGUSR1Reopens(t *testing.T) {
	ctx, _, reopen, stop := signals(false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer stop()
	for range 3 {
		if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-reopen:
	case <-time.After(10 * time.Second):
		t.Fatal("no reopen within 10s of SIGUSR1")
	}
	if ctx.Err() != nil {
		t.Error("SIGUSR1 cancelled the context; want it to reopen only")
	}
}

// Each observer gets every record, in order; none is no Observe at all.
func TestObserversFanOut(t *testing.T) {
	if f := (observers{}).observe(); f != nil {
		t.Error("observe of no observers is not nil; want nil (the front then records nothing)")
	}
	var got []string
	o := observers{
		func(r *httpfront.Record) { got = append(got, "a "+r.URI) },
		func(r *httpfront.Record) { got = append(got, "b "+r.URI) },
	}
	o.observe()(&httpfront.Record{URI: "/x"})
	if strings.Join(got, ",") != "a /x,b /x" {
		t.Errorf("observers got %q; want a then b", got)
	}
}

// An access log that cannot be opened is a configuration error naming the key; reopenAccessLog
// reopens on each signal and ends with its context.
func TestAccessLogOpenAndReopen(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := config.Defaults()
	c.Server.AccessLog = filepath.Join(t.TempDir(), "missing", "access.log")
	if _, err := openAccessLog(c, quiet); err == nil || !strings.Contains(err.Error(), "server.access_log") {
		t.Errorf("openAccessLog(in a missing directory) = %v; want a configuration error for server.access_log", err)
	}
	path := filepath.Join(t.TempDir(), "access.log")
	c.Server.AccessLog = path
	alog, err := openAccessLog(c, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer alog.Close()
	ctx, cancel := context.WithCancel(context.Background())
	reopen := make(chan struct{})
	done := make(chan struct{})
	go func() { reopenAccessLog(ctx, alog, reopen, quiet); close(done) }()
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	reopen <- struct{}{}
	reopen <- struct{}{} // the first has been handled once this one is taken
	if _, err := os.Stat(path); err != nil {
		t.Errorf("after a reopen the log file is not there again: %v", err)
	}
	cancel()
	<-done
}
