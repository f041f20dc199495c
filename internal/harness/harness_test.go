package harness

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNginxConfig(t *testing.T) {
	tests := []struct {
		name      string
		o         NginxFPMOptions
		want, not []string
	}{
		{"classic, test style", NginxFPMOptions{Dir: "/d", Root: "/srv", Routing: Classic, ServerName: "localhost", Verbose: true,
			Aliases: []Alias{{"/wp-content/", "/var/lib/wp/"}}},
			[]string{"master_process off;", "try_files $uri $uri/ /index.php?$args;", "fastcgi_param PATH_INFO         $path_info;",
				"server_name localhost;", "access_log /d/nginx-access.log;", "error_log /d/nginx-error.log info;",
				"location ^~ /wp-content/ {\n            alias /var/lib/wp/;", "fastcgi_pass unix:/d/php-fpm.sock;", "root /srv;"},
			[]string{"worker_processes", "HTTP_HOST"}},
		{"front controller, bench style", NginxFPMOptions{Dir: "/d", Root: "/app", Routing: FrontController, NginxWorkers: 2},
			[]string{"worker_processes 2;", "try_files $uri /index.php?$query_string;", "location ~ \\.php$ {", "access_log off;",
				"error_log /d/nginx-error.log warn;", "keepalive_requests 100000;"},
			[]string{"master_process off;", "PATH_INFO", "\n        server_name", "fastcgi_split_path_info"}},
	}
	for _, tt := range tests {
		conf := nginxConfig(tt.o, "127.0.0.1:20001", "unix:/d/php-fpm.sock")
		for _, w := range tt.want {
			if !strings.Contains(conf, w) {
				t.Errorf("nginxConfig(%s) lacks %q:\n%s", tt.name, w, conf)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(conf, n) {
				t.Errorf("nginxConfig(%s) has %q:\n%s", tt.name, n, conf)
			}
		}
	}
}

func TestFPMConfig(t *testing.T) {
	conf := fpmConfig(NginxFPMOptions{Dir: "/d", Workers: 3, Env: []string{"ASKR_APP_BASE=/x=y"}}, "/d/php-fpm.sock")
	for _, w := range []string{"listen = /d/php-fpm.sock\n", "pm = static\n", "pm.max_children = 3\n", "env[ASKR_APP_BASE] = /x=y\n",
		"php_admin_value[error_log] = /d/php-fpm-php.log\n"} {
		if !strings.Contains(conf, w) {
			t.Errorf("fpmConfig lacks %q:\n%s", w, conf)
		}
	}
	if root := strings.Contains(conf, "user = root"); root != (os.Geteuid() == 0) {
		t.Errorf("fpmConfig: user = root is there: %v; want it only when running as root", root)
	}
}

func TestStartNginxFPMRefusesAliasesWithoutClassicRouting(t *testing.T) {
	_, err := StartNginxFPM(NginxFPMOptions{Dir: t.TempDir(), Root: "/", Routing: FrontController, Aliases: []Alias{{"/a/", "/b/"}}})
	if err == nil || !strings.Contains(err.Error(), "classic routing") {
		t.Errorf("StartNginxFPM(front controller with an alias) error = %v; want one about classic routing", err)
	}
}

// TestProc runs real processes: one that exits before its condition holds, one stopped by SIGTERM,
// one that ignores SIGTERM and is killed after the grace period.
func TestProc(t *testing.T) {
	p, err := Start(Cmd{Name: "false", Path: "/bin/sh", Args: []string{"-c", "echo bye; exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitUntil("never", 10*time.Second, func() bool { return false })
	if err == nil || !strings.Contains(err.Error(), "false exited (exit status 3) before never") || !strings.Contains(err.Error(), "bye") {
		t.Errorf("WaitUntil on an exiting process error = %v; want its exit and output", err)
	}

	p, err = Start(Cmd{Name: "sleep", Path: "/bin/sleep", Args: []string{"60"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitUntil("true", time.Second, func() bool { return true }); err != nil {
		t.Errorf("WaitUntil(true) error = %v; want nil", err)
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("Stop(sleep) error = %v; want nil", err)
	}
	if x, _ := p.Exited(); !x {
		t.Errorf("sleep still runs after Stop")
	}

	p, err = Start(Cmd{Name: "stubborn", Path: "/bin/sh", Args: []string{"-c", "trap '' TERM; echo ready; sleep 60 & wait"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitUntil("ready", 10*time.Second, func() bool { return strings.Contains(p.Output(), "ready") }); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(200 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "did not stop") {
		t.Errorf("Stop(a process ignoring SIGTERM) error = %v; want it to say it was killed", err)
	}
}

func TestFreeAddr(t *testing.T) {
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	if host != "127.0.0.1" || n < 10000 || n > 32767 {
		t.Errorf("FreeAddr() = %s; want 127.0.0.1 and a port in 10000-32767", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on FreeAddr() %s: %v", addr, err)
	}
	ln.Close()
}
