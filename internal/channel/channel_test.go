package channel

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// frame builds one frame with AppendHeader.
func frame(typ byte, flags uint16, payload string) []byte {
	return append(AppendHeader(nil, typ, flags, len(payload)), payload...)
}

func TestAppendHeader(t *testing.T) {
	tests := []struct {
		typ   byte
		flags uint16
		n     int
		want  []byte
	}{
		{TypeStop, 0, 0, []byte{Version, TypeStop, 0, 0, 0, 0, 0, 0}},
		{TypeEnd, FlagExit, 16, []byte{Version, TypeEnd, 0, 1, 0, 0, 0, 16}},
		{TypeBody, 0xabcd, 0x00fedcba, []byte{Version, TypeBody, 0xab, 0xcd, 0, 0xfe, 0xdc, 0xba}},
		{TypeRequest, 0, MaxPayload, []byte{Version, TypeRequest, 0, 0, 0x01, 0, 0, 0}},
	}
	for _, tt := range tests {
		got := AppendHeader([]byte("x"), tt.typ, tt.flags, tt.n)
		if want := append([]byte("x"), tt.want...); !bytes.Equal(got, want) {
			t.Errorf("AppendHeader(%d, %#x, %d) = % x; want % x", tt.typ, tt.flags, tt.n, got, want)
		}
		f, n, err := ParseHeader(got[1:])
		if err != nil || n != tt.n || f.Type != tt.typ || f.Flags != tt.flags {
			t.Errorf("ParseHeader(AppendHeader(%d, %#x, %d)) = %+v, %d, %v; want the same back", tt.typ, tt.flags, tt.n, f, n, err)
		}
	}
}

func TestParseHeaderBad(t *testing.T) {
	tests := []struct {
		name string
		h    []byte
		msg  string
	}{
		{"short", []byte{Version, TypeBody, 0, 0, 0, 0, 0}, "short header"},
		{"empty", nil, "short header"},
		{"version 0", []byte{0, TypeBody, 0, 0, 0, 0, 0, 0}, "version 0"},
		{"version 2", []byte{2, TypeBody, 0, 0, 0, 0, 0, 0}, "version 2"},
		{"unknown type 0", []byte{Version, 0, 0, 0, 0, 0, 0, 0}, "unknown frame type 0"},
		{"unknown type 23", []byte{Version, 23, 0, 0, 0, 0, 0, 0}, "unknown frame type 23"},
		{"too large", AppendHeader(nil, TypeBody, 0, MaxPayload+1), "exceeds"},
		{"huge", []byte{Version, TypeBody, 0, 0, 0xff, 0xff, 0xff, 0xff}, "exceeds"},
	}
	for _, tt := range tests {
		_, _, err := ParseHeader(tt.h)
		if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParseHeader(% x) error = %v; want ErrProtocol with %q", tt.h, err, tt.msg)
		}
	}
}

func TestReadFrameRoundTrip(t *testing.T) {
	big := strings.Repeat("x", 100<<10) // larger than the reader's buffer
	frames := []Frame{
		{Type: TypeHello, Payload: append(binary.BigEndian.AppendUint32(nil, 4242), "8.2.36"...)},
		{Type: TypeHead, Payload: append(binary.BigEndian.AppendUint16(nil, 200), "Content-Type: text/html"...)},
		{Type: TypeBody, Payload: []byte("hello")},
		{Type: TypeBody, Payload: []byte(big)},
		{Type: TypeBody, Payload: []byte{}},
		{Type: TypeEnd, Flags: FlagExit, Payload: make([]byte, 16)},
		{Type: TypeRequest, Payload: []byte(`a:0:{}`)},
		{Type: TypeStop, Payload: []byte{}},
		{Type: TypeBye, Payload: []byte{}},
	}
	var stream []byte
	for _, f := range frames {
		stream = AppendHeader(stream, f.Type, f.Flags, len(f.Payload))
		stream = append(stream, f.Payload...)
	}
	for _, r := range []struct {
		name string
		r    io.Reader
	}{
		{"whole", bytes.NewReader(stream)},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(stream))},
		{"half reads", iotest.HalfReader(bytes.NewReader(stream))},
	} {
		t.Run(r.name, func(t *testing.T) {
			rd := NewReader(r.r)
			for i, want := range frames {
				got, err := rd.ReadFrame()
				if err != nil {
					t.Fatalf("ReadFrame() #%d error = %v; want nil", i, err)
				}
				if got.Type != want.Type || got.Flags != want.Flags || !bytes.Equal(got.Payload, want.Payload) {
					t.Fatalf("ReadFrame() #%d = type %d flags %#x %d bytes; want type %d flags %#x %d bytes",
						i, got.Type, got.Flags, len(got.Payload), want.Type, want.Flags, len(want.Payload))
				}
			}
			if f, err := rd.ReadFrame(); err != io.EOF {
				t.Fatalf("ReadFrame() at the end = %+v, %v; want io.EOF", f, err)
			}
		})
	}
}

func TestReadFrameErrors(t *testing.T) {
	good := frame(TypeBody, 0, "hello")
	tests := []struct {
		name     string
		in       []byte
		want     error // errors.Is target for the last ReadFrame
		nGood    int   // frames read successfully first
		protocol bool
	}{
		{name: "empty", in: nil, want: io.EOF},
		{name: "after a frame", in: good, want: io.EOF, nGood: 1},
		{name: "truncated header", in: good[:5], want: io.ErrUnexpectedEOF},
		{name: "header only", in: good[:HeaderSize], want: io.ErrUnexpectedEOF},
		{name: "truncated payload", in: good[:len(good)-1], want: io.ErrUnexpectedEOF},
		{name: "truncated second frame", in: append(append([]byte{}, good...), good[:3]...), want: io.ErrUnexpectedEOF, nGood: 1},
		{name: "bad version", in: append([]byte{9}, good[1:]...), want: ErrProtocol},
		{name: "bad type", in: frame(99, 0, ""), want: ErrProtocol},
		{name: "too large", in: AppendHeader(nil, TypeBody, 0, MaxPayload+1), want: ErrProtocol},
		{name: "garbage after a frame", in: append(append([]byte{}, good...), "GET / HTTP/1.1\r\n"...), want: ErrProtocol, nGood: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd := NewReader(bytes.NewReader(tt.in))
			for i := 0; i < tt.nGood; i++ {
				if _, err := rd.ReadFrame(); err != nil {
					t.Fatalf("ReadFrame() #%d error = %v; want nil", i, err)
				}
			}
			f, err := rd.ReadFrame()
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadFrame() = %+v, %v; want %v", f, err, tt.want)
			}
		})
	}
}

func TestReadFramePassesReadErrors(t *testing.T) {
	boom := errors.New("boom")
	rd := NewReader(io.MultiReader(bytes.NewReader(frame(TypeBody, 0, "abc")[:10]), iotest.ErrReader(boom)))
	if _, err := rd.ReadFrame(); !errors.Is(err, boom) {
		t.Fatalf("ReadFrame() error = %v; want the reader's error %v", err, boom)
	}
}

func TestParseHead(t *testing.T) {
	head := func(status uint16, lines string) []byte {
		return append(binary.BigEndian.AppendUint16(nil, status), lines...)
	}
	tests := []struct {
		name    string
		in      []byte
		status  int
		headers []Header
	}{
		{"no headers", head(204, ""), 204, nil},
		{"one", head(200, "Content-Type: text/html; charset=UTF-8"), 200, []Header{{"Content-Type", "text/html; charset=UTF-8"}}},
		{"several", head(302, "Location: /login\nSet-Cookie: a=1\nSet-Cookie: b=2"), 302,
			[]Header{{"Location", "/login"}, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}}},
		{"trailing newline", head(200, "X-A: 1\n"), 200, []Header{{"X-A", "1"}}},
		{"no space, tabs", head(200, "X-A:1\nX-B:\t\t2"), 200, []Header{{"X-A", "1"}, {"X-B", "2"}}},
		{"empty value", head(200, "X-Empty:"), 200, []Header{{"X-Empty", ""}}},
		{"colon in value", head(200, "Link: <http://x/>; rel=a"), 200, []Header{{"Link", "<http://x/>; rel=a"}}},
		{"trailing space kept", head(200, "X-A: 1 "), 200, []Header{{"X-A", "1 "}}},
		{"utf-8 value", head(200, "X-Name: Grüße"), 200, []Header{{"X-Name", "Grüße"}}},
		{"status 200", head(200, ""), 200, nil},
		{"status 999", head(999, ""), 999, nil},
	}
	for _, tt := range tests {
		status, hs, err := ParseHead(tt.in)
		if err != nil || status != tt.status || !reflect.DeepEqual(hs, tt.headers) {
			t.Errorf("ParseHead(%q) = %d, %q, %v; want %d, %q, nil", tt.in, status, hs, err, tt.status, tt.headers)
		}
	}
}

func TestParseHeadBad(t *testing.T) {
	head := func(status uint16, lines string) []byte {
		return append(binary.BigEndian.AppendUint16(nil, status), lines...)
	}
	tests := []struct {
		name string
		in   []byte
		msg  string
	}{
		{"empty", nil, "head of 0 bytes"},
		{"one byte", []byte{1}, "head of 1 bytes"},
		{"status 0", head(0, ""), "status 0"},
		{"status 99", head(99, ""), "status 99"},
		{"status 100 (1xx cannot end a response)", head(100, ""), "status 100"},
		{"status 199", head(199, ""), "status 199"},
		{"status 1000", head(1000, ""), "status 1000"},
		{"status 65535", head(65535, ""), "status 65535"},
		{"no colon", head(200, "Content-Type text/html"), "bad header line"},
		{"empty name", head(200, ": x"), "bad header line"},
		{"space in name", head(200, "Content Type: x"), "bad header line"},
		{"space before colon", head(200, "X-A : x"), "bad header line"},
		{"separator in name", head(200, "X(A): x"), "bad header line"},
		{"non-ascii name", head(200, "Grüße: x"), "bad header line"},
		{"empty line", head(200, "X-A: 1\n\nX-B: 2"), "bad header line"},
		{"bad second line", head(200, "X-A: 1\nnope"), "bad header line"},
		{"CR in value", head(200, "X-A: 1\r\nX-B: 2"), "control character"},
		{"CR injection", head(200, "Location: /\rSet-Cookie: x=1"), "control character"},
		{"NUL in value", head(200, "X-A: a\x00b"), "control character"},
		{"CR in name", head(200, "X-A\r: 1"), "bad header line"},
	}
	for _, tt := range tests {
		status, hs, err := ParseHead(tt.in)
		// A short payload breaks the framing; everything else is the app's header mistake.
		want := ErrBadHeader
		if len(tt.in) < 2 {
			want = ErrProtocol
		}
		if !errors.Is(err, want) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParseHead(%q) = %d, %q, %v; want %v with %q", tt.in, status, hs, err, want, tt.msg)
		}
	}
}

func TestParseHeadTruncatesLongLines(t *testing.T) {
	in := append(binary.BigEndian.AppendUint16(nil, 200), strings.Repeat("x", 10000)...)
	_, _, err := ParseHead(in)
	if !errors.Is(err, ErrBadHeader) || len(err.Error()) > 200 {
		t.Errorf("ParseHead(200, 10000 x) error = %.300v (%d bytes); want a short ErrBadHeader", err, len(err.Error()))
	}
}

func TestParseHello(t *testing.T) {
	tests := []struct {
		in   []byte
		want Hello
	}{
		{append(binary.BigEndian.AppendUint32(nil, 1234), append([]byte{0}, "8.2.36"...)...), Hello{PID: 1234, PHPVersion: "8.2.36"}},
		{append(binary.BigEndian.AppendUint32(nil, 1), 0), Hello{PID: 1}},
		{append(binary.BigEndian.AppendUint32(nil, math.MaxUint32), append([]byte{0}, "x"...)...), Hello{PID: math.MaxUint32, PHPVersion: "x"}},
		{append(binary.BigEndian.AppendUint32(nil, 7), append([]byte{3}, "tok8.2"...)...), Hello{PID: 7, Token: "tok", PHPVersion: "8.2"}},
		{append(binary.BigEndian.AppendUint32(nil, 9), append([]byte{0}, "8.2.36\n1\n20\n2097152\n8388608"...)...),
			Hello{PID: 9, PHPVersion: "8.2.36", Limits: Limits{Known: true, FileUploads: true, MaxFiles: 20, MaxFileSize: 2 << 20, PostMaxSize: 8 << 20}}},
		{append(binary.BigEndian.AppendUint32(nil, 9), append([]byte{0}, "8.2.36\n0\n0\n0\n0"...)...),
			Hello{PID: 9, PHPVersion: "8.2.36", Limits: Limits{Known: true}}},
	}
	for _, tt := range tests {
		got, err := ParseHello(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseHello(% x) = %+v, %v; want %+v, nil", tt.in, got, err, tt.want)
		}
		if back := AppendHello(nil, tt.want); string(back) != string(tt.in) {
			t.Errorf("AppendHello(%+v) = % x; want % x", tt.want, back, tt.in)
		}
	}
	bad := [][]byte{nil, {0}, {0, 0, 1}, {0, 0, 0, 1}, {0, 0, 0, 1, 4, 'a'}}
	for _, limits := range []string{"\n1", "\n1\n2\n3\n4\n5", "\n1\n-2\n3\n4", "\n1\n2\nx\n4", "\n1\n2\n3\n"} {
		bad = append(bad, append([]byte{0, 0, 0, 1, 0, '8'}, limits...))
	}
	for _, in := range bad {
		if got, err := ParseHello(in); !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseHello(% x) = %+v, %v; want ErrProtocol", in, got, err)
		}
	}
}

func TestParseEnd(t *testing.T) {
	payload := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 2<<20), 3<<20)
	tests := []struct {
		f    Frame
		want End
	}{
		{Frame{Type: TypeEnd, Payload: payload}, End{Memory: 2 << 20, PeakMemory: 3 << 20}},
		{Frame{Type: TypeEnd, Flags: FlagExit, Payload: payload}, End{Exit: true, Memory: 2 << 20, PeakMemory: 3 << 20}},
		{Frame{Type: TypeEnd, Flags: 0xfffe, Payload: make([]byte, 16)}, End{}},
		{Frame{Type: TypeEnd, Flags: 0xffff, Payload: make([]byte, 16)}, End{Exit: true}},
	}
	for _, tt := range tests {
		got, err := ParseEnd(tt.f)
		if err != nil || got != tt.want {
			t.Errorf("ParseEnd(%+v) = %+v, %v; want %+v, nil", tt.f, got, err, tt.want)
		}
	}
	for _, n := range []int{0, 8, 15, 17, 32} {
		f := Frame{Type: TypeEnd, Payload: make([]byte, n)}
		if got, err := ParseEnd(f); !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseEnd(%d-byte payload) = %+v, %v; want ErrProtocol", n, got, err)
		}
	}
}

// serializerCases are values written with a Serializer, the exact text PHP's serialize() gives for
// them, and the PHP expression that value equals.
var serializerCases = []struct {
	name  string
	write func(s *Serializer)
	want  string // serialize() output
	php   string // the PHP value
}{
	{"string", func(s *Serializer) { s.String("abc") }, `s:3:"abc";`, `"abc"`},
	{"empty string", func(s *Serializer) { s.String("") }, `s:0:"";`, `""`},
	{"utf-8 string counts bytes", func(s *Serializer) { s.String("é") }, "s:2:\"é\";", `"\u{e9}"`},
	{"string with quote and semicolon", func(s *Serializer) { s.String(`a";b`) }, `s:4:"a";b";`, `"a\";b"`},
	{"binary string", func(s *Serializer) { s.String("\x00\n\xff") }, "s:3:\"\x00\n\xff\";", `"\x00\n\xff"`},
	{"int", func(s *Serializer) { s.Int(42) }, `i:42;`, `42`},
	{"negative int", func(s *Serializer) { s.Int(-7) }, `i:-7;`, `-7`},
	{"max int", func(s *Serializer) { s.Int(math.MaxInt64) }, `i:9223372036854775807;`, `PHP_INT_MAX`},
	{"float", func(s *Serializer) { s.Float(0.5) }, `d:0.5;`, `0.5`},
	{"whole float", func(s *Serializer) { s.Float(2) }, `d:2;`, `2.0`},
	{"small time float", func(s *Serializer) { s.Float(170000.125) }, `d:170000.125;`, `170000.125`},
	// Go writes large floats with an exponent where PHP does not (see phpSerializeText); unserialize()
	// reads both.
	{"time float", func(s *Serializer) { s.Float(1700000000.123456) }, `d:1.700000000123456e+09;`, `1700000000.123456`},
	{"large float", func(s *Serializer) { s.Float(1e21) }, `d:1e+21;`, `1.0E+21`},
	{"negative float", func(s *Serializer) { s.Float(-1.25) }, `d:-1.25;`, `-1.25`},
	{"seconds", func(s *Serializer) { s.Seconds(1700000000123456) }, `d:1700000000.123456;`, `1700000000.123456`},
	{"whole seconds", func(s *Serializer) { s.Seconds(1700000000000000) }, `d:1700000000.000000;`, `1700000000.0`},
	{"seconds with leading zeros", func(s *Serializer) { s.Seconds(1700000000000120) }, `d:1700000000.000120;`, `1700000000.00012`},
	{"negative seconds", func(s *Serializer) { s.Seconds(-1500000) }, `d:-1.500000;`, `-1.5`},
	{"concat", func(s *Serializer) { s.Concat("/srv/www", "/index.php") }, `s:18:"/srv/www/index.php";`, `"/srv/www/index.php"`},
	{"concat empty", func(s *Serializer) { s.Concat("", "") }, `s:0:"";`, `""`},
	{"join", func(s *Serializer) { s.Join([]string{"a=1", "b=2"}, "; ") }, `s:8:"a=1; b=2";`, `"a=1; b=2"`},
	{"join one", func(s *Serializer) { s.Join([]string{"x/y"}, ", ") }, `s:3:"x/y";`, `"x/y"`},
	{"join none", func(s *Serializer) { s.Join(nil, ", ") }, `s:0:"";`, `""`},
	{"true", func(s *Serializer) { s.Bool(true) }, `b:1;`, `true`},
	{"false", func(s *Serializer) { s.Bool(false) }, `b:0;`, `false`},
	{"empty array", func(s *Serializer) { s.Array(0); s.Close() }, `a:0:{}`, `[]`},
	{"mixed array", func(s *Serializer) {
		s.Array(2)
		s.String("a")
		s.Int(1)
		s.String("b")
		s.Float(0.5)
		s.Close()
	}, `a:2:{s:1:"a";i:1;s:1:"b";d:0.5;}`, `["a" => 1, "b" => 0.5]`},
	{"pairs", func(s *Serializer) {
		s.Array(2)
		s.Pair("REQUEST_METHOD", "GET")
		s.Pair("HTTP_HOST", "example.com")
		s.Close()
	}, `a:2:{s:14:"REQUEST_METHOD";s:3:"GET";s:9:"HTTP_HOST";s:11:"example.com";}`,
		`["REQUEST_METHOD" => "GET", "HTTP_HOST" => "example.com"]`},
	{"int keys and nesting", func(s *Serializer) {
		s.Array(2)
		s.Int(0)
		s.Bool(true)
		s.String("nested")
		s.Array(1)
		s.String("k")
		s.String("v")
		s.Close()
		s.Close()
	}, `a:2:{i:0;b:1;s:6:"nested";a:1:{s:1:"k";s:1:"v";}}`, `[0 => true, "nested" => ["k" => "v"]]`},
}

// phpSerializeText is PHP's serialize() text for the cases where it differs from the Serializer's
// (the value is the same).
var phpSerializeText = map[string]string{
	"time float":  `d:1700000000.123456;`,
	"large float": `d:1.0E+21;`,
	// Seconds writes six decimals always, where PHP writes as few as the float needs.
	"whole seconds":              `d:1700000000;`,
	"seconds with leading zeros": `d:1700000000.00012;`,
	"negative seconds":           `d:-1.5;`,
}

// Seconds is the float of us/1e6, as Float would write it, whatever the microseconds.
func TestSerializerSecondsIsTheFloat(t *testing.T) {
	for _, us := range []int64{0, 1, 999999, 1000000, 1700000000000001, 1765070000123456, 1765070000999999, 1765070000100000, -1, -1234567} {
		var s Serializer
		s.Seconds(us)
		text := strings.TrimSuffix(strings.TrimPrefix(string(s.B), "d:"), ";")
		got, err := strconv.ParseFloat(text, 64)
		if want := float64(us) / 1e6; err != nil || got != want {
			t.Errorf("Seconds(%d) = %q, read as %v (%v); want %v", us, s.B, got, err, want)
		}
	}
	for us := int64(1765070000000000); us < 1765070000000000+200000; us += 7 {
		var s Serializer
		s.Seconds(us)
		if got, _ := strconv.ParseFloat(string(s.B[2:len(s.B)-1]), 64); got != float64(us)/1e6 {
			t.Fatalf("Seconds(%d) = %q; want the float %v", us, s.B, float64(us)/1e6)
		}
	}
}

func TestSerializer(t *testing.T) {
	for _, tt := range serializerCases {
		var s Serializer
		tt.write(&s)
		if got := string(s.B); got != tt.want {
			t.Errorf("Serializer(%s) = %q; want %q", tt.name, got, tt.want)
		}
	}
}

// Non-finite floats must be written the way PHP writes them (NAN, INF, -INF), or unserialize fails.
func TestSerializerNonFinite(t *testing.T) {
	for _, tt := range []struct {
		in   float64
		want string
	}{{math.NaN(), "d:NAN;"}, {math.Inf(1), "d:INF;"}, {math.Inf(-1), "d:-INF;"}} {
		var s Serializer
		s.Float(tt.in)
		if got := string(s.B); got != tt.want {
			t.Errorf("Serializer.Float(%v) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// TestSerializerPHP has PHP itself check the Serializer output: unserialize() must give the expected
// value, and serialize() of that value must give the same text back.
func TestSerializerPHP(t *testing.T) {
	php, err := exec.LookPath("php")
	if err != nil {
		t.Skip("php CLI not installed")
	}
	// One PHP run checks every case: the script reads "name\tbase64(serialized)\n" records on stdin
	// and compares them with the PHP values below, printing one line per mismatch.
	var in bytes.Buffer
	var script strings.Builder
	script.WriteString(`$text = [`)
	for name, text := range phpSerializeText {
		script.WriteString(phpQuote(name) + " => " + phpQuote(text) + ",\n")
	}
	script.WriteString("];\n$want = [")
	for _, tt := range serializerCases {
		var s Serializer
		tt.write(&s)
		in.WriteString(tt.name + "\t" + base64.StdEncoding.EncodeToString(s.B) + "\n")
		script.WriteString(phpQuote(tt.name) + " => " + tt.php + ",\n")
	}
	script.WriteString(`];
$n = 0;
while (($line = fgets(STDIN)) !== false) {
	[$name, $ser] = explode("\t", rtrim($line, "\n"));
	$ser = base64_decode($ser, true);
	$n++;
	$got = unserialize($ser, ['allowed_classes' => false]);
	if ($got === false && $ser !== 'b:0;') { echo "$name: unserialize failed\n"; continue; }
	if ($got !== $want[$name]) { echo "$name: got ", var_export($got, true), "\n"; }
	if (serialize($want[$name]) !== ($text[$name] ?? $ser)) { echo "$name: serialize() gives ", serialize($want[$name]), "\n"; }
}
echo "checked $n\n";
`)
	cmd := exec.Command(php, "-n", "-d", "display_errors=stderr", "-r", script.String())
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("php -r error = %v; stderr:\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if want := "checked " + itoa(len(serializerCases)); lines[len(lines)-1] != want || len(lines) != 1 {
		t.Errorf("PHP check of the Serializer output:\n%s\nwant only %q", out, want)
	}
	if stderr.Len() > 0 {
		t.Errorf("php wrote to stderr:\n%s", stderr.String())
	}
}

func phpQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func itoa(n int) string {
	var s Serializer
	s.Int(int64(n))
	return strings.TrimSuffix(strings.TrimPrefix(string(s.B), "i:"), ";")
}

// FuzzReadFrame feeds arbitrary bytes to the frame reader and the payload decoders: none may panic,
// and every error must be ErrProtocol or a short stream.
func FuzzReadFrame(f *testing.F) {
	f.Add(frame(TypeBody, 0, "hello"))
	f.Add(append(frame(TypeHead, 0, "\x00\xc8Content-Type: text/html\nX-A: 1"), frame(TypeEnd, FlagExit, strings.Repeat("\x00", 16))...))
	f.Add(frame(TypeHello, 0, "\x00\x00\x10\x92\x008.2.36"))
	f.Add(frame(TypeHello, 0, "\x00\x00\x10\x92\x03tok8.2.36"))
	f.Add(frame(TypeReady, 0, "\x00\x00\x10\x92"))
	f.Add(frame(TypeEnd, 0, "short"))
	f.Add(append(frame(TypeEnd, 0, strings.Repeat("\x00", 16)), frame(TypeBye, 0, "")...))
	f.Add([]byte{Version, TypeBody, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rd := NewReader(bytes.NewReader(b))
		for i := 0; ; i++ {
			fr, err := rd.ReadFrame()
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, ErrProtocol) {
					t.Fatalf("ReadFrame() #%d error = %v (%T); want ErrProtocol, io.EOF or io.ErrUnexpectedEOF", i, err, err)
				}
				if err == io.EOF && i == 0 && len(b) != 0 {
					t.Fatalf("ReadFrame() #0 error = io.EOF on %d bytes of input; want a frame or another error", len(b))
				}
				return
			}
			if len(fr.Payload) > MaxPayload {
				t.Fatalf("ReadFrame() #%d payload of %d bytes exceeds MaxPayload", i, len(fr.Payload))
			}
			if status, hs, err := ParseHead(fr.Payload); err != nil {
				if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrBadHeader) {
					t.Fatalf("ParseHead(%q) error = %v; want ErrProtocol or ErrBadHeader", fr.Payload, err)
				}
			} else {
				if status < 200 || status > 999 {
					t.Fatalf("ParseHead(%q) status = %d; want 200..999", fr.Payload, status)
				}
				for _, h := range hs {
					if h.Name == "" || strings.ContainsAny(h.Name, ": \r\n") || strings.ContainsAny(h.Value, "\r\n\x00") {
						t.Fatalf("ParseHead(%q) header %q; want a token name and a value without CR, LF or NUL", fr.Payload, h)
					}
				}
			}
			if _, err := ParseEnd(fr); err != nil && !errors.Is(err, ErrProtocol) {
				t.Fatalf("ParseEnd(%+v) error = %v; want ErrProtocol", fr, err)
			}
			if _, err := ParseHello(fr.Payload); err != nil && !errors.Is(err, ErrProtocol) {
				t.Fatalf("ParseHello(%q) error = %v; want ErrProtocol", fr.Payload, err)
			}
		}
	})
}

// BenchmarkSerializer writes a request's CGI variables (30 pairs and REQUEST_TIME) into a
// reused buffer, as cgiEnv.encode does.
func BenchmarkSerializer(b *testing.B) {
	s := Serializer{B: make([]byte, 0, 4096)}
	b.ReportAllocs()
	for b.Loop() {
		s.B = s.B[:0]
		s.Array(31)
		for range 30 {
			s.String("SERVER_SOFTWARE")
			s.String("askr/0.1.0-123-gabcdef")
		}
		s.String("REQUEST_TIME")
		s.Int(1765070000)
		s.Close()
	}
}
