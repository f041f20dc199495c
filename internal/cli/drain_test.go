package cli

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// drainServer serves "hello" (after release is closed, for /slow) on a loopback listener, its
// connections tracked as Run tracks them.
func drainServer(t *testing.T, release <-chan struct{}) (srv *http.Server, ln net.Listener, serving *sync.WaitGroup, c *conns) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "hello")
	})}
	c = trackConns(srv)
	serving = &sync.WaitGroup{}
	serving.Add(1)
	go func() { defer serving.Done(); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return srv, ln, serving, c
}

func (c *conns) freshCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.fresh)
}

// eventually polls cond until it holds or 5 s have passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("after 5 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

func send(nc net.Conn, path string) error {
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(nc, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
	return err
}

func read(nc net.Conn) (*http.Response, string, error) {
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

func get(nc net.Conn, path string) (*http.Response, string, error) {
	if err := send(nc, path); err != nil {
		return nil, "", err
	}
	return read(nc)
}

// closed reports whether the server has closed nc (EOF on read).
func closed(nc net.Conn) bool {
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := nc.Read(make([]byte, 1))
	return errors.Is(err, io.EOF)
}

// The drain answers the request of a connection accepted before it began, even when the request
// arrives after: net/http's Shutdown alone closes such a connection unanswered (the request lost
// across systemctl restart). Requests in flight finish; idle keep-alive connections are closed.
func TestDrainAnswersConnectionsAcceptedBefore(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv, ln, serving, c := drainServer(t, release)
	addr := ln.Addr().String()

	idle := dial(t, addr)
	if resp, body, err := get(idle, "/"); err != nil || resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("keep-alive request: %v, %q; want 200 hello", err, body)
	}
	inFlight := dial(t, addr)
	if err := send(inFlight, "/slow"); err != nil {
		t.Fatal(err)
	}
	fresh := dial(t, addr)
	eventually(t, "the fresh connection accepted", func() bool { return c.freshCount() == 1 })

	drained := make(chan error, 1)
	go func() { drained <- drain(context.Background(), srv, []net.Listener{ln}, serving, c) }()
	eventually(t, "the listener closed", func() bool {
		nc, err := net.Dial("tcp", addr)
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	if !closed(idle) {
		t.Error("the idle keep-alive connection is still open during the drain")
	}

	resp, body, err := get(fresh, "/")
	if err != nil {
		t.Fatalf("request on a connection accepted before the drain: %v; want an answer", err)
	}
	if resp.StatusCode != 200 || body != "hello" || !resp.Close {
		t.Errorf("answer during the drain: %d %q, Connection: close %v; want 200 \"hello\", close", resp.StatusCode, body, resp.Close)
	}
	select {
	case err := <-drained:
		t.Fatalf("drain returned %v with a request in flight", err)
	default:
	}
	close(release)
	resp, body, err = read(inFlight)
	if err != nil || resp.StatusCode != 200 || body != "hello" || !resp.Close {
		t.Errorf("request in flight: %v; want 200 \"hello\", Connection: close", err)
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Errorf("drain = %v; want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("drain did not return after the last request")
	}
}

// A connection that sends nothing holds the drain only for freshGrace (as long as net/http's
// Shutdown would), and is then closed.
func TestDrainGivesUpOnSilentConnection(t *testing.T) {
	t.Parallel()
	srv, ln, serving, c := drainServer(t, nil)
	silent := dial(t, ln.Addr().String())
	eventually(t, "the silent connection accepted", func() bool { return c.freshCount() == 1 })
	drained := make(chan error, 1)
	go func() { drained <- drain(context.Background(), srv, []net.Listener{ln}, serving, c) }()
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("drain = %v; want nil", err)
		}
	case <-time.After(freshGrace + 5*time.Second):
		t.Fatalf("drain still waits for a silent connection after %v", freshGrace+5*time.Second)
	}
	if !closed(silent) {
		t.Error("the silent connection is still open after the drain")
	}
}

// shutdown_timeout ends the wait for a silent connection, with its cause.
func TestDrainTimeout(t *testing.T) {
	t.Parallel()
	srv, ln, serving, c := drainServer(t, nil)
	dial(t, ln.Addr().String())
	eventually(t, "the connection accepted", func() bool { return c.freshCount() == 1 })
	ctx, cancel := context.WithTimeoutCause(context.Background(), 100*time.Millisecond, errors.New("shutdown_timeout reached"))
	defer cancel()
	err := drain(ctx, srv, []net.Listener{ln}, serving, c)
	if err == nil || !strings.Contains(err.Error(), "shutdown_timeout") {
		t.Errorf("drain = %v; want the shutdown_timeout cause", err)
	}
}
