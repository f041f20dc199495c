package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/activation"
	"github.com/askr-php/askr/internal/config"
	"github.com/askr-php/askr/internal/phpext"
)

// needPHPCGI skips the test without php-cgi, and fails it under CI.
func needPHPCGI(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("php-cgi"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("php-cgi not found: %v", err)
		}
		t.Skip("php-cgi not installed")
	}
}

// leftGoroutines returns the stacks of the goroutines that this package's code (not its tests)
// started and that are still there.
func leftGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	const pkg = "created by github.com/askr-php/askr/internal/cli."
	var left []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		_, creator, ok := strings.Cut(g, pkg) // "Run in goroutine 7\n\t/…/run.go:65 +0x1d"
		if ok && !strings.Contains(creator, "_test.go:") {
			left = append(left, g)
		}
	}
	return left
}

// runAskrd starts Run in mode ("worker", "cow" or "per-request") on a loopback listener, with
// script as the worker script (worker and CoW mode). It returns the listener and Run's result.
func runAskrd(t *testing.T, ctx context.Context, mode, script string) (net.Listener, <-chan error) {
	t.Helper()
	clearEnv(t)
	args := []string{"--listen", "127.0.0.1:0", "--workers", "1", "--root", "testdata/app/public"}
	if mode != "per-request" {
		args = append(args, "--worker-script", script)
	}
	if mode == "cow" {
		args = append(args, "--cow")
	}
	c, err := resolveArgs(t, args...)
	if err != nil {
		t.Fatalf("resolve(%q) error = %v; want nil", args, err)
	}
	c.Worker.Extension = phpext.None
	c.Server.ShutdownTimeout = config.Duration(5 * time.Second)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { errc <- Run(ctx, c, activation.Listeners{HTTP: ln}, nil, nil, c.Worker.PHPCGI, nil, log) }()
	return ln, errc
}

// waitServing polls GET / on ln until PHP answers "hello".
func waitServing(t *testing.T, ln net.Listener, errc <-chan error) {
	t.Helper()
	url := "http://" + ln.Addr().String() + "/"
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Equal(body, []byte("hello")) {
				return
			}
		}
		select {
		case err := <-errc:
			t.Fatalf("Run returned %v before serving", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v; want 200 \"hello\" within 30s", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Every goroutine Run starts has ended when it returns: after a drain, in every mode.
func TestRunJoinsItsGoroutines(t *testing.T) {
	needPHPCGI(t)
	for _, mode := range []string{"worker", "cow", "per-request"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ln, errc := runAskrd(t, ctx, mode, "testdata/run-worker.php")
			waitServing(t, ln, errc)
			cancel()
			if err := <-errc; err != nil {
				t.Fatalf("Run after cancel = %v; want nil", err)
			}
			if left := leftGoroutines(); len(left) > 0 {
				t.Errorf("after Run returned, goroutines it started are left:\n%s", strings.Join(left, "\n\n"))
			}
		})
	}
}

// Run's failures join its goroutines too: a listener that fails, and a pool of which no worker boots.
func TestRunJoinsItsGoroutinesOnFailure(t *testing.T) {
	needPHPCGI(t)
	t.Run("listener fails", func(t *testing.T) {
		ln, errc := runAskrd(t, t.Context(), "worker", "testdata/run-worker.php")
		waitServing(t, ln, errc)
		ln.Close()
		if err := <-errc; err == nil || !strings.Contains(err.Error(), "http server") {
			t.Fatalf("Run after its listener closed = %v; want an http server error", err)
		}
		if left := leftGoroutines(); len(left) > 0 {
			t.Errorf("after Run returned, goroutines it started are left:\n%s", strings.Join(left, "\n\n"))
		}
	})
	t.Run("no worker boots", func(t *testing.T) {
		script := filepath.Join(t.TempDir(), "worker.php")
		if err := os.WriteFile(script, []byte("<?php\nthrow new Exception('no boot');\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errc := runAskrd(t, t.Context(), "worker", script)
		select {
		case err := <-errc:
			if err == nil || !strings.Contains(err.Error(), "worker mode") {
				t.Fatalf("Run with an unbootable script = %v; want a worker mode error", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("Run with an unbootable script has not returned after 60s")
		}
		if left := leftGoroutines(); len(left) > 0 {
			t.Errorf("after Run returned, goroutines it started are left:\n%s", strings.Join(left, "\n\n"))
		}
	})
}

// stop returns once the signal goroutine has ended.
func TestSignalsStopJoins(t *testing.T) {
	_, _, _, stop := signals(false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	stop()
	if left := leftGoroutines(); len(left) > 0 {
		t.Errorf("after stop, goroutines signals started are left:\n%s", strings.Join(left, "\n\n"))
	}
}
