package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

var update = flag.Bool("update", false, "rewrite testdata/*.notices and the key table of docs/compatibility.md")

// golden compares got with the file at path, or writes it there with -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./internal/config -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// row returns the originalKeys row of key.
func row(t *testing.T, key string) originalKey {
	t.Helper()
	i := slices.IndexFunc(originalKeys, func(k originalKey) bool { return k.key == key })
	if i < 0 {
		t.Fatalf("originalKeys has no %s", key)
	}
	return originalKeys[i]
}

// tomlKeys returns the dotted TOML keys of the fields of t, walking into structs and slices of
// structs (arrays of tables); a struct or a slice of structs is listed too.
func tomlKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("toml")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		keys = append(keys, key)
		if ft.Kind() == reflect.Struct {
			keys = append(keys, tomlKeys(ft, key+".")...)
		}
	}
	return keys
}

// The table of the original's keys matches the types: implemented keys are Config fields, the
// others fields of original, and every field of original has its row.
func TestOriginalKeysTable(t *testing.T) {
	config := tomlKeys(reflect.TypeFor[Config](), "")
	orig := tomlKeys(reflect.TypeFor[original](), "")
	rows := map[string]bool{}
	for _, k := range originalKeys {
		if rows[k.key] {
			t.Errorf("originalKeys lists %s twice", k.key)
		}
		rows[k.key] = true
		switch k.what {
		case implemented:
			if !slices.Contains(config, k.key) {
				t.Errorf("originalKeys: %s is implemented, but Config has no such key", k.key)
			}
		case ignored, refused:
			if k.msg == "" || k.of != "" {
				t.Errorf("originalKeys: %s wants a message and no of", k.key)
			}
		case partOf:
			if of := row(t, k.of); k.msg != "" || (of.what != ignored && of.what != refused) {
				t.Errorf("originalKeys: %s is part of %s, which must be ignored or refused; and it wants no message", k.key, k.of)
			}
		}
		if k.what != implemented && !slices.Contains(orig, k.key) {
			t.Errorf("originalKeys: %s is not a key of original", k.key)
		}
	}
	// Every key of original needs a row: sections are walked into, an array of tables is one key.
	var walk func(typ reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			key := prefix + f.Tag.Get("toml")
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, key+".")
			} else if !rows[key] {
				t.Errorf("original has %s, but originalKeys has no row for it", key)
			}
		}
	}
	walk(reflect.TypeFor[original](), "")
}

// An askr.toml of the original using every key loads and validates, with one notice per key that
// asks for what this version ignores.
func TestOriginalFile(t *testing.T) {
	const path = "testdata/original-askr.toml"
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%q) error = %v; want nil", path, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() of %q error = %v; want nil", path, err)
	}
	var got strings.Builder
	seen := map[string]bool{}
	for _, n := range c.Notices {
		fmt.Fprintln(&got, n)
		if seen[n.Key] {
			t.Errorf("Load(%q) notices %s twice", path, n.Key)
		}
		seen[n.Key] = true
		if n.File != path || n.Line < 1 || !strings.HasPrefix(n.Msg, "not supported by this version; ") {
			t.Errorf("Load(%q) notice %+v; want file, line and \"not supported by this version; …\"", path, n)
		}
	}
	golden(t, "testdata/original-askr.notices", got.String())
	if !c.Worker.Paranoid || seen["worker.paranoid"] {
		t.Errorf("Load(%q): Worker.Paranoid = %t, noticed %t; want the fixture's paranoid = true honoured, without a notice", path, c.Worker.Paranoid, seen["worker.paranoid"])
	}
	for _, k := range originalKeys {
		if k.what == ignored && !seen[k.key] {
			t.Errorf("Load(%q) gives no notice for %s, which the fixture sets", path, k.key)
		}
	}

	// The fixture uses every key of the original but every one.
	var m map[string]any
	md, err := toml.DecodeFile(path, &m)
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	for _, k := range md.Keys() {
		defined[k.String()] = true
	}
	absent := map[string]bool{}
	for _, key := range tomlKeys(reflect.TypeFor[original](), "") {
		if strings.HasPrefix(key, "site.") || strings.HasPrefix(key, "ratelimit.") { // empty arrays
			continue
		}
		if !defined[key] && !absent[key] {
			t.Errorf("%s does not use %s", path, key)
		}
	}
	for _, k := range originalKeys {
		if k.what == implemented && !defined[k.key] {
			t.Errorf("%s does not use %s", path, k.key)
		}
	}
}

// A key with the original's default or off value asks for nothing: no notice.
func TestOriginalOffValuesAreSilent(t *testing.T) {
	path := writeTOML(t, `site = []
ratelimit = []
[server]
max_rss = 0
shadow_sample = 100
force_https = false
trusted_proxies = []
http3 = false
tls_handshake_timeout = 10
sandbox = false
sandbox_write = []
[worker]
paranoid = false
[tls]
self_signed = false
[acme]
enabled = false
domains = []
staging = true
dir = "/var/lib/askr/acme"
[queue]
workers = 0
slots = 0
workers_max = 3
script = "/srv/queue.php"
[cache]
slots = 0
large_slots = 0
response_slots = 0
strip_query_params = ["utm_*"]
persist = "/var/lib/askr/rcache.bin"
[[cache.rule]]
path = "/admin/*"
action = "pass"
[broadcast]
enabled = false
[pusher]
enabled = false
secret = "s"
[reload]
canary = false
canary_window = 10
canary_max_error_rate = 2.0
canary_max_latency_factor = 3
`)
	c, err := Load(path)
	if err != nil || len(c.Notices) != 0 {
		t.Errorf("Load(%q) = notices %v, error %v; want none", path, c.Notices, err)
	}
}

// A key that only configures another's feature is reported with it, not on its own.
func TestOriginalPartsReportedWithTheirKey(t *testing.T) {
	path := writeTOML(t, "[pusher]\nsecret = \"s\"\nenabled = true\n[cache]\nresponse_slots = 8\nvary_user_agent = true\n")
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%q) error = %v; want nil", path, err)
	}
	var got []string
	for _, n := range c.Notices {
		got = append(got, n.String())
	}
	want := []string{
		path + ":3: pusher.enabled: not supported by this version; " + row(t, "pusher.enabled").msg,
		path + ":5: cache.response_slots: not supported by this version; " + row(t, "cache.response_slots").msg,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Load(%q) notices = %q; want %q", path, got, want)
	}
}

// A key whose absence would change security or correctness is refused when it asks for something,
// with file:line and the reason.
func TestOriginalRefused(t *testing.T) {
	tests := []struct {
		src  string
		line int
		key  string
		want string // a substring of the reason
	}{
		{"[server]\nlisten = \"127.0.0.1:8000\"\nsandbox = true\n", 3, "server.sandbox", "SystemCallFilter="},
		{"[server]\nsandbox_write = [\"/var/www/app/storage\"]\n", 2, "server.sandbox_write", "ReadWritePaths="},
		{"[server]\nroot = \"public\"\n\n[[site]]\nhosts = [\"a.example\"]\nroot = \"/srv/a\"\n[[site]]\nhosts = [\"b.example\"]\nroot = \"/srv/b\"\n", 4, "site", "run one askrd per application"},
		{"[[ratelimit]]\npath = \"/login\"\nlimit = 5\n", 1, "ratelimit", "requests would not be limited"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			path := writeTOML(t, tt.src)
			c, err := Load(path)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Load(%q) = notices %v, error %v; want a *config.Error", path, c.Notices, err)
			}
			if want := fmt.Sprintf("%s:%d: %s: not supported by this version; %s", path, tt.line, tt.key, row(t, tt.key).msg); err.Error() != want {
				t.Errorf("Load(%q) error = %v; want %s", path, err, want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load(%q) error = %v; want it to say %q", path, err, tt.want)
			}
		})
	}
}

// tls.self_signed, which the original has too: not together with cert and key.
func TestSelfSigned(t *testing.T) {
	dir := appDir(t)
	base := strings.ReplaceAll("[server]\nroot = \"$DIR/app/public\"\n[tls]\n", "$DIR", dir)
	path := writeTOML(t, base+"self_signed = true\n")
	c, err := Load(path)
	if err == nil {
		err = c.Validate()
	}
	if err != nil || !c.TLS.SelfSigned || !c.TLS.Enabled() {
		t.Errorf("self_signed = true: %+v, %v; want it set and TLS enabled", c.TLS, err)
	}
	path = writeTOML(t, base+strings.ReplaceAll("cert = \"$DIR/app/tls.pem\"\nkey = \"$DIR/app/tls.key\"\nself_signed = true\n", "$DIR", dir))
	c, err = Load(path)
	if err == nil {
		err = c.Validate()
	}
	if want := path + ":6: tls.self_signed: set either self_signed or cert and key, not both"; err == nil || err.Error() != want {
		t.Errorf("self_signed with cert and key: error %v; want %s", err, want)
	}
}

// compatFile holds the table of the original's keys, between these markers.
const (
	compatFile  = "../../docs/compatibility.md"
	tableStart  = "<!-- The table is generated from internal/config/legacy.go by `go test ./internal/config -update`. -->\n"
	tableEnd    = "<!-- End of the generated table. -->\n"
	keyTableCol = "| key | this version | the original's off value: silent | any other value |\n|---|---|---|---|\n"
)

// keyTable renders originalKeys as the Markdown table of docs/compatibility.md.
func keyTable() string {
	var b strings.Builder
	b.WriteString(keyTableCol)
	def := originalDefaults()
	rv := reflect.ValueOf(&def).Elem()
	for _, k := range originalKeys {
		name := "`" + k.key + "`"
		off := "—"
		var v reflect.Value
		if k.what == implemented {
			v = field(reflect.ValueOf(Defaults()), k.key)
		} else {
			v = field(rv, k.key)
		}
		switch {
		case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
			var subs []string
			for i := 0; i < v.Type().Elem().NumField(); i++ {
				subs = append(subs, v.Type().Elem().Field(i).Tag.Get("toml"))
			}
			name = "`[[" + k.key + "]]` (" + strings.Join(subs, ", ") + ")"
			if k.what != implemented {
				off = "no entries"
			}
		case k.what == implemented:
		case v.Kind() == reflect.Slice:
			off = "`[]`"
		case v.Kind() == reflect.Pointer:
			off = "absent"
		default:
			off = fmt.Sprintf("`%v`", v.Interface())
		}
		var what, otherwise string
		switch k.what {
		case implemented:
			what, otherwise = "implemented", k.msg
		case ignored:
			what, otherwise = "accepted, ignored", "one warning: "+k.msg
		case refused:
			what, otherwise = "refused", "error: "+k.msg
		case partOf:
			what = "part of `" + k.of + "`"
			otherwise = "ignored with it (no warning of its own)"
			if row := originalKeys[slices.IndexFunc(originalKeys, func(r originalKey) bool { return r.key == k.of })]; row.what == refused {
				otherwise = "accepted while `" + k.of + "` is off; refused with it"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, what, off, otherwise)
	}
	return b.String()
}

// docs/compatibility.md lists every key of the original askr.toml with what this version does.
func TestCompatibilityKeyTable(t *testing.T) {
	src, err := os.ReadFile(compatFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(src)
	i, j := strings.Index(doc, tableStart), strings.Index(doc, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no %q … %q", compatFile, tableStart, tableEnd)
	}
	want := doc[:i+len(tableStart)] + keyTable() + doc[j:]
	if *update {
		if err := os.WriteFile(compatFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if doc != want {
		t.Errorf("%s: the table of the original's keys is not what internal/config/legacy.go says; go test ./internal/config -update rewrites it\nwant:\n%s", compatFile, keyTable())
	}
}
