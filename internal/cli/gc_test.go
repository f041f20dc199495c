package cli

import (
	"os"
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	t.Setenv("GOGC", "") // set, even if empty: the environment's choice
	tuneGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC in the environment, GC percent = %d; want it untouched (100)", got)
	}
	os.Unsetenv("GOGC") // t.Setenv above restores the test's own environment afterwards
	tuneGC()
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("without GOGC, GC percent = %d; want %d", got, gcPercent)
	}
}
