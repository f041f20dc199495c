package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Routing is how nginx maps URLs to PHP.
type Routing int

const (
	// Classic is the usual per-request PHP site, what askrd's per-request mode does too:
	// try_files $uri $uri/ /index.php?$args, any existing .php file runs, PATH_INFO split after
	// ".php".
	Classic Routing = iota
	// FrontController sends every URL that is no file to /index.php, as a worker-mode app wants;
	// only existing .php files run, without PATH_INFO.
	FrontController
)

// Alias serves the URLs under Prefix from Dir instead of the document root, as nginx's alias and
// Apache's Alias do, static files only (PHP there answers 403). Prefix and Dir end in "/".
type Alias struct {
	Prefix, Dir string
}

// NginxFPMOptions configures StartNginxFPM.
type NginxFPMOptions struct {
	Dir     string // where config, sockets, pid and log files go (must exist)
	Root    string // the document root
	Aliases []Alias
	Routing Routing
	// Workers is php-fpm's pm.max_children (pm = static). Default: 4.
	Workers int
	// NginxWorkers is nginx's worker_processes under a master process; 0: one nginx process
	// without a master (master_process off).
	NginxWorkers int
	// ServerName is nginx's server_name, PHP's SERVER_NAME (""; none: PHP sees an empty one).
	ServerName string
	// Verbose keeps an access log and an info-level error log (for a failing test to show);
	// otherwise only warnings are logged (load runs).
	Verbose bool
	// Env are VAR=VALUE pairs, the pool's env[].
	Env []string
	// TCP puts php-fpm on a 127.0.0.1 port instead of a Unix socket in Dir.
	TCP bool
}

// NginxFPM is nginx in front of php-fpm (Debian's nginx-light and php8.2-fpm), both children of
// the caller. php-fpm runs its workers as the caller's user (root: -R) with Debian's php.ini for
// FPM and opcache on; nginx listens on a free port of 127.0.0.1.
type NginxFPM struct {
	URL, Addr  string // "http://127.0.0.1:port", "127.0.0.1:port"
	FPM, Nginx *Proc
	// ErrorLogs are the files where nginx, php-fpm and PHP log warnings and errors.
	ErrorLogs []string
}

// The programs StartNginxFPM runs.
const (
	NginxPath  = "/usr/sbin/nginx"
	PHPFPMPath = "/usr/sbin/php-fpm8.2"
)

// StartNginxFPM starts php-fpm and nginx and waits until both accept connections. The caller
// stops them (Stop).
func StartNginxFPM(o NginxFPMOptions) (*NginxFPM, error) {
	if o.Workers == 0 {
		o.Workers = 4
	}
	if len(o.Aliases) > 0 && o.Routing != Classic {
		return nil, errors.New("nginx aliases need classic routing")
	}
	for _, d := range []string{"body", "fastcgi", "proxy", "scgi", "uwsgi"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	fpmNet, fpmAddr, pass := "unix", filepath.Join(o.Dir, "php-fpm.sock"), ""
	if o.TCP {
		a, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		fpmNet, fpmAddr, pass = "tcp", a, a
	} else {
		pass = "unix:" + fpmAddr
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	s := &NginxFPM{URL: "http://" + addr, Addr: addr, ErrorLogs: []string{
		filepath.Join(o.Dir, "nginx-error.log"), filepath.Join(o.Dir, "php-fpm-error.log"), filepath.Join(o.Dir, "php-fpm-php.log")}}

	fpmConf := filepath.Join(o.Dir, "php-fpm.conf")
	if err := os.WriteFile(fpmConf, []byte(fpmConfig(o, fpmAddr)), 0o644); err != nil {
		return nil, err
	}
	args := []string{"--nodaemonize", "--fpm-config", fpmConf,
		"-d", "opcache.enable=1"} // Debian's default too; set at startup (a pool value would warn)
	if os.Geteuid() == 0 {
		args = append(args, "--allow-to-run-as-root")
	}
	if s.FPM, err = Start(Cmd{Name: "php-fpm", Path: PHPFPMPath, Args: args, Logs: s.ErrorLogs[1:]}); err != nil {
		return nil, err
	}
	if err := s.FPM.WaitUntil("accepting connections on "+fpmAddr, 30*time.Second, func() bool { return Dialable(fpmNet, fpmAddr) }); err != nil {
		s.Stop(10 * time.Second)
		return nil, err
	}

	ngxConf := filepath.Join(o.Dir, "nginx.conf")
	if err := os.WriteFile(ngxConf, []byte(nginxConfig(o, addr, pass)), 0o644); err != nil {
		s.Stop(10 * time.Second)
		return nil, err
	}
	logs := []string{s.ErrorLogs[0]}
	if o.Verbose {
		logs = append(logs, filepath.Join(o.Dir, "nginx-access.log"))
	}
	// -e: the error log before the config is read (else /var/log/nginx/error.log).
	if s.Nginx, err = Start(Cmd{Name: "nginx", Path: NginxPath, Args: []string{"-p", o.Dir, "-e", s.ErrorLogs[0], "-c", ngxConf}, Logs: logs}); err != nil {
		s.Stop(10 * time.Second)
		return nil, err
	}
	if err := s.Nginx.WaitUntil("listening on "+addr, 30*time.Second, func() bool { return Dialable("tcp", addr) }); err != nil {
		s.Stop(10 * time.Second)
		return nil, err
	}
	return s, nil
}

// Stop stops nginx, then php-fpm; the error names one that had to be killed.
func (s *NginxFPM) Stop(grace time.Duration) error {
	var errs []error
	for _, p := range []*Proc{s.Nginx, s.FPM} {
		if p != nil {
			errs = append(errs, p.Stop(grace))
		}
	}
	return errors.Join(errs...)
}

// Procs are the processes started, nginx first.
func (s *NginxFPM) Procs() []*Proc { return []*Proc{s.Nginx, s.FPM} }

// Report is both processes' output and logs, for a failure message.
func (s *NginxFPM) Report() string { return s.Nginx.Report() + "\n" + s.FPM.Report() }

func fpmConfig(o NginxFPMOptions, listen string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `[global]
pid = %[1]s/php-fpm.pid
error_log = %[1]s/php-fpm-error.log
daemonize = no
log_level = notice

[askr]
listen = %[2]s
listen.mode = 0600
listen.backlog = 511
pm = static
pm.max_children = %[3]d
pm.max_requests = 0
catch_workers_output = yes
decorate_workers_output = no
php_admin_value[error_log] = %[1]s/php-fpm-php.log
`, o.Dir, listen, o.Workers)
	if os.Geteuid() == 0 {
		// As askrd's php-cgi workers run; php-fpm needs to be told (and -R).
		b.WriteString("user = root\ngroup = root\n")
	}
	for _, kv := range o.Env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "env[%s] = %s\n", k, v)
	}
	return b.String()
}

// fastcgiParams are Debian's /etc/nginx/fastcgi_params except HTTP_HOST: it sets HTTP_HOST to
// $host, which drops the port, and WordPress builds its URLs from HTTP_HOST. Not set here,
// HTTP_HOST is the request's Host header, as with every other header.
const fastcgiParams = `
            fastcgi_param QUERY_STRING      $query_string;
            fastcgi_param REQUEST_METHOD    $request_method;
            fastcgi_param CONTENT_TYPE      $content_type;
            fastcgi_param CONTENT_LENGTH    $content_length;
            fastcgi_param SCRIPT_NAME       $fastcgi_script_name;
            fastcgi_param SCRIPT_FILENAME   $document_root$fastcgi_script_name;
            fastcgi_param REQUEST_URI       $request_uri;
            fastcgi_param DOCUMENT_URI      $document_uri;
            fastcgi_param DOCUMENT_ROOT     $document_root;
            fastcgi_param SERVER_PROTOCOL   $server_protocol;
            fastcgi_param REQUEST_SCHEME    $scheme;
            fastcgi_param HTTPS             $https if_not_empty;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            fastcgi_param SERVER_SOFTWARE   nginx/$nginx_version;
            fastcgi_param REMOTE_ADDR       $remote_addr;
            fastcgi_param REMOTE_PORT       $remote_port;
            fastcgi_param REMOTE_USER       $remote_user;
            fastcgi_param SERVER_ADDR       $server_addr;
            fastcgi_param SERVER_PORT       $server_port;
            fastcgi_param SERVER_NAME       $server_name;
            fastcgi_param REDIRECT_STATUS   200;
            fastcgi_param HTTP_PROXY        ""; # httpoxy
            fastcgi_index index.php;`

func nginxConfig(o NginxFPMOptions, addr, pass string) string {
	var b strings.Builder
	b.WriteString("daemon off;\n")
	if o.NginxWorkers == 0 {
		b.WriteString("master_process off;\n")
	} else {
		if os.Geteuid() == 0 {
			// the files in the caller's directory are root's: so are nginx's workers
			b.WriteString("user root root;\n")
		}
		fmt.Fprintf(&b, "worker_processes %d;\n", o.NginxWorkers)
	}
	level, access := "warn", "off"
	if o.Verbose {
		level, access = "info", filepath.Join(o.Dir, "nginx-access.log")
	}
	fmt.Fprintf(&b, `pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log %[2]s;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log %[3]s;
    sendfile on;
    keepalive_requests 100000;
    client_max_body_size 64m;
    client_body_temp_path %[1]s/body;
    fastcgi_temp_path %[1]s/fastcgi;
    proxy_temp_path %[1]s/proxy;
    scgi_temp_path %[1]s/scgi;
    uwsgi_temp_path %[1]s/uwsgi;

    server {
        listen %[4]s;
`, o.Dir, level, access, addr)
	if o.ServerName != "" {
		fmt.Fprintf(&b, "        server_name %s;\n", o.ServerName)
	}
	fmt.Fprintf(&b, "        root %s;\n        index index.php index.html;\n", o.Root)
	for _, a := range o.Aliases {
		fmt.Fprintf(&b, `
        location ^~ %s {
            alias %s;
            location ~ \.php$ { return 403; }
        }
`, a.Prefix, a.Dir)
	}
	if o.Routing == Classic {
		b.WriteString(`
        location / {
            try_files $uri $uri/ /index.php?$args;
        }

        location ~ [^/]\.php(/|$) {
            fastcgi_split_path_info ^(.+?\.php)(/.*)$;
            try_files $fastcgi_script_name =404;
            set $path_info $fastcgi_path_info; # try_files resets $fastcgi_path_info
            fastcgi_param PATH_INFO         $path_info;`)
	} else {
		b.WriteString(`
        location / {
            try_files $uri /index.php?$query_string;
        }

        location ~ \.php$ {
            try_files $uri =404;`)
	}
	b.WriteString(fastcgiParams)
	fmt.Fprintf(&b, "\n            fastcgi_pass %s;\n        }\n    }\n}\n", pass)
	return b.String()
}

// NginxVersion is nginx's version ("1.22.1"), or "".
func NginxVersion() string {
	out, _ := exec.Command(NginxPath, "-v").CombinedOutput()
	_, v, _ := strings.Cut(strings.TrimSpace(string(out)), "nginx/")
	return v
}
