package cli

import (
	"io"
	"log/slog"
	"testing"

	"github.com/askr-php/askr/internal/pool"
)

// The STATUS= line keeps its fields and adds, as php-fpm's, requests/s and the slow requests.
func TestStatusLine(t *testing.T) {
	st := pool.Stats{Ready: 4, Busy: 1, Waiting: 2, Served: 1234, Slow: 7}
	got := statusLine("cow", st, 3, 12.345)
	want := "mode=cow workers=4 busy=1 idle=3 waiting=2 requests=1234 generation=3 rps=12.3 slow=7"
	if got != want {
		t.Errorf("statusLine = %q; want %q", got, want)
	}
	if got := statusLine("worker", pool.Stats{Ready: 1, Busy: 2}, 0, 0); got != "mode=worker workers=1 busy=2 idle=0 waiting=0 requests=0 generation=0 rps=0.0 slow=0" {
		t.Errorf("statusLine while a worker ends = %q; want idle=0 rps=0.0 slow=0", got)
	}
}

// modeName (the metrics' mode label) names each mode as newMode does.
func TestModeNameIsNewModes(t *testing.T) {
	clearEnv(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, args := range [][]string{
		{"--worker-script", "testdata/run-worker.php"},
		{"--worker-script", "testdata/run-worker.php", "--cow"},
		{},
	} {
		c, err := resolveArgs(t, append([]string{"--root", "testdata/app/public"}, args...)...)
		if err != nil {
			t.Fatalf("resolve(%q) error = %v; want nil", args, err)
		}
		m, err := newMode(c, phpConfig(c, "", "php-cgi", nil, log), t.TempDir(), log, func() {}, newMetrics(c))
		if err != nil {
			t.Fatalf("newMode(%q) error = %v", args, err)
		}
		m.close()
		if got := modeName(c); got != m.name {
			t.Errorf("modeName(%q) = %q; newMode's name is %q", args, got, m.name)
		}
	}
}

// A reload or refork shows in STATUS= until the next one: its cause and state.
func TestStatusLineShowsTheRollout(t *testing.T) {
	for _, tt := range []struct {
		r    pool.Rollout
		want string
	}{
		{pool.Rollout{}, ""},
		{pool.Rollout{State: pool.RolloutIdle}, ""},
		{pool.Rollout{State: pool.RolloutRolling, Cause: "reload"}, " reload=rolling"},
		{pool.Rollout{State: pool.RolloutAborted, Cause: "refork"}, " refork=aborted"},
	} {
		got := statusLine("cow", pool.Stats{Rollout: tt.r}, 2, 0)
		if want := "mode=cow workers=0 busy=0 idle=0 waiting=0 requests=0 generation=2 rps=0.0 slow=0" + tt.want; got != want {
			t.Errorf("statusLine with rollout %+v = %q; want %q", tt.r, got, want)
		}
	}
}

func TestReloadedLine(t *testing.T) {
	for body, want := range map[string]string{
		`{"ok":true,"generation":3,"rollout":{"state":"rolling"}}`:                                                                                 "askrd: reloaded: the new workers serve (generation 3); canary passed, the old workers follow one at a time",
		`{"ok":true,"generation":2,"rollout":{"state":"inconclusive","detail":"canary pid 7 answered 3 requests in 5s (canary_min_requests 20)"}}`: "askrd: reloaded: the new workers serve (generation 2); canary inconclusive, rolled on: canary pid 7 answered 3 requests in 5s (canary_min_requests 20)",
		`{"ok":true}`: "askrd: reloaded: the new workers serve",
	} {
		if got := reloadedLine([]byte(body)); got != want {
			t.Errorf("reloadedLine(%s) = %q; want %q", body, got, want)
		}
	}
}
