package fastcgi

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The responses php-cgi sent to a few requests are kept, byte for byte, in testdata/NAME.bin;
// `go test ./internal/fastcgi -run TestCapture -update` captures them again (and rewrites the fuzz
// seed corpus from them). The other tests decode them without php-cgi.

var update = flag.Bool("update", false, "capture testdata/*.bin from the local php-cgi")

// captureDir is where the capture runs the scripts from, so that the paths in PHP's messages do
// not depend on where the repository is checked out.
const captureDir = "/tmp/askr-fastcgi-capture"

// A captureCase is one request whose response is kept in testdata/NAME.bin.
type captureCase struct {
	name                string
	script              string // under captureDir (copied from testdata)
	method, query, body string
	contentType         string
	stdout, stderr      string // what the response carries
	status              int    // from the head
	header              string // the head's fields other than Status, one "Name: value" per line
	records             string // the records' types, in order
}

var captureCases = []captureCase{
	{
		name: "get", script: "get.php", method: "GET", query: "q=askr&list[]=a&list[]=b",
		stdout:  "Content-Type: application/json\r\n\r\n" + `{"method":"GET","query":"q=askr&list[]=a&list[]=b","get":{"q":"askr","list":["a","b"]}}` + "\n",
		status:  200,
		header:  "Content-Type: application/json",
		records: "STDOUT END_REQUEST",
	},
	{
		name: "post", script: "post.php", method: "POST",
		body: "name=askr&list[]=a&list[]=b", contentType: "application/x-www-form-urlencoded",
		stdout: "Content-type: text/html; charset=UTF-8\r\n\r\n" +
			"length=27\nmd5=f75b4fe601ccdafd9c6a43c1d69cb7a3\n" + `post={"name":"askr","list":["a","b"]}` + "\n",
		status:  200,
		header:  "Content-Type: text/html; charset=UTF-8",
		records: "STDOUT END_REQUEST",
	},
	{
		name: "status", script: "status.php", method: "GET",
		stdout: "Status: 404 Not Found\r\nX-Multi: one\r\nX-Multi: two\r\n" +
			"Set-Cookie: flavour=oat; path=/; HttpOnly\r\nContent-type: text/html; charset=UTF-8\r\n\r\nnot here\n",
		stderr:  "first log message\nsecond log message\n",
		status:  404,
		header:  "X-Multi: one\nX-Multi: two\nSet-Cookie: flavour=oat; path=/; HttpOnly\nContent-Type: text/html; charset=UTF-8",
		records: "STDERR STDOUT END_REQUEST",
	},
	{
		name: "big", script: "big.php", method: "GET",
		// PHP adds the charset to text/ types and spells the name its own way; php-cgi sends
		// records of at most 8184 bytes (its 8 KiB buffer less a header).
		stdout:  "Content-type: text/plain;charset=UTF-8\r\n\r\n" + bigBody(),
		status:  200,
		header:  "Content-Type: text/plain;charset=UTF-8",
		records: strings.Repeat("STDOUT ", 15) + "END_REQUEST",
	},
	{
		name: "fatal", script: "fatal.php", method: "GET",
		stdout: "Status: 500 Internal Server Error\r\nContent-type: text/html; charset=UTF-8\r\n\r\nbefore\n",
		stderr: "PHP Fatal error:  Uncaught Error: Call to undefined function askr_no_such_function() in " +
			captureDir + "/fatal.php:5\nStack trace:\n#0 {main}\n  thrown in " + captureDir + "/fatal.php on line 5\n",
		status:  500,
		header:  "Content-Type: text/html; charset=UTF-8",
		records: "STDERR STDOUT END_REQUEST",
	},
	{
		name: "exit", script: "exit.php", method: "GET",
		stdout:  "Content-type: text/html; charset=UTF-8\r\n\r\nbye\n",
		status:  200,
		header:  "Content-Type: text/html; charset=UTF-8",
		records: "STDOUT END_REQUEST",
	},
	{
		name: "missing", script: "no-such-script.php", method: "GET",
		stdout:  "Status: 404 Not Found\r\nContent-type: text/html; charset=UTF-8\r\n\r\nNo input file specified.\n",
		status:  404,
		header:  "Content-Type: text/html; charset=UTF-8",
		records: "STDOUT END_REQUEST",
	},
}

// bigBody is what big.php prints after its head.
func bigBody() string {
	var b strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&b, "line %06d\n", i)
	}
	return b.String()
}

func (cc captureCase) request() *Request {
	ps := cgiParams(filepath.Join(captureDir, cc.script), cc.method, cc.query, len(cc.body))
	if cc.contentType != "" {
		ps = append(ps, Param{"CONTENT_TYPE", cc.contentType})
	}
	req := &Request{Params: ps}
	if cc.body != "" {
		req.Stdin = strings.NewReader(cc.body)
	}
	return req
}

// recordingConn keeps a copy of everything read from the connection.
type recordingConn struct {
	net.Conn
	got bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.got.Write(p[:n])
	return n, err
}

// TestCapture captures testdata/*.bin from the local php-cgi (only with -update).
func TestCapture(t *testing.T) {
	if !*update {
		t.Skip("run with -update to capture testdata/*.bin from php-cgi")
	}
	if err := os.RemoveAll(captureDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(captureDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(captureDir) })
	scripts, _ := filepath.Glob(filepath.Join("testdata", "*.php"))
	for _, s := range scripts {
		b, err := os.ReadFile(s)
		if err == nil {
			err = os.WriteFile(filepath.Join(captureDir, filepath.Base(s)), b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	p := startPHPCGI(t)
	seeds := map[string][]byte{}
	for _, cc := range captureCases {
		rc := &recordingConn{Conn: p.dial(t)}
		if _, err := NewConn(rc).Do(testContext(t, 10*time.Second), cc.request()); err != nil {
			t.Fatalf("%s: Do = %v", cc.name, err)
		}
		writeCapture(t, cc.name, rc.got.Bytes())
		seeds[cc.name] = rc.got.Bytes()[:min(rc.got.Len(), 4096)]
	}

	rc := &recordingConn{Conn: p.dial(t)}
	c := NewConn(rc)
	if _, err := c.GetValues(testContext(t, 10*time.Second), MaxConns, MaxReqs, MpxsConns); err != nil {
		t.Fatalf("GetValues = %v", err)
	}
	c.Close()
	writeCapture(t, "getvalues", rc.got.Bytes())
	seeds["getvalues"] = rc.got.Bytes()

	dir := filepath.Join("testdata", "fuzz", "FuzzReadRecord")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, s := range seeds {
		writeFile(t, filepath.Join(dir, "captured-"+name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", s))
	}
}

func writeCapture(t *testing.T, name string, b []byte) {
	t.Helper()
	writeFile(t, filepath.Join("testdata", name+".bin"), b)
	t.Logf("testdata/%s.bin: %d bytes", name, len(b))
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readCapture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".bin"))
	if err != nil {
		t.Fatalf("%v (capture with: go test -run TestCapture -update)", err)
	}
	return b
}

// fakeApp plays a FastCGI application on the far end of a net.Pipe: it reads one request (up to
// the record that ends STDIN) and answers with the bytes of reply. It returns the request's
// records.
func fakeApp(t *testing.T, app net.Conn, reply []byte) <-chan []Record {
	t.Helper()
	got := make(chan []Record, 1)
	go func() {
		defer close(got)
		recs, err := readRequest(NewReader(app))
		if err != nil {
			t.Errorf("fake application: read request: %v", err)
			app.Close()
			return
		}
		got <- recs
		if _, err := app.Write(reply); err != nil {
			t.Errorf("fake application: write reply: %v", err)
		}
	}()
	return got
}

// readRequest reads records up to an empty STDIN record, copying their contents.
func readRequest(r *Reader) ([]Record, error) {
	var recs []Record
	for {
		rec, err := r.Next()
		if err != nil {
			return recs, err
		}
		rec.Content = bytes.Clone(rec.Content)
		recs = append(recs, rec)
		if rec.Type == TypeStdin && len(rec.Content) == 0 {
			return recs, nil
		}
	}
}

// TestCapturedRecords decodes the captured responses record by record.
func TestCapturedRecords(t *testing.T) {
	for _, cc := range captureCases {
		r := NewReader(bytes.NewReader(readCapture(t, cc.name)))
		var types []string
		var stdout, stderr bytes.Buffer
		var end *EndRequest
		for {
			rec, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: Next() error = %v", cc.name, err)
			}
			types = append(types, rec.Type.String())
			if rec.RequestID != RequestID || rec.Version != Version1 || rec.Reserved != 0 {
				t.Errorf("%s: %s header = %+v; want version 1, request %d, reserved 0", cc.name, rec.Type, rec.Header, RequestID)
			}
			if end != nil {
				t.Errorf("%s: %s record after END_REQUEST", cc.name, rec.Type)
			}
			switch rec.Type {
			case TypeStdout:
				stdout.Write(rec.Content)
			case TypeStderr:
				stderr.Write(rec.Content)
			case TypeEndRequest:
				er, err := ParseEndRequest(rec.Content)
				if err != nil {
					t.Fatalf("%s: ParseEndRequest(% x) error = %v", cc.name, rec.Content, err)
				}
				end = &er
			}
		}
		if got := strings.Join(types, " "); got != cc.records {
			t.Errorf("%s: records = %s; want %s", cc.name, got, cc.records)
		}
		if stdout.String() != cc.stdout {
			t.Errorf("%s: STDOUT = %.300q; want %.300q", cc.name, stdout.String(), cc.stdout)
		}
		if stderr.String() != cc.stderr {
			t.Errorf("%s: STDERR = %q; want %q", cc.name, stderr.String(), cc.stderr)
		}
		if end == nil || *end != (EndRequest{AppStatus: 0, ProtocolStatus: RequestComplete}) {
			t.Errorf("%s: END_REQUEST = %+v; want app status 0, REQUEST_COMPLETE", cc.name, end)
		}
	}
}

// TestCapturedThroughDo replays each captured response to Do and HeadSplitter, checking the
// request Do sends on the way.
func TestCapturedThroughDo(t *testing.T) {
	for _, cc := range captureCases {
		t.Run(cc.name, func(t *testing.T) {
			client, app := net.Pipe()
			got := fakeApp(t, app, readCapture(t, cc.name))
			defer app.Close()

			var head *Head
			var body, stderr bytes.Buffer
			hs := NewHeadSplitter(DefaultMaxHead, func(h *Head) error { head = h; return nil }, &body)
			req := cc.request()
			req.Stdout, req.Stderr = hs, &stderr
			c := NewConn(client)
			er, err := c.Do(testContext(t, 10*time.Second), req)
			if err != nil {
				t.Fatalf("Do() error = %v", err)
			}
			if er != (EndRequest{0, RequestComplete}) {
				t.Errorf("Do() = %+v; want app status 0, REQUEST_COMPLETE", er)
			}
			if c.Reusable() {
				t.Errorf("Reusable() after a request without KeepConn = true; want false")
			}
			if err := hs.Close(); err != nil {
				t.Fatalf("HeadSplitter.Close() = %v", err)
			}
			if stderr.String() != cc.stderr {
				t.Errorf("stderr = %q; want %q", stderr.String(), cc.stderr)
			}
			_, wantBody, _ := strings.Cut(cc.stdout, "\r\n\r\n")
			if body.String() != wantBody {
				t.Errorf("body = %.200q; want %.200q", body.String(), wantBody)
			}
			if head.Status != cc.status {
				t.Errorf("head status = %d; want %d", head.Status, cc.status)
			}
			if got := formatHeader(head); got != cc.header {
				t.Errorf("head fields:\n%s\nwant:\n%s", got, cc.header)
			}
			checkRequestRecords(t, <-got, cc.request(), false)
		})
	}
}

// formatHeader lists the fields of h as "Name: value" lines in the order php-cgi sent them (an
// http.Header has no order: the fields are sorted by the position of their first line in want).
func formatHeader(h *Head) string {
	var lines []string
	for name, vs := range h.Header {
		for _, v := range vs {
			lines = append(lines, name+": "+v)
		}
	}
	order := func(l string) int {
		for i, name := range []string{"X-Multi", "Set-Cookie", "Content-Type"} {
			if strings.HasPrefix(l, name+":") {
				return i
			}
		}
		return 99
	}
	for i := range lines {
		for j := i + 1; j < len(lines); j++ {
			if order(lines[j]) < order(lines[i]) {
				lines[i], lines[j] = lines[j], lines[i]
			}
		}
	}
	return strings.Join(lines, "\n")
}

// checkRequestRecords checks that recs are BEGIN_REQUEST, the PARAMS stream and the STDIN stream
// of req as the spec lays them out.
func checkRequestRecords(t *testing.T, recs []Record, req *Request, keepConn bool) {
	t.Helper()
	if len(recs) < 3 {
		t.Fatalf("request records = %d; want at least 3", len(recs))
	}
	wantFlags := byte(0)
	if keepConn {
		wantFlags = FlagKeepConn
	}
	if b := recs[0]; b.Type != TypeBeginRequest || !bytes.Equal(b.Content, []byte{0, RoleResponder, wantFlags, 0, 0, 0, 0, 0}) {
		t.Errorf("first record = %s % x; want BEGIN_REQUEST 00 01 %02x 00 00 00 00 00", b.Type, b.Content, wantFlags)
	}
	var params, stdin []byte
	stage := TypeParams
	for _, rec := range recs[1:] {
		if rec.RequestID != RequestID || rec.Version != Version1 {
			t.Errorf("%s header = %+v; want version 1, request %d", rec.Type, rec.Header, RequestID)
		}
		if (int(rec.ContentLength)+int(rec.PaddingLength))%8 != 0 {
			t.Errorf("%s record of %d+%d bytes is not padded to 8", rec.Type, rec.ContentLength, rec.PaddingLength)
		}
		switch {
		case rec.Type != stage:
			t.Fatalf("%s record while the %s stream is open", rec.Type, stage)
		case rec.Type == TypeParams && len(rec.Content) == 0:
			stage = TypeStdin
		case rec.Type == TypeParams:
			params = append(params, rec.Content...)
		default:
			stdin = append(stdin, rec.Content...)
		}
	}
	ps, err := ParsePairs(params)
	if err != nil {
		t.Fatalf("ParsePairs(PARAMS) error = %v", err)
	}
	if fmt.Sprint(ps) != fmt.Sprint(req.Params) {
		t.Errorf("PARAMS = %q; want %q", ps, req.Params)
	}
	var want []byte
	if req.Stdin != nil {
		want, _ = io.ReadAll(req.Stdin)
	}
	if !bytes.Equal(stdin, want) {
		t.Errorf("STDIN = %.100q; want %.100q", stdin, want)
	}
}

// TestCapturedGetValues decodes php-cgi's answer to GET_VALUES.
func TestCapturedGetValues(t *testing.T) {
	r := NewReader(bytes.NewReader(readCapture(t, "getvalues")))
	rec, err := r.Next()
	if err != nil {
		t.Fatalf("Next() error = %v", err)
	}
	if rec.Type != TypeGetValuesResult || rec.RequestID != 0 {
		t.Fatalf("record = %s for request %d; want GET_VALUES_RESULT for request 0", rec.Type, rec.RequestID)
	}
	ps, err := ParsePairs(rec.Content)
	if err != nil {
		t.Fatalf("ParsePairs(% x) error = %v", rec.Content, err)
	}
	want := []Param{{MpxsConns, "0"}, {MaxReqs, "1"}, {MaxConns, "1"}}
	if fmt.Sprint(ps) != fmt.Sprint(want) {
		t.Errorf("GET_VALUES_RESULT = %q; want %q", ps, want)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("Next() after GET_VALUES_RESULT error = %v; want io.EOF", err)
	}
}
