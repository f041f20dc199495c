package config

import (
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// ACMEEmail is the contact address of the ACME account: email, else admin@ the first domain.
func (a *ACME) ACMEEmail() string {
	if a.Email != "" || len(a.Domains) == 0 {
		return a.Email
	}
	return "admin@" + a.Domains[0]
}

// TrustedPrefixes returns trusted_proxies as prefixes (an address alone is a /32 or /128).
// Validate has checked them.
func (s *Server) TrustedPrefixes() []netip.Prefix {
	var ps []netip.Prefix
	for _, t := range s.TrustedProxies {
		if p, err := parsePrefix(t); err == nil {
			ps = append(ps, p)
		}
	}
	return ps
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// validateHTTPS checks [acme] and [server]'s keys of HTTPS, redirects, proxies and compression.
func (c *Config) validateHTTPS() error {
	if err := c.validateACME(); err != nil {
		return err
	}
	s := &c.Server
	for key, addr := range map[string]string{"server.https_listen": s.HTTPSListen, "server.http_redirect": s.HTTPRedirect} {
		if addr == "" {
			continue
		}
		if !c.HTTPS() {
			return c.Err(key, "needs a certificate: [tls] cert and key, [tls] self_signed or [acme]")
		}
		if err := checkListen(addr); err != nil {
			return c.Err(key, "%v", err)
		}
	}
	for _, t := range s.TrustedProxies {
		if _, err := parsePrefix(t); err != nil {
			return c.Err("server.trusted_proxies", "%q is not an IP address or a CIDR range (\"10.0.0.0/8\")", t)
		}
	}
	if s.ProxyProtocol && len(s.TrustedProxies) == 0 {
		return c.Err("server.proxy_protocol", "needs trusted_proxies: the peers whose PROXY header askrd reads")
	}
	if s.ForceHTTPS && !c.HTTPS() && !s.HTTPS && len(s.TrustedProxies) == 0 {
		return c.Err("server.force_https", "nothing would serve HTTPS: set [tls] or [acme], or, behind a proxy that terminates TLS, trusted_proxies (its X-Forwarded-Proto says which requests were HTTPS)")
	}
	for _, p := range s.StaticImmutable {
		if !strings.HasPrefix(p, "/") {
			return c.Err("server.static_immutable", "%q is not a URL prefix (it must start with \"/\")", p)
		}
	}
	return nil
}

// validateACME checks [acme] as the original does: domains without enabled, enabled without
// domains, a wildcard, a port or a scheme in a domain, and [acme] with [tls] are errors.
func (c *Config) validateACME() error {
	a := &c.ACME
	if !a.Enabled {
		if len(a.Domains) > 0 {
			return c.Err("acme.domains", "set, but acme.enabled is false: no certificate would be obtained; set enabled = true, or remove [acme]")
		}
		return nil
	}
	if len(a.Domains) == 0 {
		return c.Err("acme.enabled", "needs domains: the host names to certify")
	}
	if c.TLS.Enabled() {
		return c.Err("acme.enabled", "not together with [tls]: [tls] is a certificate you supply, [acme] one askrd obtains; remove one")
	}
	for _, d := range a.Domains {
		switch {
		case strings.Contains(d, "*"):
			return c.Err("acme.domains", "%q: a wildcard cannot be certified over HTTP-01; list each name", d)
		case strings.Contains(d, "://") || strings.Contains(d, "/"):
			return c.Err("acme.domains", "%q: a bare host name, without scheme or path", d)
		case strings.Contains(d, ":"):
			return c.Err("acme.domains", "%q: a bare host name, without a port", d)
		case net.ParseIP(d) != nil || !dnsName(d):
			return c.Err("acme.domains", "%q is not a host name (labels of letters, digits and \"-\", separated by dots)", d)
		}
	}
	if a.Staging && a.DirectoryURL != "" {
		return c.Err("acme.staging", "not together with directory_url: staging is Let's Encrypt's staging directory")
	}
	if a.DirectoryURL != "" {
		if u, err := url.Parse(a.DirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
			return c.Err("acme.directory_url", "%q is not an https URL", a.DirectoryURL)
		}
	}
	if a.Dir == "" {
		return c.Err("acme.dir", "must not be empty")
	}
	if err := checkListen(a.HTTP); err != nil {
		return c.Err("acme.http", "%v", err)
	}
	return nil
}

// dnsName reports whether d is a host name a CA certifies: dot-separated labels of 1 to 63
// letters, digits and hyphens, none at a label's start or end; 253 characters at most.
func dnsName(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
