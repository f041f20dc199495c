package certificate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// certmagic's log reaches askrd's with its level, message and fields; but an error that is only
// askrd stopping (its context canceled: "job failed … context canceled") is no ERROR an admin
// has to look at on every restart while a certificate is pending.
func TestSlogCore(t *testing.T) {
	var buf syncBuffer
	zl := zap.New(slogCore{log: slog.New(slog.NewTextHandler(&buf, nil))}).Named("obtain")
	zl.Error("could not get certificate from issuer", zap.String("identifier", "a.example"), zap.Error(errors.New("urn:ietf:params:acme:error:rejectedIdentifier")))
	zl.Error("job failed", zap.Error(fmt.Errorf("a.example: obtaining certificate: %w", context.Canceled)))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log:\n%s\nwant 2 lines", buf.String())
	}
	if want := `level=ERROR msg="could not get certificate from issuer" logger=obtain error=urn:ietf:params:acme:error:rejectedIdentifier identifier=a.example`; !strings.Contains(lines[0], want) {
		t.Errorf("log line %q; want it to hold %q", lines[0], want)
	}
	if want := `level=INFO msg="job failed" logger=obtain error="a.example: obtaining certificate: context canceled"`; !strings.Contains(lines[1], want) {
		t.Errorf("log line %q; want it to hold %q", lines[1], want)
	}
}
