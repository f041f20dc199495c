// Package header owns askr's one rule for HTTP header names: what a response head from PHP may
// carry (the worker channel's Head frame, php-cgi's CGI head) and which request headers become
// CGI variables. It has no state and imports nothing of askr.
package header

// ValidName reports whether name is an HTTP token (RFC 9110 section 5.6.2), the only thing a
// header's name may be: visible ASCII without separators.
func ValidName[T string | []byte](name T) bool {
	if len(name) == 0 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || isSeparator(c) {
			return false
		}
	}
	return true
}

func isSeparator(c byte) bool {
	switch c {
	case '"', '(', ')', ',', '/', ':', ';', '<', '=', '>', '?', '@', '[', '\\', ']', '{', '}':
		return true
	}
	return false
}

// ValidCGIName reports whether a request header's name may become a CGI variable (HTTP_*): ASCII
// letters, digits and "-" only, as nginx's ignore_invalid_headers lets through. "_" or "." would
// let a header pose as another (PHP turns "." into "_" as well). Such a name is a token
// (ValidName) too.
func ValidCGIName(name string) bool {
	if len(name) == 0 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !cgiNameByte[name[i]] {
			return false
		}
	}
	return true
}

// cgiNameByte are the bytes of ValidCGIName's names.
var cgiNameByte = func() (t [256]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-'
	}
	return t
}()
