// Package phpruntime ships the askr PHP runtime (runtime.php): the PHP side of the worker channel,
// askr_handle_request() and friends. askrd writes it to a private file at start and php-cgi
// prepends it to the worker script. This package owns only that file.
package phpruntime

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
)

//go:embed runtime.php
var source []byte

// Source returns the runtime's PHP code.
func Source() []byte { return source }

// Install writes the runtime into a new private directory under dir ("" = the system temp dir) and
// returns the file's path and a function that removes it again.
func Install(dir string) (string, func(), error) {
	d, err := os.MkdirTemp(dir, "askr-runtime-")
	if err != nil {
		return "", nil, fmt.Errorf("install PHP runtime: %w", err)
	}
	p := filepath.Join(d, "runtime.php")
	if err := os.WriteFile(p, source, 0o644); err != nil {
		os.RemoveAll(d)
		return "", nil, fmt.Errorf("install PHP runtime: %w", err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		os.RemoveAll(d)
		return "", nil, fmt.Errorf("install PHP runtime: %w", err)
	}
	return p, func() { os.RemoveAll(d) }, nil
}
