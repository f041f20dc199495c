package cli

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/askr-php/askr/internal/config"
)

func TestTuneRuntime(t *testing.T) {
	oldGC := debug.SetGCPercent(100)
	defer debug.SetGCPercent(oldGC)
	oldProcs := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(oldProcs)

	// Set in the environment, even empty: the admin's choice, left alone.
	t.Setenv("GOGC", "")
	t.Setenv("GOMAXPROCS", "")
	runtime.GOMAXPROCS(3)
	tuneRuntime()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC in the environment, GC percent = %d; want it untouched (100)", got)
	}
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("with GOMAXPROCS in the environment, GOMAXPROCS = %d; want it untouched (3)", got)
	}

	os.Unsetenv("GOGC") // t.Setenv above restores the test's own environment afterwards
	os.Unsetenv("GOMAXPROCS")
	tuneRuntime()
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("without GOGC, GC percent = %d; want %d", got, gcPercent)
	}
	if got, want := runtime.GOMAXPROCS(0), threads(config.CPUs); got != want {
		t.Errorf("without GOMAXPROCS, GOMAXPROCS = %d; want %d (half of %d CPUs)", got, want, config.CPUs)
	}
}

func TestThreads(t *testing.T) {
	for _, tc := range []struct{ cpus, want int }{{1, 1}, {2, 1}, {3, 1}, {4, 2}, {16, 8}} {
		if got := threads(tc.cpus); got != tc.want {
			t.Errorf("threads(%d) = %d; want %d", tc.cpus, got, tc.want)
		}
	}
}
