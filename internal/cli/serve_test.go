package cli

import (
	"reflect"
	"strings"
	"testing"

	"github.com/askr-php/askr/internal/activation"
	"github.com/askr-php/askr/internal/config"
)

// Without systemd: listen alone without a certificate; with one, listen plain and https_listen
// HTTPS, or listen HTTPS plus the redirect-only http_redirect and (with [acme]) acme.http.
func TestAddrs(t *testing.T) {
	tls := config.TLS{SelfSigned: true}
	acme := config.ACME{Enabled: true, Domains: []string{"example.com"}, HTTP: "0.0.0.0:80"}
	tests := []struct {
		name string
		c    config.Config
		want activation.Addrs
	}{
		{"plain", config.Config{Server: config.Server{Listen: ":8000"}}, activation.Addrs{HTTP: ":8000"}},
		{"plain, https_listen ignored", config.Config{Server: config.Server{Listen: ":8000", HTTPSListen: ":8443"}}, activation.Addrs{HTTP: ":8000"}},
		{"tls on listen", config.Config{Server: config.Server{Listen: ":443"}, TLS: tls}, activation.Addrs{HTTPS: ":443"}},
		{"tls and http_redirect", config.Config{Server: config.Server{Listen: ":443", HTTPRedirect: ":80"}, TLS: tls},
			activation.Addrs{HTTPS: ":443", Redirect: []string{":80"}}},
		{"tls and https_listen", config.Config{Server: config.Server{Listen: ":80", HTTPSListen: ":443"}, TLS: tls},
			activation.Addrs{HTTP: ":80", HTTPS: ":443"}},
		{"https_listen and http_redirect elsewhere", config.Config{Server: config.Server{Listen: ":8080", HTTPSListen: ":443", HTTPRedirect: ":80"}, TLS: tls},
			activation.Addrs{HTTP: ":8080", HTTPS: ":443", Redirect: []string{":80"}}},
		{"https_listen and http_redirect = listen", config.Config{Server: config.Server{Listen: ":80", HTTPSListen: ":443", HTTPRedirect: ":80"}, TLS: tls},
			activation.Addrs{HTTP: ":80", HTTPS: ":443"}},
		{"acme", config.Config{Server: config.Server{Listen: "0.0.0.0:443"}, ACME: acme},
			activation.Addrs{HTTPS: "0.0.0.0:443", Redirect: []string{"0.0.0.0:80"}}},
		{"acme, http_redirect = acme.http", config.Config{Server: config.Server{Listen: "0.0.0.0:443", HTTPRedirect: "0.0.0.0:80"}, ACME: acme},
			activation.Addrs{HTTPS: "0.0.0.0:443", Redirect: []string{"0.0.0.0:80"}}},
		{"acme with https_listen: listen answers the challenges", config.Config{Server: config.Server{Listen: "0.0.0.0:80", HTTPSListen: "0.0.0.0:443"}, ACME: acme},
			activation.Addrs{HTTP: "0.0.0.0:80", HTTPS: "0.0.0.0:443"}},
	}
	for _, tt := range tests {
		if got := addrs(tt.c); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: addrs() = %+v; want %+v", tt.name, got, tt.want)
		}
	}
}

// An address askrd would bind twice without systemd is the error of the key that set it, not
// "address already in use".
func TestDistinctAddrs(t *testing.T) {
	tls := config.TLS{SelfSigned: true}
	acme := config.ACME{Enabled: true, Domains: []string{"example.com"}, HTTP: "0.0.0.0:80"}
	tests := []struct {
		name string
		c    config.Config
		want string // "" no error
	}{
		{"acme, listen on :80 too", config.Config{Server: config.Server{Listen: ":80"}, ACME: acme}, `acme.http: "0.0.0.0:80": askrd listens there already for server.listen (listen serves HTTPS`},
		{"http_redirect = listen", config.Config{Server: config.Server{Listen: "127.0.0.1:8443", HTTPRedirect: "127.0.0.1:8443"}, TLS: tls}, `server.http_redirect: "127.0.0.1:8443": askrd listens there already for server.listen`},
		{"https_listen = listen", config.Config{Server: config.Server{Listen: "0.0.0.0:443", HTTPSListen: "0.0.0.0:443"}, TLS: tls}, `server.https_listen: "0.0.0.0:443": askrd listens there already for server.listen;`},
		{"http_redirect = https_listen", config.Config{Server: config.Server{Listen: ":8080", HTTPSListen: "127.0.0.1:443", HTTPRedirect: ":443"}, TLS: tls}, `server.http_redirect: ":443": askrd listens there already for server.https_listen`},
		{"acme apart", config.Config{Server: config.Server{Listen: "0.0.0.0:443"}, ACME: acme}, ""},
		{"two hosts, one port", config.Config{Server: config.Server{Listen: "127.0.0.1:443", HTTPRedirect: "127.0.0.2:443"}, TLS: tls}, ""},
		{"ports 0", config.Config{Server: config.Server{Listen: "127.0.0.1:0", HTTPRedirect: "127.0.0.1:0"}, TLS: tls}, ""},
	}
	for _, tt := range tests {
		err := distinctAddrs(tt.c)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: distinctAddrs() = %v; want nil", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: distinctAddrs() = %v; want %q", tt.name, err, tt.want)
		}
	}
}
