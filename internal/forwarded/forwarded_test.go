package forwarded

import (
	"net/http"
	"net/netip"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func TestTrusts(t *testing.T) {
	trusted := prefixes("10.0.0.0/8", "127.0.0.1/32", "2001:db8::/32")
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"10.1.2.3", true},
		{"11.0.0.1", false},
		{"127.0.0.1", true},
		{"127.0.0.2", false},
		{"::ffff:10.9.9.9", true}, // an IPv4 peer on a dual-stack socket
		{"::ffff:192.0.2.1", false},
		{"2001:db8::7", true},
		{"2001:db9::7", false},
		{"fe80::1%eth0", false},
		{"::1", false},
	} {
		if got := Trusts(trusted, netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Trusts(%s) = %v; want %v", tc.addr, got, tc.want)
		}
	}
	if Trusts(nil, netip.MustParseAddr("127.0.0.1")) {
		t.Error("Trusts(no prefixes, 127.0.0.1) = true; want false")
	}
	if !Trusts(prefixes("fe80::/10"), netip.MustParseAddr("fe80::1%eth0")) {
		t.Errorf("Trusts(fe80::/10, %s) = false; want true (the zone does not matter)", "fe80::1%eth0")
	}
}

func TestReadForwardedFor(t *testing.T) {
	trusted := prefixes("10.0.0.0/8", "192.168.1.5/32")
	for _, tc := range []struct {
		name string
		xff  []string
		want string // "" for no client
	}{
		{"absent", nil, ""},
		{"one", []string{"203.0.113.7"}, "203.0.113.7:0"},
		{"the rightmost untrusted wins", []string{"198.51.100.1, 203.0.113.7, 10.0.0.2"}, "203.0.113.7:0"},
		{"several field lines are one list", []string{"198.51.100.1, 203.0.113.7", "10.0.0.2, 192.168.1.5"}, "203.0.113.7:0"},
		{"all trusted: the leftmost", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3:0"},
		{"with a port", []string{"203.0.113.7:5678"}, "203.0.113.7:5678"},
		{"IPv6", []string{"2001:db8::1"}, "[2001:db8::1]:0"},
		{"IPv6 in brackets", []string{"[2001:db8::1]"}, "[2001:db8::1]:0"},
		{"IPv6 with a port", []string{"[2001:db8::1]:443"}, "[2001:db8::1]:443"},
		{"mapped IPv4 unmapped", []string{"::ffff:203.0.113.7"}, "203.0.113.7:0"},
		{"empty elements skipped", []string{" , 203.0.113.7 ,, "}, "203.0.113.7:0"},
		{"junk on the way: none", []string{"203.0.113.7, junk, 10.0.0.2"}, ""},
		{"junk left of the client is never read", []string{"junk, 203.0.113.7, 10.0.0.2"}, "203.0.113.7:0"},
		{"a host name is junk", []string{"example.com"}, ""},
		{"unknown (RFC 7239) is junk", []string{"unknown"}, ""},
		{"a zone is junk", []string{"fe80::1%eth0"}, ""},
		{"half a bracket is junk", []string{"[2001:db8::1"}, ""},
	} {
		h := http.Header{}
		for _, v := range tc.xff {
			h.Add("X-Forwarded-For", v)
		}
		s, ok := Read(trusted, "10.0.0.1:40000", h)
		if !ok {
			t.Fatalf("%s: Read from trusted 10.0.0.1 ok = false", tc.name)
		}
		got := ""
		if s.Client.IsValid() {
			got = s.Client.String()
		}
		if got != tc.want {
			t.Errorf("%s: X-Forwarded-For %q: client %q; want %q", tc.name, tc.xff, got, tc.want)
		}
	}
}

func TestReadProtoAndHost(t *testing.T) {
	trusted := prefixes("127.0.0.1/32")
	for _, tc := range []struct {
		proto, host         []string
		wantProto, wantHost string
	}{
		{nil, nil, "", ""},
		{[]string{"https"}, []string{"example.com"}, "https", "example.com"},
		{[]string{"HTTPS"}, []string{"Example.COM:8443"}, "https", "Example.COM:8443"},
		{[]string{"http"}, []string{"[2001:db8::1]:8080"}, "http", "[2001:db8::1]:8080"},
		{[]string{" https "}, []string{"192.0.2.1"}, "https", "192.0.2.1"},
		{[]string{"https, http"}, []string{"a.example, b.example"}, "", ""}, // lists: whose is which?
		{[]string{"https", "https"}, []string{"a.example", "a.example"}, "", ""},
		{[]string{"ftp"}, []string{"exa mple.com"}, "", ""},
		{[]string{""}, []string{"example.com:0"}, "", ""},
		{nil, []string{"example.com:65536"}, "", ""},
		{nil, []string{"example.com/evil"}, "", ""},
		{nil, []string{"user@example.com"}, "", ""},
		{nil, []string{"::1"}, "", ""},
		{nil, []string{"[fe80::1%25eth0]"}, "", ""},
		{nil, []string{"a..b"}, "", ""},
	} {
		h := http.Header{}
		for _, v := range tc.proto {
			h.Add("X-Forwarded-Proto", v)
		}
		for _, v := range tc.host {
			h.Add("X-Forwarded-Host", v)
		}
		s, ok := Read(trusted, "127.0.0.1:1234", h)
		if !ok || s.Proto != tc.wantProto || s.Host != tc.wantHost {
			t.Errorf("Read(proto %q, host %q) = %+v, %v; want proto %q host %q, true", tc.proto, tc.host, s, ok, tc.wantProto, tc.wantHost)
		}
	}
}

func TestReadOnlyFromTrustedPeers(t *testing.T) {
	h := http.Header{"X-Forwarded-For": {"203.0.113.7"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"evil.example"}}
	for _, tc := range []struct {
		trusted []netip.Prefix
		peer    string
		want    bool
	}{
		{prefixes("10.0.0.0/8"), "127.0.0.1:5000", false},
		{nil, "127.0.0.1:5000", false},
		{prefixes("127.0.0.1/32"), "127.0.0.1:5000", true},
		{prefixes("127.0.0.1/32"), "[::ffff:127.0.0.1]:5000", true},
		{prefixes("127.0.0.1/32"), "@", false}, // a Unix socket's peer
		{prefixes("127.0.0.1/32"), "", false},
	} {
		s, ok := Read(tc.trusted, tc.peer, h)
		if ok != tc.want {
			t.Errorf("Read(%v, peer %q) ok = %v; want %v", tc.trusted, tc.peer, ok, tc.want)
		}
		if !ok && s != (Seen{}) {
			t.Errorf("Read(%v, peer %q) = %+v from an untrusted peer; want nothing", tc.trusted, tc.peer, s)
		}
	}
}

func TestValidHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"example.com", true},
		{"example.com.", true},
		{"my_host.local:8080", true},
		{"localhost", true},
		{"127.0.0.1:80", true},
		{"[::1]", true},
		{"[::1]:443", true},
		{"", false},
		{":80", false},
		{"example.com:", false},
		{"example.com:http", false},
		{"example.com:123456", false},
		{"[::1", false},
		{"[127.0.0.1]", false},
		{".example.com", false},
		{"exa*mple.com", false},
		{"example.com\r\nX: y", false},
	} {
		if got := ValidHost(tc.host); got != tc.want {
			t.Errorf("ValidHost(%q) = %v; want %v", tc.host, got, tc.want)
		}
	}
}
