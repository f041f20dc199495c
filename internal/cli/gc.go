package cli

import (
	"os"
	"runtime/debug"
)

// gcPercent is askrd's GOGC unless the environment sets one. askrd's live heap is small (about
// 1 MiB serving hello world) while every request allocates some kilobytes, so with Go's default
// of 100 the collector ran about 34 times a second under load, ~12 % of askrd's CPU
// (docs/design.md, "Cost per request"); at 400 the heap may grow to five times the live heap
// (16 MiB at least) between collections.
const gcPercent = 400

// tuneGC sets gcPercent when GOGC is not in the environment (an admin's GOGC, e.g. in a systemd
// drop-in, wins).
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
}
