// Package cli owns askrd's command line: the subcommands (serve, config-check, version, and status,
// reload, recycle and dashboard, which talk to askrd's admin socket), the
// flags of the original askr, how flags, the config file and the environment combine, and the exit
// codes. It wires the other packages together for `serve`; it holds no server logic of its own.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/askr-php/askr/internal/config"
	"github.com/askr-php/askr/internal/journal"
	"github.com/askr-php/askr/internal/sidecar"
	"github.com/askr-php/askr/internal/version"
)

// Exit codes. Units use ExitConfig (EX_CONFIG) to refuse restarting a daemon whose configuration is wrong.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 64 // EX_USAGE
	// ExitDrainCut (EX_TEMPFAIL) ends a drain that shutdown_timeout cut short: requests that
	// waited for a worker got 503, requests still running were cut.
	ExitDrainCut = 75
	ExitConfig   = 78 // EX_CONFIG
)

// Main runs askrd with args (without the program name) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		switch a := args[0]; {
		case a == "--version", a == "-h", a == "-help", a == "--help", !strings.HasPrefix(a, "-"):
			cmd, args = a, args[1:]
		}
	}
	switch cmd {
	case sidecar.KeeperCommand: // hidden: askrd runs itself as a [[sidecar]] command's keeper
		return sidecar.Keeper(args)
	case "serve":
		return runServe(args, stdout, stderr)
	case "config-check":
		return runConfigCheck(args, stdout, stderr)
	case "reload":
		return runReload(args, stdout, stderr)
	case "status":
		return runStatus(args, stdout, stderr)
	case "recycle":
		return runRecycle(args, stdout, stderr)
	case "dashboard":
		return runDashboard(args, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "askr %s\n", version.Version)
		return ExitOK
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return ExitOK
	}
	fmt.Fprintf(stderr, "askrd: unknown command %q\n", cmd)
	usage(stderr)
	return ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  askrd [serve] [flags]        serve PHP (without flags: --config /etc/askr.toml)
  askrd config-check [--user NAME] FILE
                               validate FILE, check what serve needs as the user
                               it runs as, and print the resolved settings
  askrd status [--config FILE] [--socket PATH] [--json]
                               the workers and what they do, through the admin socket
  askrd reload [--config FILE] [--socket PATH] [PID]
                               a rolling reload through the admin socket, waiting for its
                               result; without one that answers, SIGHUP to PID (refused in
                               CoW mode, where SIGHUP would stop askrd)
  askrd recycle [--config FILE] [--socket PATH] PID
                               replace the worker PID after its current request
  askrd dashboard [--listen 127.0.0.1:0]
                               serve the dashboard on loopback and print its URL
  askrd version                print the version
run "askrd serve -h" for the serve flags
`)
}

func runServe(args []string, stdout, stderr io.Writer) int {
	f := newServeFlags(stderr)
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if f.fs.NArg() > 0 {
		fmt.Fprintf(stderr, "askrd serve: unexpected argument %q\n", f.fs.Arg(0))
		return ExitUsage
	}
	c, err := f.resolve(args, f.fs.NFlag() == 0)
	if err != nil {
		fmt.Fprintf(stderr, "askrd: configuration error: %v\n", err)
		return ExitConfig
	}
	tuneRuntime()
	log := newLogger(stderr)
	for _, n := range c.Notices {
		log.Warn(n.Msg, "key", n.Key, "at", fmt.Sprintf("%s:%d", n.File, n.Line))
	}
	ctx, reload, reopen, stop := signals(c.Worker.Cow, log)
	defer stop()
	if err := serve(ctx, c, reload, reopen, log); err != nil {
		if errors.Is(err, errDrainCut) {
			return ExitDrainCut // Run has logged what was cut
		}
		log.Error("askrd failed", "err", err)
		var ce *config.Error
		if errors.As(err, &ce) {
			return ExitConfig
		}
		return ExitFailure
	}
	return ExitOK
}

// newLogger logs to w as text; when w is stderr and stderr goes to the journal (askrd runs as a
// systemd service), to the journal with each line's level as its priority and its attributes as
// fields, the text the same but for the time.
func newLogger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if strings.EqualFold(os.Getenv("ASKR_LOG"), "debug") {
		level = slog.LevelDebug
	}
	if w == io.Writer(os.Stderr) && journal.StderrIsSink() {
		return slog.New(journal.NewHandler(journal.Options{Level: level, Identifier: "askrd", Fallback: w}))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
