package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// exitCode runs the askr binary (under name) with args and returns its exit status and output.
func exitCode(t *testing.T, name string, env []string, args ...string) (int, string) {
	t.Helper()
	bin := filepath.Join(filepath.Dir(askrdBinary(t)), name)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return 0, string(out)
}

// The seed's command line works verbatim under the name askr, --cow included.
func TestSeedCommandLine(t *testing.T) {
	root := repoRoot(t)
	app := filepath.Join(root, "examples", "hello")
	addr := freeAddr(t)
	cmd := exec.Command(filepath.Join(filepath.Dir(askrdBinary(t)), "askr"), "serve", "--root", filepath.Join(app, "public"),
		"--worker-script", filepath.Join(root, "examples", "hello-worker.php"), "--workers", "8", "--cow", "--listen", addr)
	cmd.Env = append(os.Environ(), "ASKR_APP_BASE="+app)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, URL: "http://" + addr, Addr: addr, cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	t.Cleanup(s.stop)
	s.waitLog("workers ready", 30*time.Second)
	if r := s.get("/"); r.status != 200 || !strings.Contains(r.body, "Hello from askr worker") {
		t.Errorf("the seed's command line: GET / = %d %q", r.status, r.body)
	}
	if !strings.Contains(logs.String(), "mode=cow") || !strings.Contains(logs.String(), "workers=8") {
		t.Errorf("askr serve --cow --workers 8 did not start 8 CoW workers:\n%s", logs.String())
	}
	if code, out := exitCode(t, "askr", nil, "version"); code != 0 || !strings.HasPrefix(out, "askr ") {
		t.Errorf("askr version: %d %q", code, out)
	}
	// Bad flags and bad files: exit 78 with a message that names the problem.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--workers", "0", "--worker-script", "x.php"}, "workers"},
		{[]string{"serve", "--max-body-size", "8Q"}, "8Q"},
		{[]string{"serve", "--worker-script", "/nonexistent/worker.php"}, "/nonexistent/worker.php"},
		{[]string{"serve", "--header-read-timeout", "30x"}, "30x"},
		// Without a worker script askrd serves per request, but CoW mode needs one.
		{[]string{"serve", "--cow", "--listen", "127.0.0.1:0"}, "worker.cow: CoW mode needs a worker script"},
	} {
		code, out := exitCode(t, "askrd", nil, tc.args...)
		if code != 78 || !strings.Contains(out, tc.want) {
			t.Errorf("askrd %v: exit %d, %q; want 78 mentioning %q", tc.args, code, out, tc.want)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[server]\nlisten = \"127.0.0.1:1\"\nworkerz = 4\n"), 0o644)
	if code, out := exitCode(t, "askrd", nil, "config-check", bad); code != 78 || !strings.Contains(out, bad+":3") || !strings.Contains(out, "workerz") {
		t.Errorf("config-check of a file with an unknown key: exit %d, %q; want 78 naming %s:3 and the key", code, out, bad)
	}
	if code, out := exitCode(t, "askrd", nil, "serve", "--config", bad); code != 78 || !strings.Contains(out, bad+":3") {
		t.Errorf("serve --config with an unknown key: exit %d, %q; want 78 naming %s:3", code, out, bad)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and returns the cert and key paths.
func writeCert(t *testing.T) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "askr test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certPath, keyPath
}

func TestTLSAndHTTP2(t *testing.T) {
	cert, key := writeCert(t)
	s := startAskrd(t, opts{args: []string{"--workers", "1"}, config: "[tls]\ncert = \"" + cert + "\"\nkey = \"" + key + "\"\n"})
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: true,
	}}
	resp, err := c.Get("https://" + s.Addr + "/dump")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s; want HTTP/2 over TLS", resp.Proto)
	}
	body := string(b)
	if !strings.Contains(body, `"HTTPS":"on"`) || !strings.Contains(body, `"REQUEST_SCHEME":"https"`) || !strings.Contains(body, `"SERVER_PROTOCOL":"HTTP\/2.0"`) {
		t.Errorf("PHP over TLS did not see HTTPS=on, scheme https and HTTP/2.0: %.400s", body)
	}
	resp, err = c.Get("https://" + s.Addr + "/hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "static hello") {
		t.Errorf("static file over TLS: %d %q", resp.StatusCode, b)
	}
}
