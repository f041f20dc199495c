package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// The keys of HTTPS, redirects and proxies: each mistake is an error naming its key, as the
// original's validations of [acme] are.
func TestValidateHTTPS(t *testing.T) {
	dir := appDir(t)
	tls := "[tls]\ncert = \"" + dir + "/app/tls.pem\"\nkey = \"" + dir + "/app/tls.key\"\n"
	acme := "[acme]\nenabled = true\ndomains = [\"example.com\"]\n"
	tests := []struct {
		src, key, want string // want "" : valid
	}{
		{acme, "", ""},
		{"[acme]\nenabled = true\n", "acme.enabled", "needs domains"},
		{"[acme]\ndomains = [\"example.com\"]\n", "acme.domains", "acme.enabled is false"},
		{tls + acme, "acme.enabled", "not together with [tls]"},
		{"[acme]\nenabled = true\ndomains = [\"*.example.com\"]\n", "acme.domains", "wildcard"},
		{"[acme]\nenabled = true\ndomains = [\"example.com:443\"]\n", "acme.domains", "without a port"},
		{"[acme]\nenabled = true\ndomains = [\"https://example.com\"]\n", "acme.domains", "without scheme"},
		{"[acme]\nenabled = true\ndomains = [\"192.0.2.1\"]\n", "acme.domains", "not a host name"},
		{"[acme]\nenabled = true\ndomains = [\"www example.com\"]\n", "acme.domains", "not a host name"},
		{"[acme]\nenabled = true\ndomains = [\"admin@example.com\"]\n", "acme.domains", "not a host name"},
		{"[acme]\nenabled = true\ndomains = [\"example..com\"]\n", "acme.domains", "not a host name"},
		{"[acme]\nenabled = true\ndomains = [\"-example.com\"]\n", "acme.domains", "not a host name"},
		{"[acme]\nenabled = true\ndomains = [\"Example.COM\", \"xn--bcher-kva.example\", \"a-b.example\"]\n", "", ""},
		{acme + "staging = true\ndirectory_url = \"https://ca.example/dir\"\n", "acme.staging", "not together with directory_url"},
		{acme + "directory_url = \"http://ca.example/dir\"\n", "acme.directory_url", "not an https URL"},
		{acme + "http = \"80\"\n", "acme.http", "not host:port"},
		{"[server]\nhttps_listen = \"0.0.0.0:443\"\n", "server.https_listen", "needs a certificate"},
		{"[server]\nhttps_listen = \"0.0.0.0:443\"\n" + tls, "", ""},
		{"[server]\nhttp_redirect = \"0.0.0.0:80\"\n", "server.http_redirect", "needs a certificate"},
		{"[server]\nhttp_redirect = \"0.0.0.0:80\"\n" + acme, "", ""},
		{"[server]\nforce_https = true\n", "server.force_https", "nothing would serve HTTPS"},
		{"[server]\nforce_https = true\ntrusted_proxies = [\"10.0.0.1\"]\n", "", ""},
		{"[server]\nforce_https = true\nhttps = true\n", "", ""},
		{"[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", "server.trusted_proxies", "not an IP address or a CIDR"},
		{"[server]\ntrusted_proxies = [\"proxy.example\"]\n", "server.trusted_proxies", "not an IP address or a CIDR"},
		{"[server]\nproxy_protocol = true\n", "server.proxy_protocol", "needs trusted_proxies"},
		{"[server]\nstatic_immutable = [\"build/\"]\n", "server.static_immutable", "must start with"},
	}
	for _, tt := range tests {
		c, err := Load(writeTOML(t, "[server]\nroot = \""+dir+"/app/public\"\n"+strings.Replace(tt.src, "[server]\n", "", 1)))
		if err != nil {
			t.Fatalf("Load(%q): %v", tt.src, err)
		}
		err = c.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Validate(%q) = %v; want nil", tt.src, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.key+": ") || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("Validate(%q) = %v; want an error about %s saying %q", tt.src, err, tt.key, tt.want)
		}
	}
}

func TestTrustedPrefixes(t *testing.T) {
	s := Server{TrustedProxies: []string{"10.1.2.3", "192.168.7.9/16", "::ffff:127.0.0.1", "2001:db8::/32"}}
	want := []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("2001:db8::/32")}
	if got := s.TrustedPrefixes(); !slices.Equal(got, want) {
		t.Errorf("TrustedPrefixes() = %v; want %v", got, want)
	}
	a := ACME{Domains: []string{"example.com", "www.example.com"}}
	if got := a.ACMEEmail(); got != "admin@example.com" {
		t.Errorf("ACMEEmail() = %q; want admin@example.com", got)
	}
}
