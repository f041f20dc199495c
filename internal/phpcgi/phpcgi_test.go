package phpcgi

import (
	"slices"
	"testing"
)

func TestWorkerEnv(t *testing.T) {
	in := []string{"PATH=/usr/bin", "LISTEN_FDS=2", "LISTEN_PID=1", "LISTEN_FDNAMES=http", "NOTIFY_SOCKET=/run/x",
		"WATCHDOG_USEC=1", "WATCHDOG_PID=1", "ASKR_WORKER=0", "ASKR_APP_BASE=/old", "APP_ENV=prod"}
	got := workerEnv(in, "/srv/app")
	want := []string{"PATH=/usr/bin", "APP_ENV=prod", "ASKR_WORKER=1", "ASKR_APP_BASE=/srv/app"}
	if !slices.Equal(got, want) {
		t.Errorf("workerEnv = %q; want %q", got, want)
	}
}
