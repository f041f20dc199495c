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
