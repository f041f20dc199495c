// Package channel owns the worker channel's wire format: the frames askrd and a PHP worker exchange
// over the worker's own Unix socket, and the PHP serialize() encoding of a request. It knows nothing
// of processes, pools or HTTP.
//
// Every frame is an 8-byte header followed by its payload:
//
//	byte 0    protocol version (Version)
//	byte 1    frame type
//	bytes 2-3 flags, big endian
//	bytes 4-7 payload length, big endian (at most MaxPayload)
package channel

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/askr-php/askr/internal/header"
)

// Version is the channel protocol version; the PHP runtime sends the same number in every frame.
const Version = 1

// MaxPayload bounds one frame's payload; larger bodies travel as several frames.
const MaxPayload = 16 << 20

// HeaderSize is the length of a frame header.
const HeaderSize = 8

// Frame types. askrd sends Request, Ping and Stop to a worker, Fork and Stop to a CoW template; a
// worker sends Hello, Head, Body, End, Pong and Bye; a template sends Ready.
const (
	TypeRequest byte = 1 // payload: serialize()d request array
	TypeStop    byte = 2 // no payload: askr_handle_request() returns false; a template exits
	TypeFork    byte = 3 // to a template: token, "\n", log path: fork a worker that says hello with token
	TypePing    byte = 4 // to an idle worker: answer Pong (the health check behind the watchdog)
	TypeAbort   byte = 5 // to a worker mid-response: its client has gone (connection_aborted())
	TypePromote byte = 6 // to an idle CoW worker: become the next template (refork); it answers Ready
	TypeRun     byte = 7 // to an idle worker: serialize()d ['role' => 'queue'|'scheduler', 'script' => path, 'argv' => list ($argv, [0] the script)]: run it as php-cli would, then exit

	TypeHello byte = 16 // payload: uint32 pid, uint8 token length, token, PHP version, then "\n"-separated upload limits (see Limits)
	TypeHead  byte = 17 // payload: uint16 status, then "Name: value" lines joined by "\n"
	TypeBody  byte = 18 // payload: response body bytes; flags: FlagFlush
	TypeEnd   byte = 19 // payload: uint64 memory_get_usage(), uint64 peak; flags: FlagExit
	TypeReady byte = 20 // from a template: uint32 pid; it has booted and forks on request
	TypePong  byte = 21 // from a worker: the answer to Ping
	// TypeBye, no payload: the worker is ending on its own between requests (after its last End, before
	// it read another Request): a Request askrd wrote since was never read and may go to another worker.
	TypeBye byte = 22
)

// FlagExit on an End frame says the worker exits after this response (exit(), a fatal error).
const FlagExit uint16 = 1

// FlagFlush on a Body frame says PHP flushed (flush(), ob_flush()): send what it has to the client now.
const FlagFlush uint16 = 2

// Frame is one decoded frame. Payload aliases the reader's buffer until the next ReadFrame.
type Frame struct {
	Type    byte
	Flags   uint16
	Payload []byte
}

// ErrProtocol marks malformed frames from a worker: the channel cannot be trusted any more.
var ErrProtocol = errors.New("channel protocol error")

// ErrBadHeader marks a well-framed Head whose status or header lines the app got wrong (e.g.
// header('Bad Name: x')); the channel itself is fine.
var ErrBadHeader = errors.New("invalid response header from PHP")

// Reader decodes frames from a worker.
type Reader struct {
	r   *bufio.Reader
	buf []byte
	h   [HeaderSize]byte // the header being read (a local array would escape to the heap)
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 64<<10)} }

// ReadFrame reads the next frame. A malformed header gives an error wrapping ErrProtocol; a clean
// end of stream before a header gives io.EOF, a truncated frame io.ErrUnexpectedEOF.
func (r *Reader) ReadFrame() (Frame, error) {
	if _, err := io.ReadFull(r.r, r.h[:]); err != nil {
		return Frame{}, err
	}
	f, n, err := ParseHeader(r.h[:])
	if err != nil {
		return Frame{}, err
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	f.Payload = r.buf[:n]
	if _, err := io.ReadFull(r.r, f.Payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return f, nil
}

// ParseHeader checks an 8-byte frame header and returns the frame (without payload) and the payload length.
func ParseHeader(h []byte) (Frame, int, error) {
	if len(h) < HeaderSize {
		return Frame{}, 0, fmt.Errorf("%w: short header", ErrProtocol)
	}
	if h[0] != Version {
		return Frame{}, 0, fmt.Errorf("%w: version %d, want %d", ErrProtocol, h[0], Version)
	}
	n := binary.BigEndian.Uint32(h[4:8])
	if n > MaxPayload {
		return Frame{}, 0, fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrProtocol, n, MaxPayload)
	}
	switch h[1] {
	case TypeHello, TypeHead, TypeBody, TypeEnd, TypeReady, TypePong, TypeBye, TypeRequest, TypeStop, TypeFork, TypePing, TypeAbort, TypePromote, TypeRun:
	default:
		return Frame{}, 0, fmt.Errorf("%w: unknown frame type %d", ErrProtocol, h[1])
	}
	return Frame{Type: h[1], Flags: binary.BigEndian.Uint16(h[2:4])}, int(n), nil
}

// AppendHeader appends a frame header for a payload of n bytes.
func AppendHeader(b []byte, typ byte, flags uint16, n int) []byte {
	return append(b, Version, typ, byte(flags>>8), byte(flags), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// Hello is a worker's announcement.
type Hello struct {
	PID        int
	Token      string // the token of the Fork that made a CoW worker; "" otherwise
	PHPVersion string
	Limits     Limits
}

// Limits are the request limits of the worker's PHP configuration, which askrd applies for it when
// it parses uploads, as PHP's own multipart parser does under php-fpm.
type Limits struct {
	Known       bool  // the worker sent them (zero Limits: none known, only askrd's own apply)
	FileUploads bool  // file_uploads
	MaxFiles    int   // max_file_uploads
	MaxFileSize int64 // upload_max_filesize in bytes; 0: no limit
	PostMaxSize int64 // post_max_size in bytes; 0: no limit
}

// ParseHello decodes a Hello payload. After the PHP version come "\n"-separated fields:
// file_uploads (0/1), max_file_uploads, upload_max_filesize and post_max_size in bytes.
func ParseHello(p []byte) (Hello, error) {
	if len(p) < 5 || len(p) < 5+int(p[4]) {
		return Hello{}, fmt.Errorf("%w: hello of %d bytes", ErrProtocol, len(p))
	}
	n := int(p[4])
	h := Hello{PID: int(binary.BigEndian.Uint32(p)), Token: string(p[5 : 5+n])}
	fields := strings.Split(string(p[5+n:]), "\n")
	h.PHPVersion = fields[0]
	if len(fields) == 1 {
		return h, nil
	}
	var v [4]int64
	if len(fields) != 5 {
		return Hello{}, fmt.Errorf("%w: hello with %d limit fields", ErrProtocol, len(fields)-1)
	}
	for i, f := range fields[1:] {
		x, err := strconv.ParseInt(f, 10, 64)
		if err != nil || x < 0 {
			return Hello{}, fmt.Errorf("%w: hello limit %q", ErrProtocol, truncate([]byte(f)))
		}
		v[i] = x
	}
	h.Limits = Limits{Known: true, FileUploads: v[0] != 0, MaxFiles: int(min(v[1], math.MaxInt32)), MaxFileSize: v[2], PostMaxSize: v[3]}
	return h, nil
}

// AppendHello appends a Hello payload.
func AppendHello(b []byte, h Hello) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(h.PID))
	b = append(b, byte(len(h.Token)))
	b = append(b, h.Token...)
	b = append(b, h.PHPVersion...)
	if l := h.Limits; l.Known {
		up := 0
		if l.FileUploads {
			up = 1
		}
		b = fmt.Appendf(b, "\n%d\n%d\n%d\n%d", up, l.MaxFiles, l.MaxFileSize, l.PostMaxSize)
	}
	return b
}

// Header is one response header line as PHP's headers_list() gives it.
type Header struct{ Name, Value string }

// ParseHead decodes a Head payload into the status and the header lines. A short payload is a
// protocol error; a status outside 200–999 (1xx cannot end a response), a line without a colon,
// a name that is not an HTTP token or a control character in a value is ErrBadHeader.
func ParseHead(p []byte) (int, []Header, error) {
	if len(p) < 2 {
		return 0, nil, fmt.Errorf("%w: head of %d bytes", ErrProtocol, len(p))
	}
	status := int(binary.BigEndian.Uint16(p))
	if status < 200 || status > 999 {
		return 0, nil, fmt.Errorf("%w: status %d", ErrBadHeader, status)
	}
	var hs []Header
	rest := p[2:]
	for len(rest) > 0 {
		var line []byte
		if i := indexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			line, rest = rest, nil
		}
		i := indexByte(line, ':')
		if i <= 0 || !header.ValidName(line[:i]) {
			return 0, nil, fmt.Errorf("%w: bad header line %q", ErrBadHeader, truncate(line))
		}
		v := line[i+1:]
		for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
			v = v[1:]
		}
		for _, c := range v {
			if c == '\r' || c == 0 {
				return 0, nil, fmt.Errorf("%w: control character in header %q", ErrBadHeader, truncate(line[:i]))
			}
		}
		hs = append(hs, Header{Name: string(line[:i]), Value: string(v)})
	}
	return status, hs, nil
}

// End is the trailer of a response.
type End struct {
	Exit       bool
	Memory     uint64
	PeakMemory uint64
}

// ParseEnd decodes an End frame.
func ParseEnd(f Frame) (End, error) {
	if len(f.Payload) != 16 {
		return End{}, fmt.Errorf("%w: end of %d bytes", ErrProtocol, len(f.Payload))
	}
	return End{
		Exit:       f.Flags&FlagExit != 0,
		Memory:     binary.BigEndian.Uint64(f.Payload),
		PeakMemory: binary.BigEndian.Uint64(f.Payload[8:]),
	}, nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func truncate(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// Serializer writes values in PHP's serialize() format, which the runtime decodes with
// unserialize($s, ['allowed_classes' => false]) — the cheapest decoder PHP has. Each method stores
// B once: B is a pointer, and a store of one costs a write barrier while the garbage collector runs.
type Serializer struct{ B []byte }

// String appends a string value.
func (s *Serializer) String(v string) {
	b := append(s.B, "s:"...)
	b = strconv.AppendInt(b, int64(len(v)), 10)
	b = append(b, ':', '"')
	b = append(b, v...)
	s.B = append(b, '"', ';')
}

// Bytes appends a string value given as bytes.
func (s *Serializer) Bytes(v []byte) {
	b := append(s.B, "s:"...)
	b = strconv.AppendInt(b, int64(len(v)), 10)
	b = append(b, ':', '"')
	b = append(b, v...)
	s.B = append(b, '"', ';')
}

// Concat appends the string value a+b.
func (s *Serializer) Concat(a, b string) {
	o := append(s.B, "s:"...)
	o = strconv.AppendInt(o, int64(len(a)+len(b)), 10)
	o = append(o, ':', '"')
	o = append(o, a...)
	o = append(o, b...)
	s.B = append(o, '"', ';')
}

// Join appends the string value strings.Join(parts, sep).
func (s *Serializer) Join(parts []string, sep string) {
	n := 0
	if len(parts) > 0 {
		n = len(sep) * (len(parts) - 1)
	}
	for _, p := range parts {
		n += len(p)
	}
	b := append(s.B, "s:"...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, ':', '"')
	for i, p := range parts {
		if i > 0 {
			b = append(b, sep...)
		}
		b = append(b, p...)
	}
	s.B = append(b, '"', ';')
}

// Int appends an integer value.
func (s *Serializer) Int(v int64) {
	b := append(s.B, "i:"...)
	b = strconv.AppendInt(b, v, 10)
	s.B = append(b, ';')
}

// Float appends a float value.
func (s *Serializer) Float(v float64) {
	b := append(s.B, "d:"...)
	switch {
	case math.IsNaN(v):
		b = append(b, "NAN"...)
	case math.IsInf(v, 1):
		b = append(b, "INF"...)
	case math.IsInf(v, -1):
		b = append(b, "-INF"...)
	default:
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
	}
	s.B = append(b, ';')
}

// Seconds appends the float us/1e6, a time in microseconds in seconds (as microtime(true) gives
// it), with six decimals and no exponent, cheaper than Float's shortest form; unserialize() reads
// it as that very float (the division is correctly rounded, and so is PHP's reading of decimals).
func (s *Serializer) Seconds(us int64) {
	b := append(s.B, "d:"...)
	if us < 0 {
		b = append(b, '-')
		us = -us
	}
	b = strconv.AppendInt(b, us/1e6, 10)
	f := us % 1e6
	s.B = append(b, '.', byte('0'+f/1e5), byte('0'+f/1e4%10), byte('0'+f/1e3%10),
		byte('0'+f/100%10), byte('0'+f/10%10), byte('0'+f%10), ';')
}

// Bool appends a boolean value.
func (s *Serializer) Bool(v bool) {
	if v {
		s.B = append(s.B, "b:1;"...)
	} else {
		s.B = append(s.B, "b:0;"...)
	}
}

// Array opens an array of n elements; write 2n values (key, value, …), then call Close.
func (s *Serializer) Array(n int) {
	b := append(s.B, "a:"...)
	b = strconv.AppendInt(b, int64(n), 10)
	s.B = append(b, ':', '{')
}

// Close ends an array.
func (s *Serializer) Close() { s.B = append(s.B, '}') }

// Pair appends a string key and a string value.
func (s *Serializer) Pair(k, v string) {
	s.String(k)
	s.String(v)
}
