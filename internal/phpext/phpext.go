// Package phpext finds askr's optional PHP extension (askr.so, built from ext/askr) and checks that
// php-cgi can load it. It decides which file the workers get as `-d extension=`; it does not start
// workers, and what the extension does is the business of the PHP runtime that calls it.
package phpext

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The values of [worker] extension that are not a path.
const (
	Auto = "auto"
	None = "none"
)

// InstalledPath is where the Debian package installs the extension.
const InstalledPath = "/usr/lib/askr/askr.so"

// Degraded says what PHP code loses without the extension, for the warning askrd logs.
const Degraded = "is_uploaded_file() and move_uploaded_file() refuse uploads, flush() does not stream, connection_aborted() stays 0"

// Candidates returns where Auto looks, in order, for an askrd running as exe: the packaged file,
// askr.so next to the executable, and build/ext/askr.so of a source tree whose bin/ holds it
// (only the first when exe is unknown, "").
func Candidates(exe string) []string {
	if exe == "" {
		return []string{InstalledPath}
	}
	dir := filepath.Dir(exe)
	return []string{InstalledPath, filepath.Join(dir, "askr.so"), filepath.Join(dir, "..", "build", "ext", "askr.so")}
}

// ErrNotFound is Find's error when Auto finds no extension.
var ErrNotFound = errors.New("askr.so not found")

// Find resolves a [worker] extension setting for an askrd running as exe: "" for None; for Auto
// the first of Candidates that is a regular file, or ErrNotFound; any other value is returned as
// an absolute path (config.Validate has checked that it exists).
func Find(setting, exe string) (string, error) {
	switch setting {
	case None:
		return "", nil
	case Auto:
		for _, p := range Candidates(exe) {
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p, nil
			}
		}
		return "", fmt.Errorf("%w (looked at %s)", ErrNotFound, strings.Join(Candidates(exe), ", "))
	}
	return filepath.Abs(setting)
}

// Check asks php-cgi (binary, with the workers' ini settings) to load the extension at path and
// list its modules: one short process at startup instead of every worker failing the same way.
// The error carries what PHP said ("Unable to load dynamic library …").
func Check(ctx context.Context, binary, path string, ini []string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	args := []string{"-d", "extension=" + path}
	for _, kv := range ini {
		args = append(args, "-d", kv)
	}
	cmd := exec.CommandContext(ctx, binary, append(args, "-m")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if loaded(stdout.Bytes()) && err == nil {
		return nil
	}
	said := strings.TrimSpace(stderr.String())
	if said == "" && err != nil {
		said = err.Error()
	}
	if said == "" {
		said = "the askr module is not in its list of modules"
	}
	return fmt.Errorf("%s cannot load %s: %s", binary, path, said)
}

// loaded reports whether the module list `php-cgi -m` printed names askr among the PHP modules.
func loaded(list []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		switch strings.TrimSpace(sc.Text()) {
		case "askr":
			return true
		case "[Zend Modules]":
			return false
		}
	}
	return false
}
