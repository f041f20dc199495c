package forwarded

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// v2Header is a PROXY protocol v2 header, built by hand from the spec (not by the library under
// test): PROXY command, TCP over IPv4, src → dst.
func v2Header(src, dst netip.AddrPort) []byte {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n")
	b = append(b, 0x21, 0x11, 0, 12) // version 2 + PROXY; AF_INET + STREAM; 12 address bytes
	s, d := src.Addr().As4(), dst.Addr().As4()
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

// exchange listens on loopback behind Listen(trusted, timeout), connects, sends send, and
// returns what the accepted connection says its peer is and the first len(want) bytes it reads.
func exchange(t *testing.T, trusted []netip.Prefix, timeout time.Duration, send []byte, n int) (net.Addr, []byte) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := Listen(raw, trusted, timeout)
	defer ln.Close()
	if ln.Addr().String() != raw.Addr().String() {
		t.Errorf("Listen(…).Addr() = %v; want %v", ln.Addr(), raw.Addr())
	}
	c, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(send); err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	peer := sc.RemoteAddr()
	got := make([]byte, n)
	if _, err := io.ReadFull(sc, got); err != nil {
		t.Fatalf("read from the accepted connection: %v", err)
	}
	return peer, got
}

const request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

func TestListenV1FromTrustedPeer(t *testing.T) {
	peer, got := exchange(t, prefixes("127.0.0.1/32"), 5*time.Second,
		[]byte("PROXY TCP4 203.0.113.7 192.0.2.1 40001 443\r\n"+request), len(request))
	if peer.String() != "203.0.113.7:40001" {
		t.Errorf("RemoteAddr = %v; want 203.0.113.7:40001 (the PROXY header's source)", peer)
	}
	if string(got) != request {
		t.Errorf("read %q; want %q (the bytes after the header)", got, request)
	}
}

func TestListenV2FromTrustedPeer(t *testing.T) {
	h := v2Header(netip.MustParseAddrPort("198.51.100.9:50000"), netip.MustParseAddrPort("192.0.2.1:443"))
	peer, got := exchange(t, prefixes("127.0.0.0/8"), 5*time.Second, append(h, request...), len(request))
	if peer.String() != "198.51.100.9:50000" {
		t.Errorf("RemoteAddr = %v; want 198.51.100.9:50000 (the PROXY header's source)", peer)
	}
	if string(got) != request {
		t.Errorf("read %q; want %q (the bytes after the header)", got, request)
	}
}

func TestListenNoHeaderFromTrustedPeer(t *testing.T) {
	peer, got := exchange(t, prefixes("127.0.0.1/32"), 5*time.Second, []byte(request), len(request))
	if a := peer.(*net.TCPAddr); !a.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("RemoteAddr = %v; want the peer's own, 127.0.0.1", peer)
	}
	if string(got) != request {
		t.Errorf("read %q; want %q", got, request)
	}
}

func TestListenUntrustedPeerIsNotParsed(t *testing.T) {
	line := "PROXY TCP4 203.0.113.7 192.0.2.1 40001 443\r\n"
	peer, got := exchange(t, prefixes("10.0.0.0/8"), 5*time.Second, []byte(line+request), len(line+request))
	if a := peer.(*net.TCPAddr); !a.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("RemoteAddr = %v from an untrusted peer; want its own, 127.0.0.1", peer)
	}
	if string(got) != line+request {
		t.Errorf("read %q; want the PROXY line untouched: %q", got, line+request)
	}
}

// A trusted peer that sends nothing within the timeout keeps its own address, and what it sends
// later is read as it is.
func TestListenHeaderTimeout(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := Listen(raw, prefixes("127.0.0.1/32"), 100*time.Millisecond)
	defer ln.Close()
	c, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	peer := make(chan net.Addr, 1)
	go func() { peer <- sc.RemoteAddr() }()
	select {
	case p := <-peer:
		if a := p.(*net.TCPAddr); !a.IP.Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("RemoteAddr = %v after the header timeout; want 127.0.0.1", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RemoteAddr still waits for a PROXY header 10s after a 100ms timeout")
	}
	if _, err := c.Write([]byte(request)); err != nil {
		t.Fatal(err)
	}
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(request))
	if _, err := io.ReadFull(sc, got); err != nil || string(got) != request {
		t.Errorf("read %q, %v after the timeout; want %q", got, err, request)
	}
}

// A trusted peer's malformed header fails the connection's reads: it is not served as HTTP.
func TestListenMalformedHeaderFromTrustedPeer(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := Listen(raw, prefixes("127.0.0.1/32"), 5*time.Second)
	defer ln.Close()
	c, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("PROXY TCP4 not-an-address 192.0.2.1 1 2\r\n" + request))
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(sc)
	if err == nil || bytes.Contains(b, []byte("GET")) {
		t.Errorf("read %q, %v after a malformed PROXY header; want an error and nothing", b, err)
	}
}
