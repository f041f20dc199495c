package fastcgi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

func TestAppendRecord(t *testing.T) {
	tests := []struct {
		typ     RecordType
		id      uint16
		content string
		want    []byte
	}{
		{TypeStdin, 1, "", []byte{1, 5, 0, 1, 0, 0, 0, 0}},
		{TypeParams, 0x0102, "abc", []byte{1, 4, 1, 2, 0, 3, 5, 0, 'a', 'b', 'c', 0, 0, 0, 0, 0}},
		{TypeGetValues, 0, "12345678", []byte{1, 9, 0, 0, 0, 8, 0, 0, '1', '2', '3', '4', '5', '6', '7', '8'}},
	}
	for _, tt := range tests {
		got := AppendRecord([]byte("x"), tt.typ, tt.id, []byte(tt.content))
		if want := append([]byte("x"), tt.want...); !bytes.Equal(got, want) {
			t.Errorf("AppendRecord(%s, %d, %q) = % x; want % x", tt.typ, tt.id, tt.content, got, want)
		}
	}
	big := AppendRecord(nil, TypeStdout, 1, make([]byte, MaxContent))
	if h, err := ParseHeader(big); err != nil || h.ContentLength != MaxContent || h.PaddingLength != 1 || len(big) != HeaderLen+MaxContent+1 {
		t.Errorf("AppendRecord(%d bytes): header %+v, %v, length %d; want content %d, padding 1", MaxContent, h, err, len(big), MaxContent)
	}
}

func TestAppendRecordPanicsOnOversizedContent(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("AppendRecord(%d bytes) did not panic", MaxContent+1)
		}
	}()
	AppendRecord(nil, TypeStdin, 1, make([]byte, MaxContent+1))
}

func TestParseHeader(t *testing.T) {
	h, err := ParseHeader([]byte{1, 6, 0xab, 0xcd, 0xff, 0xfe, 7, 9})
	want := Header{Version: 1, Type: TypeStdout, RequestID: 0xabcd, ContentLength: 0xfffe, PaddingLength: 7, Reserved: 9}
	if err != nil || h != want {
		t.Errorf("ParseHeader = %+v, %v; want %+v", h, err, want)
	}
	for _, b := range [][]byte{{2, 6, 0, 1, 0, 0, 0, 0}, {0, 6, 0, 1, 0, 0, 0, 0}, {1, 6, 0, 1}} {
		if _, err := ParseHeader(b); !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseHeader(% x) error = %v; want ErrProtocol", b, err)
		}
	}
}

func TestReaderNext(t *testing.T) {
	var stream []byte
	stream = AppendRecord(stream, TypeStdout, 1, []byte("hello"))
	stream = append(stream, 1, byte(TypeStderr), 0, 1, 0, 3, 200, 0) // 3 bytes, 200 of padding
	stream = append(stream, "err"...)
	stream = append(stream, make([]byte, 200)...)
	stream = AppendRecord(stream, TypeStdout, 1, nil)
	stream = AppendRecord(stream, TypeEndRequest, 1, []byte{0, 0, 1, 2, 0, 0, 0, 0})

	// One byte at a time, to exercise every partial read.
	r := NewReader(iotest.OneByteReader(bytes.NewReader(stream)))
	var got []string
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next() error = %v", err)
		}
		got = append(got, fmt.Sprintf("%s:%q", rec.Type, rec.Content))
	}
	want := `STDOUT:"hello" STDERR:"err" STDOUT:"" END_REQUEST:"\x00\x00\x01\x02\x00\x00\x00\x00"`
	if s := strings.Join(got, " "); s != want {
		t.Errorf("records = %s; want %s", s, want)
	}
	if cap(r.buf) > 3+200 {
		t.Errorf("buffer capacity %d after records of at most 203 bytes", cap(r.buf))
	}
}

func TestReaderErrors(t *testing.T) {
	ok := AppendRecord(nil, TypeStdout, 1, []byte("hello"))
	tests := []struct {
		name   string
		stream []byte
		want   string
		eof    bool // the error must also wrap io.ErrUnexpectedEOF
	}{
		{"bad version", []byte{2, 6, 0, 1, 0, 0, 0, 0}, "record version 2, want 1", false},
		{"version 0", []byte{0, 6, 0, 1, 0, 0, 0, 0}, "record version 0, want 1", false},
		{"truncated header", ok[:5], "truncated record header (5 of 8 bytes)", true},
		{"truncated content", ok[:10], "truncated STDOUT record (2 of 8 content and padding bytes)", true},
		{"truncated padding", ok[:14], "truncated STDOUT record (6 of 8 content and padding bytes)", true},
		{"no content at all", ok[:8], "truncated STDOUT record (0 of 8 content and padding bytes)", true},
		{"huge length, no content", []byte{1, 6, 0, 1, 0xff, 0xff, 0xff, 0}, "truncated STDOUT record (0 of 65790 content and padding bytes)", true},
	}
	for _, tt := range tests {
		r := NewReader(bytes.NewReader(tt.stream))
		_, err := r.Next()
		if err == nil || !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Next() error = %v; want ErrProtocol with %q", tt.name, err, tt.want)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) != tt.eof {
			t.Errorf("%s: errors.Is(%v, io.ErrUnexpectedEOF) = %v; want %v", tt.name, err, !tt.eof, tt.eof)
		}
	}

	if _, err := NewReader(bytes.NewReader(nil)).Next(); err != io.EOF {
		t.Errorf("Next() on an empty stream error = %v; want io.EOF", err)
	}
	boom := errors.New("boom")
	if _, err := NewReader(iotest.ErrReader(boom)).Next(); err != boom {
		t.Errorf("Next() on a failing reader error = %v; want %v", err, boom)
	}
}

// A record's declared lengths are at most 65535+255 bytes; the Reader allocates no more than
// that, whatever the stream claims.
func TestReaderAllocatesAtMostOneRecord(t *testing.T) {
	hdr := []byte{1, 6, 0, 1, 0xff, 0xff, 0xff, 0}
	stream := append(bytes.Repeat(append(append([]byte{}, hdr...), make([]byte, 0xffff+0xff)...), 3), hdr...)
	r := NewReader(bytes.NewReader(stream))
	for i := 0; i < 3; i++ {
		if _, err := r.Next(); err != nil {
			t.Fatalf("Next() %d error = %v", i, err)
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Next() on a truncated record error = %v; want io.ErrUnexpectedEOF", err)
	}
	if max := MaxContent + MaxPadding; cap(r.buf) != max {
		t.Errorf("buffer capacity %d; want %d", cap(r.buf), max)
	}
}

func TestPairs(t *testing.T) {
	long := strings.Repeat("v", 128)
	tests := []struct {
		name, value string
		want        []byte
	}{
		{"", "", []byte{0, 0}},
		{"A", "b", []byte{1, 1, 'A', 'b'}},
		{strings.Repeat("n", 127), "", append([]byte{127, 0}, strings.Repeat("n", 127)...)},
		{"N", long, append([]byte{1, 0x80, 0, 0, 128, 'N'}, long...)},
		{long, "x", append(append([]byte{0x80, 0, 0, 128, 1}, long...), 'x')},
	}
	var stream []byte
	var want []Param
	for _, tt := range tests {
		got := AppendPair(nil, tt.name, tt.value)
		if !bytes.Equal(got, tt.want) {
			t.Errorf("AppendPair(%.10q, %.10q) = % .20x; want % .20x", tt.name, tt.value, got, tt.want)
		}
		stream = append(stream, got...)
		want = append(want, Param{tt.name, tt.value})
	}
	ps, err := ParsePairs(stream)
	if err != nil || fmt.Sprint(ps) != fmt.Sprint(want) {
		t.Errorf("ParsePairs(the pairs above) = %.60q, %v; want %.60q", ps, err, want)
	}

	// 1 MiB values and a length of exactly 2³¹-1 in the high-bit encoding.
	big := strings.Repeat("z", 1<<20)
	if ps, err := ParsePairs(AppendPair(nil, "BIG", big)); err != nil || len(ps) != 1 || ps[0].Value != big {
		t.Errorf("ParsePairs(a 1 MiB value) = %d pairs, %v; want the value back", len(ps), err)
	}
	if got := appendPairLen(nil, 1<<31-1); !bytes.Equal(got, []byte{0xff, 0xff, 0xff, 0xff}) {
		t.Errorf("appendPairLen(2³¹-1) = % x; want ff ff ff ff", got)
	}
}

func TestParsePairsErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"no value length", []byte{1}, "name-value pair 0: value length: fastcgi: protocol error: truncated length"},
		{"short 4-byte name length", []byte{0x80, 0}, "name-value pair 0: name length: fastcgi: protocol error: truncated 4-byte length"},
		{"short 4-byte value length", []byte{1, 0x80, 0, 0}, "name-value pair 0: value length: fastcgi: protocol error: truncated 4-byte length"},
		{"name longer than the rest", []byte{5, 0, 'a', 'b'}, "name-value pair 0: fastcgi: protocol error: name and value of 5+0 bytes, only 2 left"},
		{"huge lengths", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'a'}, "name and value of 2147483647+2147483647 bytes, only 1 left"},
		{"second pair truncated", []byte{1, 1, 'a', 'b', 1, 2, 'c', 'd'}, "name-value pair 1: fastcgi: protocol error: name and value of 1+2 bytes, only 2 left"},
	}
	for _, tt := range tests {
		_, err := ParsePairs(tt.in)
		if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: ParsePairs(% x) error = %v; want ErrProtocol with %q", tt.name, tt.in, err, tt.want)
		}
	}
}

// ParsePairs allocates in proportion to its input, whatever lengths the input claims.
func TestParsePairsDoesNotTrustLengths(t *testing.T) {
	in := bytes.Repeat([]byte{0xff, 0xff, 0xff, 0xff, 0x7f}, 100)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		ParsePairs(in)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("100 × ParsePairs(%d bytes claiming 2 GiB) allocated %d bytes", len(in), got)
	}
}

func TestParseEndRequest(t *testing.T) {
	er, err := ParseEndRequest([]byte{0x01, 0x02, 0x03, 0x04, byte(Overloaded), 0, 0, 0})
	if want := (EndRequest{AppStatus: 0x01020304, ProtocolStatus: Overloaded}); err != nil || er != want {
		t.Errorf("ParseEndRequest = %+v, %v; want %+v", er, err, want)
	}
	for _, n := range []int{0, 7, 9} {
		if _, err := ParseEndRequest(make([]byte, n)); !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseEndRequest(%d bytes) error = %v; want ErrProtocol", n, err)
		}
	}
}

func TestStrings(t *testing.T) {
	for v, want := range map[fmt.Stringer]string{
		TypeBeginRequest: "BEGIN_REQUEST", TypeUnknownType: "UNKNOWN_TYPE", RecordType(0): "type 0",
		RecordType(12): "type 12", RequestComplete: "REQUEST_COMPLETE", UnknownRole: "UNKNOWN_ROLE",
		ProtocolStatus(9): "status 9",
	} {
		if got := v.String(); got != want {
			t.Errorf("String() = %q; want %q", got, want)
		}
	}
}
