package fastcgi

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Helpers that run Debian's php-cgi in FastCGI mode, for the capture step and the live tests.

// phpCGI is a php-cgi process serving FastCGI on a listening Unix socket that is its fd 0.
type phpCGI struct {
	sock   string
	cmd    *exec.Cmd
	out    *lockedBuffer // the process's own stdout and stderr
	exited chan struct{}
}

// lockedBuffer is a bytes.Buffer safe for the process's writers and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startPHPCGI starts php-cgi with a listening socket on fd 0 and env as its whole environment
// (plus PATH); it skips the test if php-cgi is not installed. The process is killed at cleanup.
func startPHPCGI(t testing.TB, env ...string) *phpCGI {
	t.Helper()
	bin, err := exec.LookPath("php-cgi")
	if err != nil {
		t.Skip("php-cgi not installed (run make deps)")
	}
	sock := filepath.Join(t.TempDir(), "php.sock")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: sock}); err != nil {
		unix.Close(fd)
		t.Fatalf("bind %s: %v", sock, err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		unix.Close(fd)
		t.Fatalf("listen: %v", err)
	}
	ln := os.NewFile(uintptr(fd), sock)
	defer ln.Close()

	p := &phpCGI{sock: sock, out: &lockedBuffer{}, exited: make(chan struct{})}
	// exec.Cmd's ExtraFiles start at fd 3; as Stdin an *os.File is passed on as fd 0 itself.
	p.cmd = exec.Command(bin)
	p.cmd.Stdin = ln
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start php-cgi: %v", err)
	}
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("php-cgi output:\n%s", p.out.String())
		}
	})
	return p
}

// dial connects to php-cgi.
func (p *phpCGI) dial(t testing.TB) net.Conn {
	t.Helper()
	nc, err := net.Dial("unix", p.sock)
	if err != nil {
		t.Fatalf("dial php-cgi: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// waitExit waits up to d for php-cgi to exit and reports whether it did.
func (p *phpCGI) waitExit(d time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// cgiParams returns the CGI variables of a request for script (a path) as nginx's fastcgi_params
// give them, then extra name-value pairs.
func cgiParams(script, method, query string, bodyLen int, extra ...string) []Param {
	ps := []Param{
		{"GATEWAY_INTERFACE", "CGI/1.1"},
		{"SERVER_SOFTWARE", "askr"},
		{"SERVER_PROTOCOL", "HTTP/1.1"},
		{"SERVER_NAME", "localhost"},
		{"SERVER_ADDR", "127.0.0.1"},
		{"SERVER_PORT", "80"},
		{"REMOTE_ADDR", "127.0.0.1"},
		{"REMOTE_PORT", "40000"},
		{"REQUEST_METHOD", method},
		{"REQUEST_URI", "/" + filepath.Base(script) + "?" + query},
		{"QUERY_STRING", query},
		{"DOCUMENT_ROOT", filepath.Dir(script)},
		{"SCRIPT_FILENAME", script},
		{"SCRIPT_NAME", "/" + filepath.Base(script)},
	}
	if method == "POST" {
		ps = append(ps, Param{"CONTENT_LENGTH", strconv.Itoa(bodyLen)})
	}
	for i := 0; i+1 < len(extra); i += 2 {
		ps = append(ps, Param{extra[i], extra[i+1]})
	}
	return ps
}

// script returns the absolute path of testdata/name.
func script(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testContext returns a context that ends with the test or after d.
func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
