// Package fastcgi is a small FastCGI 1.0 client: the record format, name-value pairs, one request at
// a time on one connection (with or without FCGI_KEEP_CONN), and the CGI response head that php-cgi
// writes at the start of its output. It is written for php-cgi running as a FastCGI application
// (a listening socket on its fd 0) and knows nothing of processes, pools or HTTP servers: callers
// pass it a connected net.Conn and writers for the output.
//
// Every record is an 8-byte header followed by its content and padding:
//
//	byte 0    version (Version1)
//	byte 1    record type
//	bytes 2-3 request id, big endian (0 for management records)
//	bytes 4-5 content length, big endian (at most MaxContent)
//	byte 6    padding length
//	byte 7    reserved
//
// Errors for records and name-value pairs that break the spec wrap ErrProtocol; the Reader never
// allocates more than the record it reads declares (at most MaxContent+MaxPadding bytes).
package fastcgi

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Version1 is the only FastCGI protocol version.
const Version1 = 1

// HeaderLen is the length of a record header.
const HeaderLen = 8

// MaxContent is the largest content one record can carry; longer streams are split.
const MaxContent = 65535

// MaxPadding is the largest padding one record can carry.
const MaxPadding = 255

// RecordType is the type of a record (byte 1 of its header).
type RecordType uint8

// Record types of FastCGI 1.0.
const (
	TypeBeginRequest    RecordType = 1  // web server → application: role and flags of a new request
	TypeAbortRequest    RecordType = 2  // web server → application: abandon the request
	TypeEndRequest      RecordType = 3  // application → web server: app status and protocol status
	TypeParams          RecordType = 4  // web server → application: stream of name-value pairs
	TypeStdin           RecordType = 5  // web server → application: request body stream
	TypeStdout          RecordType = 6  // application → web server: response stream
	TypeStderr          RecordType = 7  // application → web server: error stream
	TypeData            RecordType = 8  // web server → application: filter data (Filter role only)
	TypeGetValues       RecordType = 9  // management: query the application's variables
	TypeGetValuesResult RecordType = 10 // management: the answer to GetValues
	TypeUnknownType     RecordType = 11 // management: the application did not know a management record
)

var typeNames = [...]string{
	TypeBeginRequest:    "BEGIN_REQUEST",
	TypeAbortRequest:    "ABORT_REQUEST",
	TypeEndRequest:      "END_REQUEST",
	TypeParams:          "PARAMS",
	TypeStdin:           "STDIN",
	TypeStdout:          "STDOUT",
	TypeStderr:          "STDERR",
	TypeData:            "DATA",
	TypeGetValues:       "GET_VALUES",
	TypeGetValuesResult: "GET_VALUES_RESULT",
	TypeUnknownType:     "UNKNOWN_TYPE",
}

// String returns the spec's name of t without the FCGI_ prefix, or "type N".
func (t RecordType) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "type " + strconv.Itoa(int(t))
}

// Roles of a BEGIN_REQUEST record.
const (
	RoleResponder  = 1
	RoleAuthorizer = 2
	RoleFilter     = 3
)

// FlagKeepConn in a BEGIN_REQUEST record asks the application to keep the connection open after
// the request; without it the application closes the connection after END_REQUEST.
const FlagKeepConn = 1

// ProtocolStatus is the protocol status of an END_REQUEST record.
type ProtocolStatus uint8

// Protocol statuses of FastCGI 1.0.
const (
	RequestComplete ProtocolStatus = 0 // the request ran (AppStatus says how)
	CantMpxConn     ProtocolStatus = 1 // rejected: the application does not multiplex connections
	Overloaded      ProtocolStatus = 2 // rejected: the application is out of some resource
	UnknownRole     ProtocolStatus = 3 // rejected: the application does not implement the role
)

// String returns the spec's name of s without the FCGI_ prefix, or "status N".
func (s ProtocolStatus) String() string {
	switch s {
	case RequestComplete:
		return "REQUEST_COMPLETE"
	case CantMpxConn:
		return "CANT_MPX_CONN"
	case Overloaded:
		return "OVERLOADED"
	case UnknownRole:
		return "UNKNOWN_ROLE"
	}
	return "status " + strconv.Itoa(int(s))
}

// Names of the variables a GET_VALUES record can ask for.
const (
	MaxConns  = "FCGI_MAX_CONNS"  // how many concurrent connections the application accepts
	MaxReqs   = "FCGI_MAX_REQS"   // how many concurrent requests the application accepts
	MpxsConns = "FCGI_MPXS_CONNS" // "1" if the application multiplexes connections, else "0"
)

// ErrProtocol is wrapped by every error that reports input violating FastCGI 1.0.
var ErrProtocol = errors.New("fastcgi: protocol error")

func protocolErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// Header is a decoded record header.
type Header struct {
	Version       uint8
	Type          RecordType
	RequestID     uint16
	ContentLength uint16
	PaddingLength uint8
	Reserved      uint8
}

// ParseHeader decodes the first HeaderLen bytes of b. It fails if b is shorter or the version is
// not Version1.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, protocolErrorf("record header of %d bytes, want %d", len(b), HeaderLen)
	}
	h := Header{
		Version:       b[0],
		Type:          RecordType(b[1]),
		RequestID:     binary.BigEndian.Uint16(b[2:]),
		ContentLength: binary.BigEndian.Uint16(b[4:]),
		PaddingLength: b[6],
		Reserved:      b[7],
	}
	if h.Version != Version1 {
		return h, protocolErrorf("record version %d, want %d", h.Version, Version1)
	}
	return h, nil
}

// AppendRecord appends to dst one record of type t for request id with the given content, padded
// to a multiple of 8 bytes as the spec recommends. It panics if content is longer than MaxContent
// (a programming error: callers split streams).
func AppendRecord(dst []byte, t RecordType, id uint16, content []byte) []byte {
	if len(content) > MaxContent {
		panic("fastcgi: record content of " + strconv.Itoa(len(content)) + " bytes")
	}
	pad := -len(content) & 7
	dst = append(dst, Version1, byte(t), byte(id>>8), byte(id),
		byte(len(content)>>8), byte(len(content)), byte(pad), 0)
	dst = append(dst, content...)
	return append(dst, make([]byte, pad)...)
}

// Record is one record read by a Reader. Content aliases the Reader's buffer and is valid only
// until the next call to Next.
type Record struct {
	Header
	Content []byte
}

// Reader reads records from a byte stream. Its buffer grows to the largest record seen, never
// beyond HeaderLen+MaxContent+MaxPadding bytes.
type Reader struct {
	r   *bufio.Reader
	buf []byte
}

// readBuffer is the size of a Reader's read buffer: room for a few of php-cgi's STDOUT records
// (at most 8192 bytes each), so that one read takes whatever of an answer has arrived.
const readBuffer = 32 << 10

// NewReader returns a Reader reading from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, readBuffer)}
}

// Buffered returns how many bytes have been read from the stream but not yet returned in a
// record: 0 means the next record has not arrived (as far as one read could tell).
func (r *Reader) Buffered() int { return r.r.Buffered() }

// Next reads the next record. At a clean end of the stream (no byte of a new record) it returns
// io.EOF; a stream that ends inside a record gives an error wrapping both ErrProtocol and
// io.ErrUnexpectedEOF. Other read errors are returned as they are.
func (r *Reader) Next() (Record, error) {
	var hb [HeaderLen]byte
	if n, err := io.ReadFull(r.r, hb[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return Record{}, fmt.Errorf("%w: truncated record header (%d of %d bytes): %w", ErrProtocol, n, HeaderLen, err)
		}
		return Record{}, err
	}
	h, err := ParseHeader(hb[:])
	if err != nil {
		return Record{}, err
	}
	n := int(h.ContentLength) + int(h.PaddingLength)
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	body := r.buf[:n]
	if got, err := io.ReadFull(r.r, body); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return Record{}, fmt.Errorf("%w: truncated %s record (%d of %d content and padding bytes): %w",
				ErrProtocol, h.Type, got, n, io.ErrUnexpectedEOF)
		}
		return Record{}, err
	}
	return Record{Header: h, Content: body[:h.ContentLength]}, nil
}

// Param is one name-value pair of a PARAMS or GET_VALUES(_RESULT) stream.
type Param struct {
	Name, Value string
}

// AppendPair appends the name-value pair encoding of name and value to dst: each length in one
// byte if below 128, else in four bytes with the high bit set. It panics if either is longer than
// 2³¹-1 bytes.
func AppendPair(dst []byte, name, value string) []byte {
	dst = appendPairLen(dst, len(name))
	dst = appendPairLen(dst, len(value))
	dst = append(dst, name...)
	return append(dst, value...)
}

func appendPairLen(dst []byte, n int) []byte {
	if n < 0x80 {
		return append(dst, byte(n))
	}
	if uint64(n) > 0x7fffffff {
		panic("fastcgi: name-value pair of " + strconv.Itoa(n) + " bytes")
	}
	return binary.BigEndian.AppendUint32(dst, uint32(n)|1<<31)
}

// ParsePairs decodes a complete name-value pair stream (the concatenated content of a stream's
// records). Lengths are checked against b before anything is copied, so it allocates in
// proportion to len(b) whatever lengths b claims.
func ParsePairs(b []byte) ([]Param, error) {
	var ps []Param
	for len(b) > 0 {
		p, n, err := parsePair(b)
		if err != nil {
			return ps, fmt.Errorf("name-value pair %d: %w", len(ps), err)
		}
		ps = append(ps, p)
		b = b[n:]
	}
	return ps, nil
}

// parsePair decodes one pair at the start of b and returns it with its encoded length.
func parsePair(b []byte) (Param, int, error) {
	nameLen, i, err := parsePairLen(b, 0)
	if err != nil {
		return Param{}, 0, fmt.Errorf("name length: %w", err)
	}
	valueLen, i, err := parsePairLen(b, i)
	if err != nil {
		return Param{}, 0, fmt.Errorf("value length: %w", err)
	}
	if uint64(len(b)-i) < uint64(nameLen)+uint64(valueLen) {
		return Param{}, 0, protocolErrorf("name and value of %d+%d bytes, only %d left", nameLen, valueLen, len(b)-i)
	}
	name := string(b[i : i+nameLen])
	i += nameLen
	value := string(b[i : i+valueLen])
	return Param{name, value}, i + valueLen, nil
}

func parsePairLen(b []byte, i int) (n, next int, err error) {
	if i >= len(b) {
		return 0, 0, protocolErrorf("truncated length")
	}
	if b[i] < 0x80 {
		return int(b[i]), i + 1, nil
	}
	if len(b)-i < 4 {
		return 0, 0, protocolErrorf("truncated 4-byte length")
	}
	return int(binary.BigEndian.Uint32(b[i:]) &^ (1 << 31)), i + 4, nil
}

// EndRequest is the content of an END_REQUEST record.
type EndRequest struct {
	AppStatus      uint32         // the application's exit status (php-cgi: always 0)
	ProtocolStatus ProtocolStatus // RequestComplete, or why the request was rejected
}

// ParseEndRequest decodes the content of an END_REQUEST record, which must be 8 bytes long.
func ParseEndRequest(content []byte) (EndRequest, error) {
	if len(content) != 8 {
		return EndRequest{}, protocolErrorf("END_REQUEST content of %d bytes, want 8", len(content))
	}
	return EndRequest{AppStatus: binary.BigEndian.Uint32(content), ProtocolStatus: ProtocolStatus(content[4])}, nil
}

// beginRequestContent returns the content of a BEGIN_REQUEST record.
func beginRequestContent(role uint16, flags byte) []byte {
	return []byte{byte(role >> 8), byte(role), flags, 0, 0, 0, 0, 0}
}
