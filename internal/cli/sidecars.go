package cli

import (
	"log/slog"
	"os"

	"github.com/askr-php/askr/internal/config"
	"github.com/askr-php/askr/internal/phpcgi"
	"github.com/askr-php/askr/internal/sidecar"
)

// newSidecars makes the supervisor of c's [[sidecar]] commands, [queue] workers and [scheduler]
// (nil if there are none). l starts the commands' keepers (its Owns keeps askrd's reaper off
// them); role starts a PHP script in a role process: a fork of the CoW template, or php-cli (see
// mode.role).
func newSidecars(c config.Config, l *phpcgi.Launcher, role func(role, script string) (sidecar.Proc, error), log *slog.Logger) *sidecar.Supervisor {
	var progs []sidecar.Program
	for _, sc := range c.Sidecar {
		progs = append(progs, sidecar.Program{
			Name: sc.Name, Kind: sidecar.KindCommand, Count: sc.Count, OnFailure: sc.Restart == "on-failure", Grace: sc.Grace.D(),
			Launch: sidecar.Command(sidecar.CommandSpec{
				Name: sc.Name, Command: sc.Command, Dir: c.Worker.AppBase, Grace: sc.Grace.D(),
				Env: phpcgi.SidecarEnv(os.Environ(), c.Worker.AppBase), Launcher: l, Logger: log,
			}),
		})
	}
	if q := c.Queue; q.Workers > 0 {
		progs = append(progs, sidecar.Program{
			Name: "queue", Kind: sidecar.KindQueue, Count: q.Workers, Grace: q.Grace.D(),
			Launch: func(int) (sidecar.Proc, error) { return role("queue", q.Script) },
		})
	}
	if s := c.Scheduler; s.Script != "" {
		progs = append(progs, sidecar.Program{
			Name: "scheduler", Kind: sidecar.KindScheduler, Count: 1, Grace: s.Grace.D(), Interval: s.Interval.D(),
			Launch: func(int) (sidecar.Proc, error) { return role("scheduler", s.Script) },
		})
	}
	if len(progs) == 0 {
		return nil
	}
	return sidecar.New(progs, log)
}
