package cli

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/activation"
)

// Run failing after it set up [acme] (here: [admin] token_file missing) leaves no certmagic
// cache running: its maintenance goroutine would renew nothing and never end.
func TestRunFailingStopsACMECache(t *testing.T) {
	needPHPCGI(t)
	clearEnv(t)
	c, err := resolveArgs(t, "--listen", "127.0.0.1:0", "--workers", "1", "--root", "testdata/app/public")
	if err != nil {
		t.Fatal(err)
	}
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.ACME.Enabled, c.ACME.Domains, c.ACME.Dir = true, []string{"askr-test.example"}, filepath.Join(t.TempDir(), "acme")
	c.ACME.DirectoryURL = "https://" + dead.Addr().String() + "/dir"
	dead.Close()
	c.Admin.TokenFile = filepath.Join(t.TempDir(), "no-such-token")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	err = Run(context.Background(), c, activation.Listeners{HTTPS: ln}, nil, nil, c.Worker.PHPCGI, nil, log)
	if err == nil || !strings.Contains(err.Error(), "token_file") {
		t.Fatalf("Run() = %v; want the error of admin.token_file", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		if !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "certmagic.(*Cache).maintainAssets") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("certmagic's cache still runs 5s after Run returned")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
