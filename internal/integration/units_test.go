package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The units pass systemd-analyze verify, and the service's exposure is at most 2.5.
func TestSystemdUnits(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze not found")
		}
		t.Skip("systemd-analyze not installed")
	}
	dir := filepath.Join(repoRoot(t), "packaging", "systemd")
	tmp := t.TempDir()
	bin := askrdBinary(t)
	for _, name := range []string{"askr.socket", "askr.service"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		// verify checks that the binary exists: point it at the one just built.
		os.WriteFile(filepath.Join(tmp, name), []byte(strings.ReplaceAll(string(b), "/usr/bin/askrd", bin)), 0o644)
	}
	cmd := exec.Command("systemd-analyze", "verify", "--man=no", filepath.Join(tmp, "askr.socket"), filepath.Join(tmp, "askr.service"))
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.Command("systemd-analyze", "security", "--offline=yes", filepath.Join(dir, "askr.service")).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for askr.service: ([0-9.]+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("systemd-analyze security: exposure %.1f", score)
	if score > 2.5 {
		t.Errorf("askr.service exposure %.1f; want ≤ 2.5", score)
	}
	svc, _ := os.ReadFile(filepath.Join(dir, "askr.service"))
	for _, want := range []string{"Type=notify", "NotifyAccess=main", "User=www-data", "Group=www-data", "WatchdogSec=",
		"KillMode=mixed", "Restart=on-failure", "RestartPreventExitStatus=78 75\n", "TimeoutStopSec=120"} {
		if !strings.Contains(string(svc), want) {
			t.Errorf("askr.service lacks %s", want)
		}
	}
	if strings.Contains(string(svc), "\nMemoryDenyWriteExecute=") {
		t.Errorf("askr.service sets MemoryDenyWriteExecute, which breaks PCRE's JIT")
	}
	sock, _ := os.ReadFile(filepath.Join(dir, "askr.socket"))
	for _, want := range []string{"ListenStream=80", "FileDescriptorName=http", "Accept=no"} {
		if !strings.Contains(string(sock), want) {
			t.Errorf("askr.socket lacks %s", want)
		}
	}
}
