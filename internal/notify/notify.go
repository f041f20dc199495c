// Package notify tells systemd how askrd is doing (sd_notify: READY, STATUS, STOPPING, WATCHDOG,
// EXTEND_TIMEOUT_USEC). Outside systemd (no NOTIFY_SOCKET) every call does nothing. Only askrd
// notifies: the worker environment never carries NOTIFY_SOCKET or WATCHDOG_* (see phpcgi).
package notify

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends state changes to systemd.
type Notifier struct {
	log *slog.Logger
}

// New returns a Notifier.
func New(log *slog.Logger) *Notifier { return &Notifier{log: log} }

func (n *Notifier) send(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Warn("sd_notify failed", "state", state, "err", err)
	}
}

// Ready says that askrd serves: call it once the workers can answer.
func (n *Notifier) Ready() { n.send(daemon.SdNotifyReady) }

// Stopping says that the drain has begun.
func (n *Notifier) Stopping() { n.send(daemon.SdNotifyStopping) }

// Reloading says that a reload has begun; Ready ends it.
func (n *Notifier) Reloading() {
	n.send(strings.TrimSuffix(daemon.SdNotifyReloading+"\n"+daemon.SdNotifyMonotonicUsec(), "\n"))
}

// Status sets the line `systemctl status` shows.
func (n *Notifier) Status(s string) { n.send("STATUS=" + s) }

// Watchdog pings the service watchdog.
func (n *Notifier) Watchdog() { n.send(daemon.SdNotifyWatchdog) }

// ExtendTimeout asks systemd for d more time to start (or stop).
func (n *Notifier) ExtendTimeout(d time.Duration) {
	n.send(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", d.Microseconds()))
}

// WatchdogInterval returns the watchdog interval systemd set for askrd, or 0.
func WatchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0
	}
	return d
}
