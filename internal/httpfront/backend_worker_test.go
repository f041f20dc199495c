package httpfront

import (
	"bytes"
	"context"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/askr-php/askr/internal/channel"
	"github.com/askr-php/askr/internal/pool"
)

// fakePool plays the worker pool in worker mode: it decodes each request's payload while the
// request runs (its uploads still on disk) and answers with answer, or "worker ok".
type fakePool struct {
	limits channel.Limits
	calls  int
	got    payload
	answer func(resp channel.Response) error
	t      *testing.T
	visit  *pool.Visit // the last call's
	status int         // the last call's Outcome.Status
}

// Call lends call a fake worker, which answers as f says, and returns the error of the outcome.
// It fills v in as the pool does, with the fake worker's pid.
func (f *fakePool) Call(ctx context.Context, v *pool.Visit, call func(pool.Process) pool.Outcome) error {
	f.visit = v
	w := fakeWorker{&fakeFCGI{}, f}
	start := time.Now()
	o := call(w)
	v.PID, v.Upstream = w.PID(), time.Since(start)
	f.status = o.Status
	return o.Err
}

// fakeWorker is a worker of fakePool: a process (fakeFCGI's stubs) with a channel, on which f
// answers.
type fakeWorker struct {
	*fakeFCGI
	f *fakePool
}

func (w fakeWorker) Exchange(p []byte, resp channel.Response) channel.Result {
	f := w.f
	f.calls++
	f.got = decodePayload(f.t, p)
	if f.answer != nil {
		return channel.Result{Err: f.answer(resp)}
	}
	if err := resp.Head(200, []channel.Header{{Name: "Content-Type", Value: "text/plain"}}); err != nil {
		return channel.Result{Err: err}
	}
	return channel.Result{Err: resp.Body([]byte("worker ok"))}
}

func (f *fakePool) Limits() channel.Limits { return f.limits }

// workerHandler is a worker-mode Handler on routeRoot's document root (and its alias) with f as
// the pool.
func workerHandler(t *testing.T, f *fakePool, opt Options) (*Handler, string) {
	t.Helper()
	f.t = t
	root := testOptions(t, &opt)
	h, err := New(opt, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, root
}

// payload is a worker request payload decoded (see cgiEnv.encode).
type payload struct {
	server   phpArray
	body     string
	bodyFile string
	bodyRead string // the body file's content, read while the request ran
	post     [][2]string
	files    []file
}

type file struct {
	field, name, typ, tmp string
	size, err             int64
	fullPath              string
	content               string // the temporary file's, read while the request ran
}

// phpArray is an unserialized PHP array, in order.
type phpArray []struct{ k, v any }

// get returns the value of key k, and whether there is one.
func (a phpArray) get(k any) (any, bool) {
	for _, kv := range a {
		if kv.k == k {
			return kv.v, true
		}
	}
	return nil, false
}

// str returns the string value of k ("<unset>" if there is none).
func (a phpArray) str(k string) string {
	v, ok := a.get(k)
	if !ok {
		return "<unset>"
	}
	s, _ := v.(string)
	return s
}

// decodePayload decodes p as the worker runtime does, and reads the files it names.
func decodePayload(t *testing.T, p []byte) payload {
	t.Helper()
	u := unserializer{b: p}
	v := u.value()
	if u.err != nil || len(u.b) != 0 {
		t.Fatalf("payload %q: %v, %d bytes left", p, u.err, len(u.b))
	}
	top, _ := v.(phpArray)
	var out payload
	server, _ := top.get("server")
	out.server, _ = server.(phpArray)
	out.body, out.bodyFile = top.str("body"), top.str("body_file")
	if out.bodyFile != "" {
		b, err := os.ReadFile(out.bodyFile)
		if err != nil {
			t.Fatalf("body_file: %v", err)
		}
		out.bodyRead = string(b)
	}
	post, _ := top.get("post")
	for _, kv := range post.(phpArray) {
		f := kv.v.(phpArray)
		out.post = append(out.post, [2]string{f.str0(0), f.str0(1)})
	}
	files, _ := top.get("files")
	for _, kv := range files.(phpArray) {
		f := kv.v.(phpArray)
		size, _ := f.get(int64(4))
		code, _ := f.get(int64(5))
		up := file{field: f.str0(0), name: f.str0(1), typ: f.str0(2), tmp: f.str0(3), size: size.(int64), err: code.(int64), fullPath: f.str0(6)}
		if up.tmp != "" {
			b, err := os.ReadFile(up.tmp)
			if err != nil {
				t.Fatalf("upload %s: %v", up.field, err)
			}
			up.content = string(b)
		}
		out.files = append(out.files, up)
	}
	return out
}

func (a phpArray) str0(i int64) string {
	v, _ := a.get(i)
	s, _ := v.(string)
	return s
}

// unserializer reads PHP's serialize() format, as far as channel.Serializer writes it.
type unserializer struct {
	b   []byte
	err error
}

func (u *unserializer) fail() any {
	if u.err == nil {
		u.err = io.ErrUnexpectedEOF
	}
	u.b = nil
	return nil
}

func (u *unserializer) value() any {
	if len(u.b) < 2 || u.err != nil {
		return u.fail()
	}
	kind := u.b[0]
	u.b = u.b[2:]
	switch kind {
	case 'i', 'd':
		i := bytes.IndexByte(u.b, ';')
		if i < 0 {
			return u.fail()
		}
		text := string(u.b[:i])
		u.b = u.b[i+1:]
		if kind == 'i' {
			n, err := strconv.ParseInt(text, 10, 64)
			u.err = err
			return n
		}
		f, err := strconv.ParseFloat(text, 64)
		u.err = err
		return f
	case 's':
		n := u.length()
		if len(u.b) < n+3 || u.b[0] != '"' {
			return u.fail()
		}
		s := string(u.b[1 : 1+n])
		u.b = u.b[n+3:] // `"...";`
		return s
	case 'a':
		n := u.length()
		if len(u.b) < 1 || u.b[0] != '{' {
			return u.fail()
		}
		u.b = u.b[1:]
		a := make(phpArray, n)
		for i := range a {
			a[i].k = u.value()
			a[i].v = u.value()
		}
		if len(u.b) < 1 || u.b[0] != '}' {
			return u.fail()
		}
		u.b = u.b[1:]
		return a
	}
	return u.fail()
}

// length reads "N:".
func (u *unserializer) length() int {
	i := bytes.IndexByte(u.b, ':')
	if i < 0 {
		u.fail()
		return 0
	}
	n, err := strconv.Atoi(string(u.b[:i]))
	if err != nil {
		u.err = err
	}
	u.b = u.b[i+1:]
	return n
}
