package fastcgi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
)

// FuzzReadRecord feeds arbitrary streams to the record reader and every record's content to the
// name-value pair and END_REQUEST decoders: none may panic, allocate beyond one record, or accept
// what they cannot give back. The seed corpus in testdata/fuzz/FuzzReadRecord holds the start of
// each captured php-cgi response.
func FuzzReadRecord(f *testing.F) {
	f.Add([]byte{})
	f.Add(AppendRecord(nil, TypeStdout, 1, []byte("Status: 200\r\n\r\nhi")))
	f.Add(AppendRecord(nil, TypeGetValuesResult, 0, AppendPair(AppendPair(nil, MaxConns, "1"), "N", string(make([]byte, 200)))))
	f.Add([]byte{1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 4, 0, 1, 0, 9, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 1, 'x'})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in))
		consumed := 0
		for {
			rec, err := r.Next()
			if err == io.EOF {
				if consumed != len(in) {
					t.Fatalf("io.EOF after %d of %d bytes", consumed, len(in))
				}
				break
			}
			if err != nil {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("Next() error = %v; want ErrProtocol", err)
				}
				break
			}
			if len(rec.Content) != int(rec.ContentLength) || rec.Version != Version1 {
				t.Fatalf("record %+v with %d bytes of content", rec.Header, len(rec.Content))
			}
			if cap(r.buf) > MaxContent+MaxPadding {
				t.Fatalf("reader buffer of %d bytes", cap(r.buf))
			}
			consumed += HeaderLen + int(rec.ContentLength) + int(rec.PaddingLength)
			checkPairs(t, rec.Content)
			if er, err := ParseEndRequest(rec.Content); err == nil {
				want := fmt.Sprintf("%x", rec.Content[:5])
				if got := fmt.Sprintf("%08x%02x", er.AppStatus, byte(er.ProtocolStatus)); got != want {
					t.Fatalf("ParseEndRequest(% x) = %+v", rec.Content, er)
				}
			}
		}
		checkPairs(t, in)
	})
}

// checkPairs decodes b as name-value pairs: the pairs must fit in b and, if it decoded whole,
// encode back to a stream that decodes to the same pairs.
func checkPairs(t *testing.T, b []byte) {
	ps, err := ParsePairs(b)
	if err != nil && !errors.Is(err, ErrProtocol) {
		t.Fatalf("ParsePairs(% .40x) error = %v; want ErrProtocol", b, err)
	}
	size := 0
	for _, p := range ps {
		size += len(p.Name) + len(p.Value)
	}
	if size > len(b) {
		t.Fatalf("ParsePairs(%d bytes) returned %d bytes of names and values", len(b), size)
	}
	if err != nil {
		return
	}
	var enc []byte
	for _, p := range ps {
		enc = AppendPair(enc, p.Name, p.Value)
	}
	again, err := ParsePairs(enc)
	if err != nil || !slices.Equal(again, ps) {
		t.Fatalf("ParsePairs(AppendPair(%q)) = %q, %v", ps, again, err)
	}
}
