package header

import "testing"

// TestOneHeaderValidator pins the one header-name rule askr has: the worker channel's and the
// FastCGI head's parsers and the front's CGI variables all ask this package.
func TestOneHeaderValidator(t *testing.T) {
	for _, tc := range []struct {
		name  string
		token bool // ValidName
		cgi   bool // ValidCGIName
	}{
		{"Content-Type", true, true},
		{"X-Powered-By", true, true},
		{"x-a1", true, true},
		{"Set-Cookie", true, true},
		{"X_Under", true, false},
		{"X.Dot", true, false},
		{"X!#$%&'*+^`|~", true, false},
		{"", false, false},
		{"Bad Name", false, false},
		{"Bad:Name", false, false},
		{"Bad\tName", false, false},
		{"Bad\rName", false, false},
		{"Bad\x00", false, false},
		{"Bad\x7f", false, false},
		{"Bäd", false, false},
		{"(x)", false, false},
		{"a/b", false, false},
		{"a@b", false, false},
		{"a=b", false, false},
		{"{a}", false, false},
		{`a"b`, false, false},
		{`a\b`, false, false},
	} {
		if got := ValidName(tc.name); got != tc.token {
			t.Errorf("ValidName(%q) = %v; want %v", tc.name, got, tc.token)
		}
		if got := ValidName([]byte(tc.name)); got != tc.token {
			t.Errorf("ValidName([]byte(%q)) = %v; want %v", tc.name, got, tc.token)
		}
		if got := ValidCGIName(tc.name); got != tc.cgi {
			t.Errorf("ValidCGIName(%q) = %v; want %v", tc.name, got, tc.cgi)
		}
	}
}

// A CGI name's every byte is a letter, a digit or "-", each a token byte: byte by byte, as the
// rule it replaced (ValidName, then that set) said.
func TestValidCGINameEveryByte(t *testing.T) {
	for c := 0; c < 256; c++ {
		name := "X" + string(rune(c))[:1]
		if c >= 0x80 {
			name = "X" + string([]byte{byte(c)})
		}
		set := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-'
		if got, want := ValidCGIName(name), ValidName(name) && set; got != want {
			t.Errorf("ValidCGIName(%q) = %v; want %v", name, got, want)
		}
	}
}
