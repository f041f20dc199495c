package httpfront

import "testing"

func TestServable(t *testing.T) {
	for _, tc := range []struct {
		rel  string
		want bool
	}{
		{"style.css", true},
		{"img/logo.png", true},
		{".well-known/acme-challenge/x", true},
		{"index.php", false},
		{"Admin.PHP", false},
		{"a.php/b.css", false},
		{"app.phar", false},
		{".env", false},
		{".git/config", false},
		{"assets/.secret/x.js", false},
		{"sub/.htaccess", false},
	} {
		if got := servable(tc.rel); got != tc.want {
			t.Errorf("servable(%q) = %v; want %v", tc.rel, got, tc.want)
		}
	}
}
