package cli

import (
	"os"
	"runtime"
	"runtime/debug"

	"github.com/askr-php/askr/internal/config"
)

// gcPercent is askrd's GOGC unless the environment sets one. askrd's live heap is small (about
// 1 MiB serving hello world) while every request allocates some kilobytes, so with Go's default
// of 100 the collector ran about 34 times a second under load; at 400 the heap may grow to five
// times the live heap (16 MiB at least) between collections (docs/design.md, "Cost per request").
const gcPercent = 400

// tuneRuntime sets askrd's defaults for Go's runtime where the environment sets none (an admin's
// GOGC or GOMAXPROCS, e.g. in a systemd drop-in, wins):
//   - GOGC gcPercent;
//   - GOMAXPROCS half the CPUs askrd may use (at least 1): the other half is left to the PHP
//     workers, and with fewer of Go's threads to hand work between, fewer of them are woken
//     per request (docs/design.md, "Cost per request"). workers = "auto" still counts every CPU
//     (config.CPUs).
func tuneRuntime() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(threads(config.CPUs))
	}
}

// threads is askrd's GOMAXPROCS on a machine where it may use cpus CPUs.
func threads(cpus int) int { return max(1, cpus/2) }
