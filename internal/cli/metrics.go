package cli

import (
	"github.com/askr-php/askr/internal/config"
	"github.com/askr-php/askr/internal/metrics"
	"github.com/askr-php/askr/internal/pool"
)

// newMetrics makes askrd's metrics (internal/metrics). They exist before the mode and the pool,
// whose hooks feed them; Run gives them the pool with Watch and records their history with Run.
// The admin listener serves mx.Handler() and mx.History().
func newMetrics(c config.Config) *metrics.Metrics {
	return metrics.New(metrics.Options{Mode: modeName(c)})
}

// modeName is the name newMode gives the mode c asks for, for the metrics' mode label
// (TestModeNameIsNewModes keeps the two in step).
func modeName(c config.Config) string {
	switch {
	case c.PerRequest():
		return "per-request"
	case c.Worker.Cow:
		return "cow"
	default:
		return "worker"
	}
}

// withMetrics makes the pool report its boots and exits to mx.
func withMetrics(opt pool.Options, mx *metrics.Metrics) pool.Options {
	opt.Booted, opt.Exited = mx.Booted, mx.Exited
	return opt
}
