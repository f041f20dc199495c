package accesslog

// The two line formats. Every field a client sends is escaped, so that no request can write a
// line break, a quote that ends its field early, or bytes a terminal would interpret into the log.

import (
	"net"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/askr-php/askr/internal/httpfront"
)

// appendCombined appends r's line in the combined log format (nginx's "combined", its time the
// request's end in local time), followed by askr's fields: the request's time, PHP's time, the
// wait for a worker, all in seconds with ms, and the worker's pid ("-" for what PHP did not
// answer):
//
//	127.0.0.1 - alice [06/Dec/2026:12:35:56 +0000] "GET /x?y=1 HTTP/1.1" 200 1234 "http://ref/" "curl/8.0" rt=0.012 php=0.010 wait=0.000 pid=1234
func appendCombined(b []byte, r *httpfront.Record) []byte {
	b = appendEscaped(b, remoteHost(r.RemoteAddr))
	b = append(b, " - "...)
	b = appendField(b, r.User)
	b = append(b, " ["...)
	b = combinedTime.append(b, r.Start.Add(r.Duration))
	b = append(b, `] "`...)
	b = appendEscaped(b, r.Method)
	b = append(b, ' ')
	b = appendEscaped(b, r.URI)
	b = append(b, ' ')
	b = appendEscaped(b, r.Proto)
	b = append(b, `" `...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.BytesOut, 10)
	b = append(b, ` "`...)
	b = appendField(b, r.Referer)
	b = append(b, `" "`...)
	b = appendField(b, r.UserAgent)
	b = append(b, `" rt=`...)
	b = appendSeconds(b, r.Duration)
	if !r.PHP {
		return append(b, " php=- wait=- pid=-\n"...)
	}
	b = append(b, " php="...)
	if r.Visit.PID != 0 {
		b = appendSeconds(b, r.Visit.Upstream)
	} else {
		b = append(b, '-')
	}
	b = append(b, " wait="...)
	b = appendSeconds(b, r.Visit.QueueWait)
	b = append(b, " pid="...)
	if r.Visit.PID != 0 {
		b = strconv.AppendInt(b, int64(r.Visit.PID), 10)
	} else {
		b = append(b, '-')
	}
	return append(b, '\n')
}

// The lines' times to the second, formatted once a second: AppendFormat was most of a line's cost.
var (
	combinedTime = stampCache{layout: "02/Jan/2006:15:04:05 -0700", local: true}
	jsonTime     = stampCache{layout: "2006-01-02T15:04:05"} // UTC; appendJSON adds the ms and "Z"
)

// stampCache formats times in layout (to the second, in time.Local if local, else UTC) and keeps
// the last second's text.
type stampCache struct {
	layout string
	local  bool
	last   atomic.Pointer[stamp]
}

// stamp is a second's text, in the zone loc.
type stamp struct {
	sec  int64
	loc  *time.Location
	text []byte
}

// append appends t formatted, to the second.
func (c *stampCache) append(b []byte, t time.Time) []byte {
	loc := time.UTC
	if c.local {
		loc = time.Local
	}
	sec := t.Unix()
	if s := c.last.Load(); s != nil && s.sec == sec && s.loc == loc {
		return append(b, s.text...)
	}
	text := t.In(loc).AppendFormat(nil, c.layout)
	c.last.Store(&stamp{sec: sec, loc: loc, text: text})
	return append(b, text...)
}

// remoteHost is the address of the peer without its port.
func remoteHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// appendField appends s escaped, or "-" if it is empty.
func appendField(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return appendEscaped(b, s)
}

// appendEscaped appends s with `"`, `\`, control bytes and every byte from 0x7f up as \xHH, as
// nginx's access log does: the line stays one line of printable ASCII whatever the client sent.
func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return b
}

// appendSeconds appends d in seconds with three decimals (nginx's $request_time).
func appendSeconds(b []byte, d time.Duration) []byte {
	ms := d.Milliseconds()
	b = strconv.AppendInt(b, ms/1000, 10)
	b = append(b, '.')
	frac := ms % 1000
	if frac < 100 {
		b = append(b, '0')
	}
	if frac < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, frac, 10)
}

// appendJSON appends r as one JSON object on one line: ts is the request's end (RFC 3339 in UTC,
// with ms), durations are ms with µs, and php_ms, queue_ms and pid are null for what PHP did not
// answer (php_ms and pid also when no worker took it).
func appendJSON(b []byte, r *httpfront.Record) []byte {
	b = append(b, `{"ts":"`...)
	end := r.Start.Add(r.Duration)
	b = jsonTime.append(b, end)
	ms := end.Nanosecond() / 1e6 // truncated, as AppendFormat's .000
	b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
	b = appendJSONField(b, `","remote":`, remoteHost(r.RemoteAddr))
	b = appendJSONField(b, `,"method":`, r.Method)
	b = appendJSONField(b, `,"uri":`, r.URI)
	b = appendJSONField(b, `,"proto":`, r.Proto)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, r.BytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, r.BytesOut, 10)
	b = append(b, `,"duration_ms":`...)
	b = appendMS(b, r.Duration)
	worker := r.PHP && r.Visit.PID != 0
	b = append(b, `,"php_ms":`...)
	if worker {
		b = appendMS(b, r.Visit.Upstream)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"queue_ms":`...)
	if r.PHP {
		b = appendMS(b, r.Visit.QueueWait)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"pid":`...)
	if worker {
		b = strconv.AppendInt(b, int64(r.Visit.PID), 10)
	} else {
		b = append(b, "null"...)
	}
	b = appendJSONField(b, `,"host":`, r.Host)
	b = appendJSONField(b, `,"referer":`, r.Referer)
	b = appendJSONField(b, `,"user_agent":`, r.UserAgent)
	b = appendJSONField(b, `,"user":`, r.User)
	return append(b, "}\n"...)
}

// appendMS appends d in milliseconds with three decimals.
func appendMS(b []byte, d time.Duration) []byte {
	return strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', 3, 64)
}

func appendJSONField(b []byte, key, s string) []byte {
	b = append(b, key...)
	return appendJSONString(b, s)
}

// appendJSONString appends s as a JSON string of ASCII: `"`, `\` and control characters escaped,
// everything from U+007F up as \uXXXX (so U+2028 cannot end a line for a JavaScript reader either),
// and each byte that is not UTF-8 as U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
			i++
			continue
		case '\n':
			b = append(b, '\\', 'n')
			i++
			continue
		case '\r':
			b = append(b, '\\', 'r')
			i++
			continue
		case '\t':
			b = append(b, '\\', 't')
			i++
			continue
		}
		r, size := rune(c), 1
		if c >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:]) // utf8.RuneError, 1 for a byte that is not UTF-8
		}
		i += size
		if r > 0xffff { // a surrogate pair
			r -= 0x10000
			hi, lo := 0xd800+(r>>10), 0xdc00+(r&0x3ff)
			b = append(b, '\\', 'u', hex[hi>>12&0xf], hex[hi>>8&0xf], hex[hi>>4&0xf], hex[hi&0xf])
			r = lo
		}
		b = append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
	}
	return append(b, '"')
}
