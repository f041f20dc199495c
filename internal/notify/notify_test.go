package notify

import (
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"testing"
)

// Reloading sends RELOADING=1 and one MONOTONIC_USEC= line, as systemd's Type=notify-reload wants.
func TestReloadingMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	New(slog.New(slog.DiscardHandler)).Reloading()
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=[0-9]+$`).MatchString(got) {
		t.Errorf("Reloading sent %q; want RELOADING=1 and one MONOTONIC_USEC= line", got)
	}
}
