package cli

import (
	"reflect"
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
