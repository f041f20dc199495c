package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/askr-php/askr/internal/config"
)

// runConfigCheck validates a configuration file and checks what serve needs (config.Check) as
// the user askrd will run as: --user, or for root without it the User= of askr.service if systemd
// knows that unit. Root checks as another user by running askrd config-check as that user.
func runConfigCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("config-check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("user", "", "check as this user, the one askrd serves as (root only; default for root: askr.service's User=)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: askrd config-check [--user NAME] FILE")
		return ExitUsage
	}
	file := fs.Arg(0)
	if *name == "" && os.Geteuid() == 0 {
		if svc := serviceUser(); svc != "" {
			if _, err := user.Lookup(svc); err != nil { // DynamicUser= exists only while the unit runs
				fmt.Fprintf(stderr, "askrd: warning: askr.service runs as %s, who does not exist now (%v); checking as root\n", svc, err)
			} else {
				*name = svc
				fmt.Fprintf(stderr, "askrd: checking as user %s, whom askr.service runs as (--user NAME checks as another)\n", *name)
			}
		}
	}
	if *name != "" {
		if code, done := checkAs(*name, file, stdout, stderr); done {
			return code
		}
	}
	c, err := config.Load(file)
	if err == nil {
		applyEnv(&c)
		err = c.Validate()
	}
	if err == nil {
		err = c.Check()
	}
	if err != nil {
		fmt.Fprintf(stderr, "askrd: %v\n", err)
		return ExitConfig
	}
	for _, n := range c.Notices {
		fmt.Fprintf(stderr, "askrd: warning: %v\n", n)
	}
	as := ""
	if *name != "" {
		as = " for user " + *name
	}
	fmt.Fprintf(stdout, "# %s is valid%s; resolved settings:\n%s", file, as, c.Dump())
	return ExitOK
}

// checkAs runs `askrd config-check --user NAME FILE` as the user NAME, so that the kernel answers
// whether that user can read what serve needs (permissions, ACLs, every directory on the way).
// done is false when the check can run in this process: it already runs as NAME.
func checkAs(name, file string, stdout, stderr io.Writer) (code int, done bool) {
	u, err := user.Lookup(name)
	if err != nil {
		fmt.Fprintf(stderr, "askrd config-check: --user %s: %v\n", name, err)
		return ExitUsage, true
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		fmt.Fprintf(stderr, "askrd config-check: --user %s: uid %q, gid %q are not numbers\n", name, u.Uid, u.Gid)
		return ExitUsage, true
	}
	if int(uid) == os.Geteuid() {
		return 0, false
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(stderr, "askrd config-check: --user %s: only root can check as another user\n", name)
		return ExitUsage, true
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	gids, err := u.GroupIds() // the supplementary groups systemd gives User= too
	if err != nil {
		gids = []string{u.Gid}
	}
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			cred.Groups = append(cred.Groups, uint32(n))
		}
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "askrd config-check: %v\n", err)
		return ExitFailure, true
	}
	if abs, err := filepath.Abs(file); err == nil {
		file = abs // the user may not be able to search the current directory (root's home)
	}
	cmd := exec.Command(exe, "config-check", "--user", name, file)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), true
	case err != nil:
		fmt.Fprintf(stderr, "askrd config-check: cannot run %s as user %s: %v\n", exe, name, err)
		return ExitFailure, true
	}
	return ExitOK, true
}

// serviceUser returns the User= of askr.service when systemd runs this machine and knows the
// unit, else "". It is a variable so that tests can name a user.
var serviceUser = func() string {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return "" // systemd is not running
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemctl", "show", "--property=User", "--value", "askr.service").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
