// Package phpruntime ships the askr PHP runtime: runtime.php (askr_handle_request() and friends)
// and the classes it requires from beside it (Channel.php, the PHP side of the worker channel;
// Worker.php, Request.php, Output.php, …), and the state-bleed detector (paranoid.php), which
// Worker.php loads only when askrd sets ASKR_PARANOID=1. askrd writes them to a private directory
// at start and php-cgi prepends runtime.php to the worker script. This package owns only those
// files.
package phpruntime

import (
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// files is the runtime: every .php file of this directory, installed side by side.
//
//go:embed *.php
var files embed.FS

// Install writes the runtime's files into a new private directory (mode 0700: the workers run as
// askrd's user) under dir ("" = the system temp dir) and returns runtime.php's path and a function
// that removes the directory again. Directories left by an askrd that was killed before it could
// remove its own are removed.
func Install(dir string) (string, func(), error) {
	if dir == "" {
		dir = os.TempDir()
	}
	removeStale(dir)
	d, err := os.MkdirTemp(dir, fmt.Sprintf("askr-runtime-%d-", os.Getpid()))
	if err != nil {
		return "", nil, fmt.Errorf("install PHP runtime: %w", err)
	}
	entries, _ := files.ReadDir(".")
	for _, e := range entries {
		src, _ := files.ReadFile(e.Name())
		if err := os.WriteFile(filepath.Join(d, e.Name()), src, 0o644); err != nil {
			os.RemoveAll(d)
			return "", nil, fmt.Errorf("install PHP runtime: %w", err)
		}
	}
	return filepath.Join(d, "runtime.php"), func() { os.RemoveAll(d) }, nil
}

// removeStale removes askr-runtime-PID-* directories whose askrd is gone.
func removeStale(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "askr-runtime-")
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}
