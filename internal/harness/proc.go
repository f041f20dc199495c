// Package harness starts the reference servers askr is compared with — nginx + php-fpm, and a
// private MariaDB for Debian's WordPress — and the servers askr is tested against (pebble, the ACME
// test CA) as children of the calling program, for the integration tests (internal/integration,
// internal/certificate) and the benchmark (cmd/askr-bench) alike.
//
// Everything it starts lives in a directory the caller gives (config, sockets, pid and log files),
// listens only on Unix sockets and 127.0.0.1, and runs in its own process group so that stopping
// it reaches the workers it forked. The system's nginx, php-fpm and MariaDB services and their
// files are never used; the one file written outside that directory is a WordPress site's
// /etc/wordpress/config-<host>.php, removed by WordPressSite.Remove. The package returns errors
// and never calls testing: tests wrap it with t.Fatal and t.Cleanup.
package harness

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Cmd describes a process to Start.
type Cmd struct {
	Name string   // for messages ("php-fpm")
	Path string   // the program
	Args []string // its arguments
	Env  []string // VAR=VALUE added to this process's environment
	// Cred runs the process as another user (nil: as the caller).
	Cred *syscall.Credential
	// Logs are files the process writes; Report shows them with its output.
	Logs []string
}

// Proc is a started process in its own process group, killed if the starting program dies.
type Proc struct {
	name string
	logs []string
	cmd  *exec.Cmd
	out  *Buffer
	done chan struct{}
	err  error
}

// Start starts c. Its standard output and error are kept in memory (Output).
func Start(c Cmd) (*Proc, error) {
	cmd := exec.Command(c.Path, c.Args...)
	if c.Env != nil {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	// Its own group, so that stopping it reaches the workers it forked; killed if we die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: c.Cred}
	p := &Proc{name: c.Name, logs: c.Logs, cmd: cmd, out: &Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.Name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Name is the name given to Start.
func (p *Proc) Name() string { return p.name }

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Output is what the process wrote to its standard output and error so far.
func (p *Proc) Output() string { return p.out.String() }

// Report is the process's output and the contents of its log files, for a failure message.
func (p *Proc) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s output:\n%s", p.name, p.out.String())
	for _, l := range p.logs {
		if c, err := os.ReadFile(l); err == nil {
			fmt.Fprintf(&b, "\n%s:\n%s", l, c)
		}
	}
	return b.String()
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop sends SIGTERM, waits up to grace (then SIGKILL), and kills whatever is left of the group.
// The error says the process had to be killed.
func (p *Proc) Stop(grace time.Duration) error {
	pgid := p.cmd.Process.Pid
	var err error
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			err = fmt.Errorf("%s did not stop within %v of SIGTERM", p.name, grace)
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
	}
	syscall.Kill(-pgid, syscall.SIGKILL) // workers that outlived their master, if any
	return err
}

// WaitUntil polls cond until it holds; the error says the process exited first or timeout passed.
func (p *Proc) WaitUntil(what string, timeout time.Duration, cond func() bool) error {
	exited := false
	ok := Poll(timeout, func() bool {
		if x, _ := p.Exited(); x {
			exited = true
			return true
		}
		return cond()
	})
	switch {
	case exited:
		return fmt.Errorf("%s exited (%v) before %s:\n%s", p.name, p.err, what, p.Report())
	case !ok:
		return fmt.Errorf("%s: not %s within %v:\n%s", p.name, what, timeout, p.Report())
	}
	return nil
}

// Poll calls cond every few milliseconds until it is true (true) or timeout passes (false).
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Dialable reports whether something accepts connections at addr.
func Dialable(network, addr string) bool {
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// FreeAddr returns a 127.0.0.1 address with a port nothing listens on, below the kernel's
// ephemeral range: outgoing connections (a load generator's, other programs') take their local
// ports from that range, so a port picked there can be taken before the server binds it.
func FreeAddr() (string, error) {
	lo, hi := 20000, 32767
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				hi = n - 1
			}
		}
	}
	if hi < lo+1000 {
		lo, hi = 10000, 32767
	}
	for range 100 {
		port := lo + rand.IntN(hi-lo)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			return addr, nil
		}
	}
	return "", errors.New("no free port on 127.0.0.1")
}

// Buffer collects a process's output: an io.Writer that several goroutines may write while
// another reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
