package integration

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the dashboard's screenshot to docs/dashboard.png")

// chromium returns Debian's chromium, or skips (fails under CI) without it.
func chromium(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium not found (make deps installs it): %v", err)
		}
		t.Skip("chromium not installed (make deps installs it)")
	}
	return bin
}

// render loads url in headless Chromium for a few seconds of the page's time, and returns the DOM
// and the lines Chromium logged for the page's console (errors, uncaught exceptions, failed
// loads); with screenshot, it also writes a PNG of the page there.
func render(t *testing.T, url, screenshot string) (dom string, console []string) {
	t.Helper()
	bin := chromium(t)
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
		"--window-size=1280,760"}
	run := func(extra ...string) (string, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append(append(args, extra...), url)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium %v: %v\n%s", extra, err, stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	dom, logs := run("--dump-dom")
	if screenshot != "" {
		_, more := run("--screenshot=" + screenshot)
		logs += more
	}
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, ":CONSOLE") {
			console = append(console, l)
		}
	}
	return dom, console
}

// The dashboard renders in headless Chromium without a console error and shows the workers,
// through askrd dashboard (the admin socket) and through a TCP admin listener with a token.
func TestDashboard(t *testing.T) {
	chromium(t)
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("dash-token\n"), 0o600)
	tcp := freeAddr(t)
	s := startAskrd(t, opts{args: []string{"--workers", "3"}, config: fmt.Sprintf("[admin]\nlisten = %q\ntoken_file = %q\n", tcp, token)})
	for range 20 {
		s.get("/pid")
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	check := func(t *testing.T, url, screenshot string) {
		wg.Go(func() { s.get("/sleep?s=6&for=dashboard") }) // a busy worker, with its request
		if !poll(10*time.Second, func() bool { return s.adminStatus().Workers.Busy == 1 }) {
			t.Fatal("the sleeping request never reached a worker")
		}
		dom, console := render(t, url, screenshot)
		if len(console) > 0 {
			t.Errorf("the dashboard logged to the console:\n%s", strings.Join(console, "\n"))
		}
		if !strings.Contains(dom, `data-loaded="yes"`) {
			t.Errorf("the dashboard never loaded the status:\n%s", dom)
		}
		for _, pid := range pids(s.adminStatus()) {
			if !strings.Contains(dom, `data-pid="`+strconv.Itoa(pid)+`"`) {
				t.Errorf("the dashboard does not show worker %d", pid)
			}
		}
		for _, want := range []string{"/sleep?s=6&amp;for=dashboard", `class="state busy"`, `class="state idle"`, `class="private"`, `class="shared"`} {
			if !strings.Contains(dom, want) {
				t.Errorf("the dashboard does not show %q", want)
			}
		}
	}
	t.Run("askrd dashboard", func(t *testing.T) {
		url := startDashboard(t, s)
		shot := filepath.Join(t.TempDir(), "dashboard.png")
		check(t, url, shot)
		png, err := os.ReadFile(shot)
		if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
			t.Fatalf("screenshot: %v; want a PNG", err)
		}
		if *updateScreenshot {
			if err := os.WriteFile(filepath.Join(repoRoot(t), "docs", "dashboard.png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("tcp listener", func(t *testing.T) {
		check(t, "http://"+tcp+"/#token=dash-token", "")
	})
}

// startDashboard runs askrd dashboard on s's admin socket until the test ends and returns the URL
// it prints.
func startDashboard(t *testing.T, s *server) string {
	t.Helper()
	cmd := exec.Command(askrdBinary(t), "dashboard", "--socket", s.admin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- line
		io.Copy(io.Discard, out)
	}()
	select {
	case line := <-lines:
		url := regexp.MustCompile(`http://127\.0\.0\.1:\d+/#token=[0-9a-f]+`).FindString(line)
		if url == "" {
			t.Fatalf("askrd dashboard printed %q (stderr %q); want its URL", line, stderr.String())
		}
		return url
	case <-time.After(30 * time.Second):
		t.Fatalf("askrd dashboard printed no URL within 30 s: %s", stderr.String())
	}
	return ""
}
