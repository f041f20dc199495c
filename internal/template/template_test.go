package template

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/reaper"
)

// The test binary doubles as the processes that connect to workers.sock: with ASKR_TEMPLATE_PEER
// set it plays one of them instead of running the tests.
func TestMain(m *testing.M) {
	if role := os.Getenv("ASKR_TEMPLATE_PEER"); role != "" {
		os.Exit(peer(role))
	}
	if os.Getenv(asSubreaper) == "1" { // as askrd is: see TestPromotedWorkerOutlivesItsTemplate
		if err := reaper.Become(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	os.Exit(m.Run())
}

// peer plays a process connecting to the socket ASKR_TEMPLATE_SOCKET with ASKR_TEMPLATE_TOKEN:
//   - "worker": says hello with its own pid, then reads until askrd closes the connection and
//     prints "closed".
//   - "liar": the same, but announces its parent's pid.
//   - "orphan": starts a "worker" that first waits to be re-parented away from it, and exits; that
//     process is then no descendant of the test process. It prints its pid.
func peer(role string) int {
	switch role {
	case "orphan":
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "ASKR_TEMPLATE_PEER=worker", "ASKR_TEMPLATE_WAIT_ORPHANED="+strconv.Itoa(os.Getpid()))
		out, err := os.Create(os.Getenv("ASKR_TEMPLATE_ORPHAN_OUT"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Println(cmd.Process.Pid)
		return 0 // without waiting: the child is re-parented
	case "worker", "liar":
	default:
		fmt.Fprintln(os.Stderr, "unknown role", role)
		return 2
	}
	if p, _ := strconv.Atoi(os.Getenv("ASKR_TEMPLATE_WAIT_ORPHANED")); p != 0 {
		deadline := time.Now().Add(10 * time.Second)
		for os.Getppid() == p {
			if time.Now().After(deadline) {
				fmt.Println("never re-parented")
				return 2
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	pid := os.Getpid()
	if role == "liar" {
		pid = os.Getppid()
	}
	c, err := net.Dial("unix", os.Getenv("ASKR_TEMPLATE_SOCKET"))
	if err != nil {
		fmt.Println("dial:", err)
		return 2
	}
	payload := channel.AppendHello(nil, channel.Hello{PID: pid, Token: os.Getenv("ASKR_TEMPLATE_TOKEN"), PHPVersion: "8.2.0"})
	if _, err := c.Write(append(channel.AppendHeader(nil, channel.TypeHello, 0, len(payload)), payload...)); err != nil {
		fmt.Println("write:", err)
		return 2
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		fmt.Println("read:", err)
		return 2
	}
	fmt.Println("closed")
	return 0
}

// TestAdmitRefusesImpostors: a connection to workers.sock is admitted only with a token Start is
// waiting for, from a child of askrd (here: the test process) or of one of its templates, whose
// announced pid is the kernel's. Each impostor is refused (its connection closed, a warning with
// the reason logged) and leaves the token to the real worker, which is still admitted after them.
// Only the template is fake: the socket, the peer credentials, /proc and the pidfd are real, and
// so are the processes that connect.
func TestAdmitRefusesImpostors(t *testing.T) {
	it := &impostors{t: t, logs: &logBuffer{}, dir: t.TempDir()}
	fake := newFakeSystem(t)
	fake.noFork.Store(true) // the test starts the processes that connect
	sys := realSystem(nil)
	sys.start = fake.start
	tm, err := newTemplate(Options{Spare: true, Dir: it.dir, ForkTimeout: 60 * time.Second, Logger: it.logs.logger()}, sys)
	if err != nil {
		t.Fatalf("New() error = %v; want nil", err)
	}
	defer tm.Close()
	it.got = startAsync(tm)
	token := <-fake.template(0).forks

	// A child of askrd with a token no Start is waiting for.
	cmd, out := it.start("worker", strings.Repeat("f", 32))
	it.refused("wrong token", cmd.Process.Pid, "unknown fork token")
	it.closed("wrong token", cmd, out)

	// A child that announces another pid (its parent's) than the kernel's.
	cmd, out = it.start("liar", token)
	it.refused("announced pid not its own", os.Getpid(), fmt.Sprintf("kernel says pid %d", cmd.Process.Pid))
	it.closed("announced pid not its own", cmd, out)

	// A process that is no descendant of askrd: re-parented away before it connects.
	orphanOut := filepath.Join(t.TempDir(), "orphan.out")
	cmd, out = it.start("orphan", token, "ASKR_TEMPLATE_ORPHAN_OUT="+orphanOut)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("orphan's parent: %v %s", err, out.String())
	}
	orphan, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("orphan's parent printed %q", out.String())
	}
	t.Cleanup(func() { syscall.Kill(orphan, syscall.SIGKILL) })
	it.refused("not a descendant", orphan, "not of a template")
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(orphanOut)
		if s := strings.TrimSpace(string(b)); s == "closed" {
			break
		} else if s != "" || time.Now().After(deadline) {
			t.Fatalf("not a descendant: the process said %q; want its connection closed by askrd (\"closed\")", s)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// The token is still there for the real worker.
	cmd, out = it.start("worker", token)
	it.admitted(cmd, out, token)
	if n := strings.Count(it.logs.String(), "refused a worker connection"); n != 3 {
		t.Errorf("%d refusals logged; want 3:\n%s", n, it.logs.String())
	}
}

// impostors runs the processes of TestAdmitRefusesImpostors and checks what becomes of them.
type impostors struct {
	t    *testing.T
	logs *logBuffer
	dir  string
	got  <-chan started // the Start waiting for the token
}

// start starts the test binary as a process connecting to workers.sock (see peer).
func (it *impostors) start(role, tok string, env ...string) (*exec.Cmd, *logBuffer) {
	it.t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "ASKR_TEMPLATE_PEER="+role, "ASKR_TEMPLATE_SOCKET="+socketPath(it.dir), "ASKR_TEMPLATE_TOKEN="+tok)
	cmd.Env = append(cmd.Env, env...)
	out := &logBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		it.t.Fatal(err)
	}
	it.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, out
}

// refused waits for the refusal of the process pid: the warning with want in it, and nothing
// handed to Start.
func (it *impostors) refused(what string, pid int, want string) {
	t := it.t
	t.Helper()
	suffix := " pid=" + strconv.Itoa(pid)
	var line string
	deadline := time.Now().Add(20 * time.Second)
	for line == "" {
		for _, l := range strings.Split(it.logs.String(), "\n") {
			if strings.HasSuffix(l, suffix) {
				line = l
			}
		}
		if line == "" && time.Now().After(deadline) {
			t.Fatalf("%s (pid %d): no refusal logged within 20 s; log:\n%s", what, pid, it.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "refused a worker connection") || !strings.Contains(line, want) {
		t.Errorf("%s: log line %q; want a warning \"refused a worker connection\" with %q", what, line, want)
	}
	select {
	case s := <-it.got:
		t.Errorf("%s: Start() = %+v; want it still waiting", what, s)
		if s.w != nil {
			s.w.Kill()
			s.w.Close()
		}
	default:
	}
}

// closed waits for an impostor to see its connection closed by askrd.
func (it *impostors) closed(what string, cmd *exec.Cmd, out *logBuffer) {
	it.t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || strings.TrimSpace(out.String()) != "closed" {
			it.t.Errorf("%s: %v, output %q; want the connection closed by askrd (\"closed\")", what, err, out.String())
		}
	case <-time.After(20 * time.Second):
		it.t.Errorf("%s: connection still open 20 s after the refusal", what)
	}
}

// admitted waits for Start to return the real worker cmd, then lets go of it and waits for its
// pidfd to say it exited.
func (it *impostors) admitted(cmd *exec.Cmd, out *logBuffer, token string) {
	t := it.t
	t.Helper()
	select {
	case s := <-it.got:
		w := s.w
		if s.err != nil {
			t.Fatalf("Start() error = %v; want the real worker", s.err)
		}
		if w.pid != cmd.Process.Pid || w.hello.Token != token {
			t.Errorf("admitted pid %d token %q; want pid %d token %q", w.pid, w.hello.Token, cmd.Process.Pid, token)
		}
		w.conn.Close() // askrd lets go: the worker sees its connection closed and exits
		it.closed("admitted worker after its connection closed", cmd, out)
		select {
		case <-w.Done():
		case <-time.After(20 * time.Second):
			t.Errorf("Done() not closed 20 s after worker pid %d exited", w.pid)
		}
		w.Close()
	case <-time.After(20 * time.Second):
		t.Fatalf("the real worker (pid %d) was not admitted; log:\n%s", cmd.Process.Pid, it.logs.String())
	}
}
