package backtrace

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/harness"
)

// slowScript is testdata/slow.php, absolute, and its text.
func slowScript(t *testing.T) (string, string) {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "slow.php"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, string(b)
}

// lineOf is the number of the line of text that holds marker.
func lineOf(t *testing.T, text, marker string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, marker) {
			return i + 1
		}
	}
	t.Fatalf("no line holds %q", marker)
	return 0
}

// startSlow runs testdata/slow.php in php-cgi (CGI mode) with SLOW_MODE=mode; it is killed when
// the test ends.
func startSlow(t *testing.T, mode string, env ...string) *exec.Cmd {
	t.Helper()
	script, _ := slowScript(t)
	cmd := exec.Command(need(t, "php-cgi"), "-d", "max_execution_time=0", "-f", script)
	cmd.Env = append(os.Environ(), append(env, "SLOW_MODE="+mode)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// waitStack reads pid's stack until ok accepts it, for up to 10 s, and returns the last read.
func waitStack(t *testing.T, r *Reader, pid int, ok func(Stack) bool) Stack {
	t.Helper()
	var s Stack
	var err error
	if !harness.Poll(10*time.Second, func() bool { s, err = r.Read(pid); return err == nil && ok(s) }) {
		t.Fatalf("Read(%d) = %v, %v; want the stack of slow.php:\n%s", pid, err, s.Note, s)
	}
	return s
}

// wantFrames checks the frames of s against want, from the innermost out; a zero Line in want
// accepts any line.
func wantFrames(t *testing.T, s Stack, want []Frame) {
	t.Helper()
	if len(s.Frames) != len(want) || s.Note != "" {
		t.Fatalf("stack:\n%s\nwant %d frames and no note", s, len(want))
	}
	for i, w := range want {
		g := s.Frames[i]
		if g.Function != w.Function || g.File != w.File || (w.Line != 0 && g.Line != w.Line) || g.Addr == 0 {
			t.Errorf("frame %d = %+v; want %+v", i, g, w)
		}
	}
}

// A process blocked in sleep(): its stack is sleep() in the method that called it, with the
// file and line of each user frame, and reading it does not wake the sleep.
func TestReadSleeping(t *testing.T) {
	script, text := slowScript(t)
	cmd := startSlow(t, "sleep")
	r := NewReader()
	s := waitStack(t, r, cmd.Process.Pid, func(s Stack) bool { return len(s.Frames) > 0 && s.Frames[0].Function == "sleep" })
	wantFrames(t, s, []Frame{
		{Function: "sleep"},
		{Function: "Slow->slow_function_name", File: script, Line: lineOf(t, text, "SLEEP LINE")},
		{Function: "outer", File: script, Line: lineOf(t, text, "CALL LINE")},
		{Function: "{main}", File: script, Line: lineOf(t, text, "outer($mode);")},
	})
	want := fmt.Sprintf("[0x%016x] sleep()\n[0x%016x] Slow->slow_function_name() %s:%d", s.Frames[0].Addr, s.Frames[1].Addr, script, lineOf(t, text, "SLEEP LINE"))
	if got := s.String(); !strings.HasPrefix(got, want+"\n") {
		t.Errorf("String() =\n%s\nwant it to begin with\n%s", got, want)
	}
	// Reading again, many times, leaves the process asleep in the same place.
	for range 50 {
		if again, err := r.Read(cmd.Process.Pid); err != nil || again.String() != s.String() {
			t.Fatalf("Read again = %v\n%s\nwant\n%s", err, again, s)
		}
	}
	if st := state(t, cmd.Process.Pid); st != "S" {
		t.Errorf("process state %q after the reads; want S (still in sleep())", st)
	}
}

// state is the process's state letter from /proc/PID/stat.
func state(t *testing.T, pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	_, after, _ := strings.Cut(string(b), ") ")
	return after[:1]
}

// A process spinning in a PHP loop (no call inside it) is read while it runs. PHP keeps the
// current opline of a running frame in a register, so its line is unknown (0) or one saved
// earlier in that function: a line of the function, not necessarily the loop's.
func TestReadSpinning(t *testing.T) {
	script, text := slowScript(t)
	cmd := startSlow(t, "spin")
	s := waitStack(t, NewReader(), cmd.Process.Pid, func(s Stack) bool {
		return len(s.Frames) > 0 && s.Frames[0].Function == "Slow->slow_function_name"
	})
	wantFrames(t, s, []Frame{
		{Function: "Slow->slow_function_name", File: script},
		{Function: "outer", File: script, Line: lineOf(t, text, "CALL LINE")},
		{Function: "{main}", File: script, Line: lineOf(t, text, "outer($mode);")},
	})
	first, last := lineOf(t, text, "public function slow_function_name"), lineOf(t, text, "$x++;")+1
	if l := s.Frames[0].Line; l != 0 && (l < first || l > last) {
		t.Errorf("spinning frame's line %d; want 0 or one of slow_function_name's, %d to %d", l, first, last)
	}
	if st := state(t, cmd.Process.Pid); st != "R" {
		t.Errorf("process state %q; want R (spinning)", st)
	}
}

// A forked php-cgi (as a CoW worker is) is read the same way: its executable is its parent's.
func TestReadForkedChild(t *testing.T) {
	script, text := slowScript(t)
	pidfile := filepath.Join(t.TempDir(), "pid")
	startSlow(t, "fork", "SLOW_PIDFILE="+pidfile)
	var pid int
	if !harness.Poll(10*time.Second, func() bool {
		b, err := os.ReadFile(pidfile)
		pid, _ = strconv.Atoi(string(b))
		return err == nil && pid > 0
	}) {
		t.Fatal("the forked child's pid never came")
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	s := waitStack(t, NewReader(), pid, func(s Stack) bool { return len(s.Frames) > 0 && s.Frames[0].Function == "sleep" })
	wantFrames(t, s, []Frame{
		{Function: "sleep"},
		{Function: "Slow->slow_function_name", File: script, Line: lineOf(t, text, "SLEEP LINE")},
		{Function: "outer", File: script, Line: lineOf(t, text, "CALL LINE")},
		{Function: "{main}", File: script, Line: lineOf(t, text, "outer('sleep');")},
	})
}

// A deep stack is read to its innermost 64 frames, and says so.
func TestReadDeep(t *testing.T) {
	cmd := startSlow(t, "deep")
	s := waitStack(t, NewReader(), cmd.Process.Pid, func(s Stack) bool { return len(s.Frames) > 0 && s.Frames[0].Function == "sleep" })
	if len(s.Frames) != maxFrames || s.Note != "only the innermost 64 frames" {
		t.Fatalf("stack of %d frames, note %q; want %d and the note", len(s.Frames), s.Note, maxFrames)
	}
	for i, f := range s.Frames[1:] {
		if f.Function != "deep" {
			t.Fatalf("frame %d is %q; want deep", i+1, f.Function)
		}
	}
	if !strings.HasSuffix(s.String(), "\n(only the innermost 64 frames)") {
		t.Errorf("String() ends %q; want the note on a line of its own", s.String()[len(s.String())-60:])
	}
}

// A process that is not PHP has no stack to read, and says which PHP (none) it found.
func TestReadNotPHP(t *testing.T) {
	cmd := exec.Command(need(t, "sleep"), "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	_, err := NewReader().Read(cmd.Process.Pid)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "PHP unknown") {
		t.Errorf("Read(sleep) error = %v; want ErrUnsupported naming PHP unknown", err)
	}
}

// A process that is gone gives an error, not a stack.
func TestReadGone(t *testing.T) {
	cmd := exec.Command(need(t, "true"))
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if s, err := NewReader().Read(cmd.Process.Pid); err == nil {
		t.Errorf("Read(exited pid) = %s, nil; want an error", s)
	}
}

func TestParseMapsLine(t *testing.T) {
	r, ok := parseMapsLine("55d0c8e00000-55d0c8e7c000 r--p 00001000 fd:01 1234   /usr/bin/php-cgi8.2 (deleted)")
	want := region{start: 0x55d0c8e00000, end: 0x55d0c8e7c000, readable: true, offset: 0x1000, dev: 0xfd01, ino: 1234}
	if !ok || r != want {
		t.Errorf("parseMapsLine = %+v, %v; want %+v", r, ok, want)
	}
	r, ok = parseMapsLine("7ffd1000-7ffd2000 ---p 00000000 00:00 0")
	if !ok || r.readable || r.dev != 0 {
		t.Errorf("parseMapsLine(anonymous, unreadable) = %+v, %v", r, ok)
	}
	if _, ok := parseMapsLine("garbage"); ok {
		t.Error("parseMapsLine(garbage) ok")
	}
}

func TestPrintable(t *testing.T) {
	if got := printable([]byte("a\nb\xffc\x7f")); got != "a\uFFFDb\uFFFDc\uFFFD" {
		t.Errorf("printable = %q", got)
	}
}

// Check knows Debian's php-cgi, and says why for an executable that is not PHP.
func TestCheck(t *testing.T) {
	r := NewReader()
	if err := r.Check(need(t, "php-cgi")); err != nil {
		t.Errorf("Check(php-cgi) = %v; want nil", err)
	}
	if err := r.Check(need(t, "sh")); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Check(sh) = %v; want ErrUnsupported", err)
	}
	if err := r.Check("/nonexistent/php-cgi"); err == nil || errors.Is(err, ErrUnsupported) {
		t.Errorf("Check(missing) = %v; want a not-found error", err)
	}
}

// What one slow request costs askrd: one Read of a sleeping php-cgi.
func BenchmarkRead(b *testing.B) {
	script, err := filepath.Abs(filepath.Join("testdata", "slow.php"))
	if err != nil {
		b.Fatal(err)
	}
	bin, err := exec.LookPath("php-cgi")
	if err != nil {
		b.Skip("php-cgi not installed")
	}
	cmd := exec.Command(bin, "-d", "max_execution_time=0", "-f", script)
	cmd.Env = append(os.Environ(), "SLOW_MODE=sleep")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	r := NewReader()
	if !harness.Poll(10*time.Second, func() bool { s, err := r.Read(cmd.Process.Pid); return err == nil && len(s.Frames) == 4 }) {
		b.Fatal("php-cgi never slept in slow.php")
	}
	b.ResetTimer()
	for range b.N {
		if _, err := r.Read(cmd.Process.Pid); err != nil {
			b.Fatal(err)
		}
	}
}

// A stack that changes all the time (calls and returns without end) is read many times: every
// read is the script's own frames, or as far as it went with a note, never anything else.
func TestReadChangingStack(t *testing.T) {
	script, _ := slowScript(t)
	cmd := startSlow(t, "churn")
	r := NewReader()
	known := map[string]bool{"churn": true, "strlen": true, "str_repeat": true, "mt_rand": true, "{main}": true}
	waitStack(t, r, cmd.Process.Pid, func(s Stack) bool { return len(s.Frames) > 2 })
	const reads = 300
	notes := 0
	for range reads {
		s, err := r.Read(cmd.Process.Pid)
		if err != nil {
			t.Fatalf("Read = %v", err)
		}
		if s.Note != "" {
			notes++
		}
		for i, f := range s.Frames {
			user := f.Function != "strlen" && f.Function != "str_repeat" && f.Function != "mt_rand"
			if !known[f.Function] || user != (f.File == script) || (f.Line != 0) != user || f.Line > 60 {
				t.Fatalf("frame %d of\n%s\nis not one of the script's", i, s)
			}
		}
		if n := len(s.Frames); s.Note == "" && (n == 0 || s.Frames[n-1].Function != "{main}") {
			t.Fatalf("stack without a note that does not end at {main}:\n%s", s)
		}
	}
	if notes > reads/2 {
		t.Errorf("%d of %d reads had a note; want most of them whole (a torn walk is tried again)", notes, reads)
	}
}

// askrd under systemd runs as www-data without any capability and with no_new_privs
// (packaging/systemd/askr.service): it reads its own workers' memory as their owner, with no
// CAP_SYS_PTRACE. Run as root, this test runs the read tests again that way (setpriv); run as
// another user, they ran that way already.
func TestReadWithoutPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: the other tests ran without privileges")
	}
	setpriv := need(t, "setpriv")
	u, err := user.Lookup("www-data")
	if err != nil {
		t.Skipf("no www-data user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// The test binary, where www-data may run it (go test's build directory is root's alone).
	dir, err := os.MkdirTemp("", "backtrace-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "backtrace.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := errors.Join(os.Chmod(dir, 0o755), os.Mkdir(tmp, 0o700), os.Chown(tmp, uid, gid)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid", "www-data", "--regid", "www-data", "--clear-groups",
		"--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
		bin, "-test.run", "^(TestReadSleeping|TestReadSpinning|TestReadForkedChild)$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "HOME="+tmp, "TMPDIR="+tmp)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the read tests as www-data without capabilities: %v\n%s", err, out)
	}
	for _, name := range []string{"TestReadSleeping", "TestReadSpinning", "TestReadForkedChild"} {
		if !strings.Contains(string(out), "--- PASS: "+name) {
			t.Errorf("as www-data, %s did not pass:\n%s", name, out)
		}
	}
}

// The executable's mapping is found by its inode even when /proc/PID/maps shows another device
// than stat does (btrfs subvolumes, some overlayfs kernels); the device only breaks a tie.
func TestLoadBaseByInode(t *testing.T) {
	k := fileKey{dev: 0x2f, ino: 42}
	rs := []region{{start: 0x1000, offset: 0x1000, dev: 0x2f, ino: 42}, {start: 0x5000, offset: 0, dev: 0x801, ino: 42}}
	if base, ok := loadBase(rs, k); !ok || base != 0x5000 {
		t.Errorf("loadBase with maps' device differing = %#x, %v; want 0x5000", base, ok)
	}
	rs = append(rs, region{start: 0x9000, offset: 0, dev: 0x2f, ino: 42})
	if base, ok := loadBase(rs, k); !ok || base != 0x9000 {
		t.Errorf("loadBase with the same device present = %#x, %v; want 0x9000", base, ok)
	}
	if _, ok := loadBase(rs[:1], k); ok {
		t.Error("loadBase without a mapping at offset 0 found one")
	}
}
