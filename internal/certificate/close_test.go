package certificate

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// cacheRunning reports whether a certmagic cache's maintenance goroutine runs.
func cacheRunning() bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "certmagic.(*Cache).maintainAssets")
}

func newUnreachableACME(t *testing.T) *Manager {
	t.Helper()
	dead := listenLoopback(t)
	url := "https://" + dead.Addr().String() + "/dir"
	dead.Close()
	m, err := New(Options{ACME: &ACME{Domains: []string{testName}, Dir: filepath.Join(t.TempDir(), "acme"), DirectoryURL: url}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// New starts certmagic's cache (its maintenance goroutine): askrd failing after New, before
// Start (an admin socket in use, no worker booting), must not leave it running. Close stops it.
func TestCloseWithoutStart(t *testing.T) {
	pollUntil(t, "no certmagic cache of another test", 10*time.Second, func() bool { return !cacheRunning() })
	m := newUnreachableACME(t)
	defer m.Close()
	pollUntil(t, "New's certmagic cache running", 10*time.Second, cacheRunning)
	m.Close()
	pollUntil(t, "the certmagic cache stopped", 10*time.Second, func() bool { return !cacheRunning() })
	m.Close() // a second Close does nothing
	m.Start(context.Background())
	if cacheRunning() {
		t.Error("Start after Close started the cache again")
	}
}

// Close after Start ends what Start began, without its ctx ending.
func TestCloseAfterStart(t *testing.T) {
	pollUntil(t, "no certmagic cache of another test", 10*time.Second, func() bool { return !cacheRunning() })
	m := newUnreachableACME(t)
	defer m.Close()
	m.Start(context.Background())
	pollUntil(t, "the certmagic cache running", 10*time.Second, cacheRunning)
	m.Close()
	// Stop has returned: the goroutine is past its last select, only returning.
	pollUntil(t, "the certmagic cache stopped", 2*time.Second, func() bool { return !cacheRunning() })
}
