package template

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/channel"
)

// Each rogue connection is refused by the production checks (onArrival, verify) on the credentials
// the kernel gives: another uid, a pid other than the one announced, a process that is no child of
// a template or of askrd, a token no fork waits for, a first frame that is no hello. Each is closed
// with a warning saying why; the fork still waits, and the genuine worker is admitted after them,
// as is one re-parented to askrd (its template died).
func TestRogueConnectionsAreRefused(t *testing.T) {
	sys := newFakeSystem(t)
	sys.noFork.Store(true) // the test makes the connections
	tm, logs := newFake(t, sys, Options{Spare: true, ForkTimeout: time.Minute})
	got := startAsync(tm)
	tp := sys.template(0)
	token := <-tp.forks
	const pid = 4242
	good := creds{PID: pid, UID: fakeUID, PPID: tp.pid}
	rogues := []struct {
		name  string
		hello channel.Hello
		creds creds
		want  string
	}{
		{"another uid", channel.Hello{PID: pid, Token: token}, creds{PID: pid, UID: fakeUID + 1, PPID: tp.pid},
			"peer check failed: kernel says pid 4242 uid 1001, worker says pid 4242"},
		{"announces another pid", channel.Hello{PID: tp.pid, Token: token}, good,
			"peer check failed: kernel says pid 4242 uid 1000, worker says pid " + itoa(tp.pid)},
		{"not a descendant", channel.Hello{PID: pid, Token: token}, creds{PID: pid, UID: fakeUID, PPID: 77},
			"peer check failed: pid 4242 is a child of 77, not of a template"},
		{"wrong token", channel.Hello{PID: pid, Token: strings.Repeat("f", 32)}, good, "unknown fork token"},
		{"gone before its pidfd", channel.Hello{PID: pid, Token: token}, good, "no such process"},
	}
	for i, r := range rogues {
		closed := sys.ln.connect(t, r.hello, r.creds, nil)
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: connection still open 10 s after it said hello", r.name)
		}
		poll(t, r.name+": refusal logged", func() bool { return strings.Count(logs.String(), "refused a worker connection") == i+1 })
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		if l := lines[len(lines)-1]; !strings.Contains(l, "level=WARN") || !strings.Contains(l, r.want) || !strings.HasSuffix(l, " pid="+itoa(r.hello.PID)) {
			t.Errorf("%s: log line %q; want a warning with %q and pid=%d", r.name, l, r.want, r.hello.PID)
		}
		select {
		case s := <-got:
			t.Fatalf("%s: Start() = %+v; want it still waiting", r.name, s)
		default:
		}
	}
	// Not a hello at all.
	askrd, rogue := net.Pipe()
	go rogue.Write(channel.AppendHeader(nil, channel.TypeReady, 0, 0))
	sys.ln.conns <- &fakeConn{Conn: askrd, creds: good}
	poll(t, "not a hello: refusal logged", func() bool { return strings.Count(logs.String(), "refused a worker connection") == len(rogues)+1 })
	if !strings.Contains(logs.String(), "first frame has type") {
		t.Errorf("not a hello: no \"first frame has type\" in the log:\n%s", logs.String())
	}

	// The genuine worker: a child of the template, with its token.
	sys.ln.connect(t, channel.Hello{PID: pid, Token: token}, good, sys.newHandle(pid))
	select {
	case s := <-got:
		if s.err != nil || s.w.PID() != pid || s.w.hello.Token != token {
			t.Fatalf("Start() = %+v; want the worker pid %d", s, pid)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the genuine worker was not admitted; log:\n%s", logs.String())
	}

	// A worker whose template has died is re-parented to askrd (its subreaper): admitted too. It
	// comes as the spare, forked ahead, which the next Start returns.
	spareToken := <-tp.forks
	const orphan = 4343
	h2 := sys.newHandle(orphan)
	sys.ln.connect(t, channel.Hello{PID: orphan, Token: spareToken}, creds{PID: orphan, UID: fakeUID, PPID: fakeAskrd}, h2)
	poll(t, "spare admitted", func() bool { return h2.opened.Load() == 1 })
	if w := start(t, tm); w.PID() != orphan {
		t.Errorf("Start() = pid %d; want the spare re-parented to askrd, pid %d", w.PID(), orphan)
	}
	if n := strings.Count(logs.String(), "refused a worker connection"); n != len(rogues)+1 {
		t.Errorf("%d refusals logged; want %d:\n%s", n, len(rogues)+1, logs.String())
	}
}
