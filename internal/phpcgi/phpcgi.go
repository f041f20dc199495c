// Package phpcgi starts php-cgi processes: workers, each with its channel (a socketpair whose far
// end becomes the process's fd 0) and the askr PHP runtime prepended, and, for per-request mode,
// php-cgi in FastCGI mode (a listening socket as fd 0) with the FastCGI conversation it holds. It
// filters the environment, sends the processes' stdout and stderr (and FastCGI STDERR records) to
// the log tagged with their pid, and checks a worker's hello against the kernel's credentials. It
// knows nothing of pools or HTTP.
package phpcgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/askr-php/askr/internal/channel"
)

// Config describes how to start a worker.
type Config struct {
	Binary    string   // php-cgi
	Runtime   string   // path of the askr PHP runtime (auto_prepend_file)
	Extension string   // askr.so, loaded with -d extension= ("": none)
	Script    string   // the worker script
	AppBase   string   // working directory, exported as ASKR_APP_BASE
	INI       []string // "key=value" settings, applied after askr's own
	Env       []string // the environment to pass on (filtered by Start)
	Extra     []string // variables added after filtering (e.g. CoW mode's)
	Paranoid  bool     // workers run the state-bleed detector (ASKR_PARANOID=1)
	SocketDir string   // per-request mode: where the FastCGI processes' sockets go (private to askrd)
	// DeathSignal is the processes' parent-death signal, sent when askrd dies (0: SIGKILL). A CoW
	// template gets SIGTERM, on which it kills the workers it forked before it exits.
	DeathSignal syscall.Signal
	Logger      *slog.Logger
	// RoleLogger is for what StartCLI's processes write, tagged with their role and pid (nil: Logger).
	RoleLogger *slog.Logger
}

// Launcher starts processes from one OS thread that never exits, so that the workers' parent-death
// signal (SIGKILL when askrd dies) fires only when askrd itself is gone.
type Launcher struct {
	cfg  Config
	reqs chan func()
	live sync.Map // pid → struct{}: started and not yet waited for
}

// Owns reports whether pid is a worker this Launcher started and has not yet waited for.
func (l *Launcher) Owns(pid int) bool {
	_, ok := l.live.Load(pid)
	return ok
}

// NewLauncher returns a Launcher for cfg.
func NewLauncher(cfg Config) *Launcher {
	l := &Launcher{cfg: cfg, reqs: make(chan func())}
	go func() {
		runtime.LockOSThread() // never unlocked: the thread must outlive every child
		for f := range l.reqs {
			f()
		}
	}()
	return l
}

// Process is a started php-cgi worker.
type Process struct {
	cmd    *exec.Cmd
	conn   *net.UnixConn     // askrd's end of a worker's channel; nil for a FastCGI process
	ch     *channel.Endpoint // the channel's conversation; nil for a FastCGI process
	pid    int
	log    *slog.Logger // tagged with the pid
	logs   sync.WaitGroup
	tailMu sync.Mutex
	tail   []string // the last lines of output, for boot failure messages
	done   chan struct{}
	err    error
}

// the settings askr needs in every worker; the user's ini lines come after and may change the others.
var baseINI = []string{
	"output_buffering=0",
	"implicit_flush=0",
	"max_execution_time=0",
	"log_errors=1",
	"html_errors=0",
}

// Start starts one worker and returns once its process runs; it does not wait for the hello.
func (l *Launcher) Start() (*Process, error) {
	c := l.cfg
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	// The kernel attaches the sender's pid to what the worker writes first: its hello.
	if err := unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, fmt.Errorf("SO_PASSCRED: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "askr-channel")
	theirs := os.NewFile(uintptr(fds[1]), "askr-channel-worker")
	defer theirs.Close()
	fc, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		theirs.Close()
		return nil, fmt.Errorf("channel: %w", err)
	}
	conn := fc.(*net.UnixConn)

	// -C: stay in AppBase (php-cgi would chdir to the script's directory).
	args := append([]string{"-C"}, c.runtimeArgs(append(append([]string(nil), baseINI...), c.INI...))...)
	args = append(args, c.Script) // not -f: -f implies -q, which marks headers as sent
	cmd := exec.Command(c.Binary, args...)
	cmd.Dir = c.AppBase
	cmd.Env = append(workerEnv(c.Env, c.AppBase, c.Paranoid), c.Extra...)
	cmd.Stdin = theirs
	p, err := l.spawn(cmd, conn, c.Logger)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return p, nil
}

// Spawn starts cmd, a process that is not PHP's (a [[sidecar]]'s keeper), as the launcher starts
// its own: from its thread, so that the parent-death signal cmd.SysProcAttr sets fires only when
// askrd dies; stdout and stderr to log, tagged with its pid; counted by Owns until waited for.
func (l *Launcher) Spawn(cmd *exec.Cmd, log *slog.Logger) (*Process, error) {
	return l.spawn(cmd, nil, log)
}

// runtimeArgs are PHP's -d arguments that prepend the askr runtime, load the extension (if any)
// and set ini, for a worker (php-cgi) and a role process (php-cli) alike.
func (c Config) runtimeArgs(ini []string) []string {
	args := []string{"-d", "auto_prepend_file=" + c.Runtime}
	if c.Extension != "" {
		args = append(args, "-d", "extension="+c.Extension)
	}
	for _, kv := range ini {
		args = append(args, "-d", kv)
	}
	return args
}

// spawn starts cmd from the launcher's thread with its stdout and stderr going to log (tagged
// with its pid) and watches it until it exits. conn is askrd's end of its channel (nil: none).
func (l *Launcher) spawn(cmd *exec.Cmd, conn *net.UnixConn, log *slog.Logger) (*Process, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = outW, outW
	if cmd.SysProcAttr == nil { // StartCLI sets its own
		death := l.cfg.DeathSignal
		if death == 0 {
			death = syscall.SIGKILL
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: death}
	}
	p := &Process{cmd: cmd, conn: conn, done: make(chan struct{})}
	if conn != nil {
		p.ch = channel.NewEndpoint(conn)
	}
	started := make(chan error, 1)
	l.reqs <- func() {
		err := cmd.Start()
		if err == nil {
			l.live.Store(cmd.Process.Pid, struct{}{}) // before the reaper can see it exit
		}
		started <- err
	}
	err = <-started
	outW.Close()
	if err != nil {
		outR.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p.pid = cmd.Process.Pid
	p.log = log.With("pid", p.pid)
	p.logs.Add(1)
	go p.pump(outR, p.log)
	go func() {
		p.err = cmd.Wait()
		l.live.Delete(p.pid)
		if p.ch != nil {
			p.ch.Exited() // a request reading the channel gets what the worker wrote, then end of file
		}
		// Let the last lines be logged before the exit is reported; but a CoW template's children
		// hold the same pipe open, so wait only briefly.
		logged := make(chan struct{})
		go func() { p.logs.Wait(); close(logged) }()
		select {
		case <-logged:
		case <-time.After(100 * time.Millisecond):
		}
		close(p.done)
	}()
	return p, nil
}

func (p *Process) pump(r io.ReadCloser, log *slog.Logger) {
	defer p.logs.Done()
	defer r.Close()
	Pump(r, log, func(line string) {
		p.tailMu.Lock()
		if len(p.tail) == 20 {
			p.tail = p.tail[1:]
		}
		p.tail = append(p.tail, line)
		p.tailMu.Unlock()
	})
}

// Pump logs what a PHP process writes to r, a line at a time, until r ends; a line longer than
// 16 KiB is logged in pieces, so the writer never blocks on a full pipe. PHP's error_log date
// prefix is dropped (the log has its own time); a line repeated over and over (a notice in a loop)
// is logged a few times and then counted. seen, if not nil, gets every line logged.
func Pump(r io.Reader, log *slog.Logger, seen func(string)) {
	br := bufio.NewReaderSize(r, 16<<10)
	var last string
	repeats := 0
	summarize := func() {
		if repeats > maxRepeats {
			log.Warn("previous line repeated", "times", repeats-maxRepeats)
		}
		repeats = 0
	}
	defer summarize()
	var lastPHP string // the last line PHP logged ("PHP Fatal error:  …")
	for {
		b, err := br.ReadSlice('\n')
		if cgiHeader.Match(b) {
			// php-cgi's own CGI headers ("Content-type: …"), printed to stdout when output escaped
			// the runtime's capture buffer: no news, and perhaps a Set-Cookie.
			log.Debug("php-cgi printed a CGI header", "line", strings.TrimRight(string(b), "\r\n"))
			continue
		}
		if line := phpLogDate.ReplaceAllString(strings.TrimRight(string(b), "\r\n"), ""); line != "" {
			if lastPHP != "" && "PHP "+strings.Replace(line, ": ", ":  ", 1) == lastPHP {
				// The same error displayed (display_errors) where the log already has it.
				log.Debug("PHP displayed an error it logged", "line", line)
				continue
			}
			if strings.HasPrefix(line, "PHP ") {
				lastPHP = line
			}
			if line == last {
				repeats++
			} else {
				summarize()
				last = line
			}
			if repeats <= maxRepeats {
				log.Log(context.Background(), levelOf(line), line)
				if seen != nil {
					seen(line)
				}
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// cgiHeader matches a header line as php-cgi prints its CGI headers: one of the fields php-cgi and
// PHP's session and output layers send, ": ", and CRLF. Other "Name: value" lines (an app's or a
// subprocess's) are logged as any line.
var cgiHeader = regexp.MustCompile("^(?i:status|content-type|x-powered-by|set-cookie|location|expires|cache-control|pragma|last-modified): [^\r\n]*\r\n$")

// phpLogDate matches the date PHP puts before each line it writes to an error_log file.
var phpLogDate = regexp.MustCompile(`^\[\d{2}-[A-Za-z]{3}-\d{4} \d{2}:\d{2}:\d{2} [^\]]*\] `)

// maxRepeats is how often one line is logged in a row before the rest are only counted.
const maxRepeats = 3

// levelOf ranks a line from PHP by the error level PHP gave it.
func levelOf(line string) slog.Level {
	for _, l := range []struct {
		prefix string
		level  slog.Level
	}{
		{"PHP Fatal error", slog.LevelError}, {"PHP Parse error", slog.LevelError},
		{"PHP Recoverable fatal error", slog.LevelError},
		{"askr: PHP Fatal error", slog.LevelError},
		{"askr paranoid: ", slog.LevelWarn},                                            // state a request left (--paranoid)
		{"askr: fork safety: ", slog.LevelWarn},                                        // what a CoW template would share ([worker] fork_safety)
		{"PHP Warning:  PHP Startup: Unable to load dynamic library", slog.LevelError}, // e.g. askr.so
		{"PHP Warning", slog.LevelWarn},
		{"PHP Notice", slog.LevelWarn}, {"PHP Deprecated", slog.LevelWarn},
	} {
		if strings.HasPrefix(line, l.prefix) {
			return l.level
		}
	}
	if m := monolog.FindStringSubmatch(line); m != nil {
		switch m[1] {
		case "WARNING":
			return slog.LevelWarn
		case "ERROR", "CRITICAL", "ALERT", "EMERGENCY":
			return slog.LevelError
		}
	}
	return slog.LevelInfo // also Monolog's DEBUG, INFO and NOTICE: an app's line is never hidden
}

// monolog matches the start of a line in Monolog's default format ("[2026-12-06T12:00:00.000000+00:00]
// production.ERROR: …"), as Laravel's and Symfony's stderr channels write it, and captures the level.
var monolog = regexp.MustCompile(`^\[\d{4}-\d{2}-\d{2}[T ][^\]]*\] [\w.-]+\.(DEBUG|INFO|NOTICE|WARNING|ERROR|CRITICAL|ALERT|EMERGENCY): `)

// workerEnv passes askrd's environment on, filtered, and adds the runtime's markers.
func workerEnv(env []string, appBase string, paranoid bool) []string {
	out := append(filterEnv(env), "ASKR_WORKER=1", "ASKR_APP_BASE="+appBase)
	if paranoid {
		out = append(out, "ASKR_PARANOID=1")
	}
	return out
}

// SidecarEnv is the environment of a [[sidecar]] command: askrd's, filtered as the workers' is,
// with ASKR_APP_BASE.
func SidecarEnv(env []string, appBase string) []string {
	return append(filterEnv(env), "ASKR_APP_BASE="+appBase)
}

// filterEnv drops from askrd's environment what belongs to askrd alone (systemd's sockets, notify
// socket and watchdog) and askr's own markers.
func filterEnv(env []string) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "LISTEN_"), strings.HasPrefix(name, "WATCHDOG_"),
			name == "NOTIFY_SOCKET", name == "ASKR_WORKER", name == "ASKR_APP_BASE", name == "ASKR_PARANOID",
			strings.HasPrefix(name, "ASKR_COW"):
			continue
		}
		out = append(out, kv)
	}
	return out
}

// PID returns the process id.
func (p *Process) PID() int { return p.pid }

// Conn returns askrd's end of the worker channel.
func (p *Process) Conn() net.Conn { return p.conn }

// Signal sends sig to the process; nil once it has been waited for.
func (p *Process) Signal(sig syscall.Signal) error {
	err := p.cmd.Process.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// Kill ends the process at once.
func (p *Process) Kill() error { return p.Signal(syscall.SIGKILL) }

// Done is closed once the process has exited and all its output has been logged.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the exit error, valid after Done.
func (p *Process) Err() error { return p.err }

// Tail returns the last lines the process wrote.
func (p *Process) Tail() string {
	p.tailMu.Lock()
	defer p.tailMu.Unlock()
	return strings.Join(p.tail, "\n")
}

// Close closes askrd's end of the channel.
func (p *Process) Close() error { return p.conn.Close() }

// Greet reads the worker's hello and checks that the kernel's credentials for the sender, the pid
// the worker announces and the process askrd started are one and the same.
func (p *Process) Greet(timeout time.Duration) (channel.Hello, error) {
	h, err := p.awaitHello(timeout)
	switch {
	case errors.Is(err, io.EOF):
		err = phrased{"ended before it called askr_handle_request()", err}
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = phrased{"did not call askr_handle_request()", err}
	}
	return h, err
}

// phrased is an error with a text of its own that wraps err.
type phrased struct {
	text string
	err  error
}

func (e phrased) Error() string { return e.text }
func (e phrased) Unwrap() error { return e.err }

// Ping checks that the idle worker answers Pong within timeout (see channel.Endpoint.Ping).
func (p *Process) Ping(timeout time.Duration) error { return p.ch.Ping(timeout) }

// Stop asks the idle worker to leave its loop: askr_handle_request() returns false.
func (p *Process) Stop() error { return p.ch.Stop() }

// Left reports, after the worker exited while idle, whether it said Bye first.
func (p *Process) Left() bool { return p.ch != nil && p.ch.Left() }

// Exchange runs one request on the worker's channel (see channel.Endpoint.Exchange).
func (p *Process) Exchange(payload []byte, resp channel.Response) channel.Result {
	if p.ch == nil {
		return channel.Result{Err: fmt.Errorf("worker pid %d has no channel", p.PID()), Broken: true}
	}
	return p.ch.Exchange(payload, resp)
}

// awaitHello reads the hello.
func (p *Process) awaitHello(timeout time.Duration) (channel.Hello, error) {
	if timeout > 0 {
		p.conn.SetReadDeadline(time.Now().Add(timeout))
		defer p.conn.SetReadDeadline(time.Time{})
	}
	var buf []byte
	var cred *unix.Ucred
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	chunk := make([]byte, 512)
	for {
		n, oobn, _, _, err := p.conn.ReadMsgUnix(chunk, oob)
		if err != nil {
			return channel.Hello{}, err // on a stream socket, no data comes with an error
		}
		if n == 0 {
			return channel.Hello{}, io.EOF
		}
		if cred == nil && oobn > 0 {
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) > 0 {
				cred, _ = unix.ParseUnixCredentials(&msgs[0])
			}
		}
		buf = append(buf, chunk[:n]...)
		if len(buf) < channel.HeaderSize {
			continue
		}
		f, size, err := channel.ParseHeader(buf)
		if err != nil {
			return channel.Hello{}, err
		}
		if f.Type != channel.TypeHello {
			return channel.Hello{}, fmt.Errorf("%w: first frame has type %d, want hello", channel.ErrProtocol, f.Type)
		}
		if len(buf) < channel.HeaderSize+size {
			continue
		}
		if len(buf) > channel.HeaderSize+size {
			return channel.Hello{}, fmt.Errorf("%w: data after hello", channel.ErrProtocol)
		}
		h, err := channel.ParseHello(buf[channel.HeaderSize:])
		if err != nil {
			return channel.Hello{}, err
		}
		if cred == nil || int(cred.Pid) != p.pid || h.PID != p.pid {
			var got int32 = -1
			if cred != nil {
				got = cred.Pid
			}
			return channel.Hello{}, fmt.Errorf("peer check failed: kernel says pid %d, worker says %d, askrd started %d", got, h.PID, p.pid)
		}
		rc, err := p.conn.SyscallConn()
		if err == nil {
			rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 0) })
		}
		return h, nil
	}
}
