package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/askr-php/askr/internal/admin"
	"github.com/askr-php/askr/internal/config"
)

// ctl is a command that talks to a running askrd through its admin socket: status, reload,
// recycle, dashboard.
type ctl struct {
	name   string // "status", …, for messages
	fs     *flag.FlagSet
	config *string
	socket *string
	conf   *config.Config // the configuration read, if a file was
	stderr io.Writer
}

func newCtl(name string, stderr io.Writer) *ctl {
	c := &ctl{name: name, fs: flag.NewFlagSet(name, flag.ContinueOnError), stderr: stderr}
	c.fs.SetOutput(stderr)
	c.config = c.fs.String("config", config.DefaultPath, "the configuration askrd runs with, for its [admin] socket")
	c.socket = c.fs.String("socket", "", "the admin socket (default: $ASKR_ADMIN_SOCKET, else [admin] socket of --config)")
	return c
}

// socketPath is --socket, else ASKR_ADMIN_SOCKET, else [admin] socket of --config (the default
// socket if the default file does not exist). A file that cannot be read is an error.
func (c *ctl) socketPath() (string, error) {
	if *c.socket != "" {
		return *c.socket, nil
	}
	if v, ok := os.LookupEnv(adminSocketEnv); ok {
		return v, nil
	}
	if _, err := os.Stat(*c.config); errors.Is(err, fs.ErrNotExist) && *c.config == config.DefaultPath {
		return config.Defaults().Admin.Socket, nil
	}
	conf, err := config.Load(*c.config)
	if err != nil {
		return "", err
	}
	c.conf = &conf
	return conf.Admin.Socket, nil
}

// errNotRunning is a socket nobody answers on.
var errNotRunning = errors.New("no askrd answers")

// do sends a request to the admin socket and returns the answer's status and body. A refusal
// (403) is an error saying why.
func (c *ctl) do(path, method, uri string, timeout time.Duration) (int, []byte, error) {
	if path == "" {
		return 0, nil, fmt.Errorf("%w: no admin socket is configured ([admin] socket = \"\")", errNotRunning)
	}
	req, err := http.NewRequest(method, "http://askrd"+uri, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := admin.Client(path, timeout).Do(req)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return 0, nil, fmt.Errorf("%w on %s: askrd is not running, or serves no admin socket there (its log says why); --socket PATH names another", errNotRunning, path)
		}
		return 0, nil, fmt.Errorf("%s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", path, err)
	}
	if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized {
		return resp.StatusCode, body, errors.New(strings.TrimSpace(string(body)))
	}
	return resp.StatusCode, body, nil
}

// fail prints err as the command's and returns the exit code.
func (c *ctl) fail(err error) int {
	fmt.Fprintf(c.stderr, "askrd %s: %v\n", c.name, err)
	var ce *config.Error
	if errors.As(err, &ce) {
		return ExitConfig
	}
	return ExitFailure
}

// runStatus is `askrd status`: a table of the workers and a summary line, or the JSON.
func runStatus(args []string, stdout, stderr io.Writer) int {
	c := newCtl("status", stderr)
	asJSON := c.fs.Bool("json", false, "print /status?full as JSON")
	if err := c.fs.Parse(args); err != nil || c.fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: askrd status [--config FILE] [--socket PATH] [--json]")
		return ExitUsage
	}
	path, err := c.socketPath()
	if err != nil {
		return c.fail(err)
	}
	code, body, err := c.do(path, http.MethodGet, "/status?full", 10*time.Second)
	if err != nil {
		return c.fail(err)
	}
	if code != http.StatusOK {
		return c.fail(fmt.Errorf("%d %s", code, strings.TrimSpace(string(body))))
	}
	if *asJSON {
		stdout.Write(body)
		return ExitOK
	}
	var st admin.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return c.fail(fmt.Errorf("status: %w", err))
	}
	printStatus(stdout, st)
	return ExitOK
}

// runRecycle is `askrd recycle PID`.
func runRecycle(args []string, stdout, stderr io.Writer) int {
	c := newCtl("recycle", stderr)
	if err := c.fs.Parse(args); err != nil || c.fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: askrd recycle [--config FILE] [--socket PATH] PID")
		return ExitUsage
	}
	pid, err := strconv.Atoi(c.fs.Arg(0))
	if err != nil || pid <= 0 {
		fmt.Fprintf(stderr, "askrd recycle: %q is not a process id\n", c.fs.Arg(0))
		return ExitUsage
	}
	path, err := c.socketPath()
	if err != nil {
		return c.fail(err)
	}
	code, body, err := c.do(path, http.MethodPost, "/workers/"+strconv.Itoa(pid)+"/recycle", 10*time.Second)
	if err != nil {
		return c.fail(err)
	}
	if code != http.StatusOK {
		return c.fail(errors.New(resultError(body, code)))
	}
	fmt.Fprintf(stdout, "worker %d is recycled after its current request; a new one replaces it\n", pid)
	return ExitOK
}

// resultError is the error of an admin API's JSON answer.
func resultError(body []byte, code int) string {
	var r struct{ Error string }
	if json.Unmarshal(body, &r) == nil && r.Error != "" {
		return r.Error
	}
	return fmt.Sprintf("%d %s", code, strings.TrimSpace(string(body)))
}

// runReload is systemd's ExecReload: through the admin socket it asks for a rolling reload (in
// CoW mode: a new template) and waits for the canary's verdict. Without a socket that answers,
// given askrd's PID, it sends SIGHUP in worker mode, and refuses in CoW mode, where SIGHUP drains
// and exits, so that `systemctl reload` never stops the service.
func runReload(args []string, stdout, stderr io.Writer) int {
	c := newCtl("reload", stderr)
	if err := c.fs.Parse(args); err != nil || c.fs.NArg() > 1 {
		fmt.Fprintln(stderr, "usage: askrd reload [--config FILE] [--socket PATH] [PID]")
		return ExitUsage
	}
	pid := 0
	if c.fs.NArg() == 1 {
		var err error
		if pid, err = strconv.Atoi(c.fs.Arg(0)); err != nil || pid <= 1 {
			fmt.Fprintf(stderr, "askrd reload: %q is not a process id\n", c.fs.Arg(0))
			return ExitUsage
		}
	}
	path, err := c.socketPath()
	if err != nil {
		fmt.Fprintf(stderr, "askrd reload: %v\n", err)
		return ExitConfig
	}
	if pid > 0 {
		// The socket must be askrd pid's: another askrd with the same [admin] socket keeps its own
		// and this one serves none, and reloading that one instead would report a false success.
		if owner, err := admin.ServerPID(path); err == nil && owner != pid {
			return c.fail(fmt.Errorf("the admin socket %s is served by askrd %d, not %d: give each askrd its own [admin] socket", path, owner, pid))
		}
	}
	code, body, err := c.do(path, http.MethodPost, "/reload", 0) // as long as the canary takes
	switch {
	case errors.Is(err, errNotRunning) && pid > 0:
		return reloadBySignal(c, pid, stdout, stderr)
	case err != nil:
		return c.fail(err)
	case code != http.StatusOK:
		return c.fail(errors.New(resultError(body, code)))
	}
	fmt.Fprintln(stdout, reloadedLine(body))
	return ExitOK
}

// reloadedLine is what askrd reload prints when the reload succeeded: the generation that serves
// now, and the canary's verdict.
func reloadedLine(body []byte) string {
	var r struct {
		Generation int64
		Rollout    struct{ State, Detail string }
	}
	json.Unmarshal(body, &r)
	line := "askrd: reloaded: the new workers serve"
	if r.Generation > 0 {
		line += fmt.Sprintf(" (generation %d)", r.Generation)
	}
	switch r.Rollout.State {
	case "inconclusive":
		line += "; canary inconclusive, rolled on"
	case "rolling", "ok":
		line += "; canary passed, the old workers follow one at a time"
	}
	if r.Rollout.Detail != "" {
		line += ": " + r.Rollout.Detail
	}
	return line
}

// reloadBySignal sends askrd pid SIGHUP, unless its configuration runs CoW mode.
func reloadBySignal(c *ctl, pid int, stdout, stderr io.Writer) int {
	conf := c.conf
	if conf == nil {
		loaded, err := config.Load(*c.config)
		if err != nil {
			fmt.Fprintf(stderr, "askrd reload: %v\n", err)
			return ExitConfig
		}
		conf = &loaded
	}
	if conf.Worker.Cow {
		fmt.Fprintf(stderr, "askrd reload: no admin socket answers, and in CoW mode (cow = true in %s) SIGHUP would drain and stop askrd: a CoW reload needs the admin socket ([admin] socket). Restart instead: systemctl restart askr\n", *c.config)
		return ExitFailure
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		fmt.Fprintf(stderr, "askrd reload: signal %d: %v\n", pid, err)
		return ExitFailure
	}
	fmt.Fprintf(stdout, "askrd %d: rolling reload started (SIGHUP: no admin socket answers); see its log for the canary's result\n", pid)
	return ExitOK
}
