package config

import (
	"bufio"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// --- etc/askr.toml and the struct stay in sync ---

const etcFile = "../../etc/askr.toml"

// documentedKey matches a key line of etc/askr.toml, commented out or not.
var documentedKey = regexp.MustCompile(`^#?\s*([a-z_]+)\s*=\s*(.*)$`)

// arrayHeader matches the commented-out header of an array of tables in etc/askr.toml: an
// uncommented [[redirect]] would be one (empty) table.
var arrayHeader = regexp.MustCompile(`^#\s*\[\[([a-z_]+)\]\]$`)

// etcLines reads etc/askr.toml, skipping the test if it does not exist yet.
func etcLines(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile(etcFile)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s does not exist yet", etcFile)
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(src), "\n")
}

// etcKeys returns, for every documented key of etc/askr.toml, its section-qualified name and the line
// range (inclusive) that holds its assignment; a multi-line """ string spans several lines.
type etcKey struct {
	name        string
	first, last int
	header      int // the line of its commented-out [[array]] header, or -1
}

func etcKeys(lines []string) []etcKey {
	var keys []etcKey
	section, header := "", -1
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if strings.HasPrefix(line, "[") {
			section, header = strings.Trim(line, "[] "), -1
			continue
		}
		if m := arrayHeader.FindStringSubmatch(line); m != nil {
			section, header = m[1], i
			continue
		}
		m := documentedKey.FindStringSubmatch(line)
		if m == nil || section == "" {
			continue
		}
		k := etcKey{name: section + "." + m[1], first: i, last: i, header: header}
		if strings.HasPrefix(m[2], `"""`) && strings.Count(m[2], `"""`) == 1 {
			for k.last++; k.last < len(lines) && !strings.Contains(lines[k.last], `"""`); k.last++ {
			}
		}
		keys = append(keys, k)
		i = k.last
	}
	return keys
}

func uncomment(line string) string {
	line = strings.TrimPrefix(line, "#")
	return strings.TrimPrefix(line, " ")
}

func TestEtcAskrTomlLoads(t *testing.T) {
	lines := etcLines(t)
	if _, err := Load(etcFile); err != nil {
		t.Fatalf("Load(%q) error = %v; want nil", etcFile, err)
	}
	keys := etcKeys(lines)
	if len(keys) == 0 {
		t.Fatalf("%s documents no keys", etcFile)
	}
	all := append([]string(nil), lines...)
	for _, k := range keys {
		t.Run(k.name, func(t *testing.T) {
			one := append([]string(nil), lines...)
			for i := k.first; i <= k.last; i++ {
				one[i] = uncomment(one[i])
				all[i] = uncomment(all[i])
			}
			if k.header >= 0 {
				one[k.header] = uncomment(lines[k.header])
				all[k.header] = uncomment(lines[k.header])
			}
			path := writeTOML(t, strings.Join(one, "\n"))
			if _, err := Load(path); err != nil {
				t.Errorf("Load(%q) with %s uncommented error = %v; want nil", etcFile, k.name, err)
			}
		})
	}
	// All keys at once; the ones documented with their default must give the default.
	path := writeTOML(t, strings.Join(all, "\n"))
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%q) with every key uncommented error = %v; want nil", etcFile, err)
	}
	// These show an example rather than the default (the default is none or derived).
	examples := map[string]bool{"Root": true, "Alias": true, "Script": true, "AppBase": true, "Ini": true, "Cert": true, "Key": true,
		"HTTPSListen": true, "HTTPRedirect": true, "TrustedProxies": true, "Domains": true, "Email": true, "DirectoryURL": true, "CARoot": true}
	def := Defaults()
	for _, sec := range []struct{ got, want reflect.Value }{
		{reflect.ValueOf(c.Server), reflect.ValueOf(def.Server)},
		{reflect.ValueOf(c.Worker), reflect.ValueOf(def.Worker)},
		{reflect.ValueOf(c.TLS), reflect.ValueOf(def.TLS)},
		{reflect.ValueOf(c.ACME), reflect.ValueOf(def.ACME)},
		{reflect.ValueOf(c.Reload), reflect.ValueOf(def.Reload)},
	} {
		for i := 0; i < sec.got.NumField(); i++ {
			f := sec.got.Type().Field(i)
			if examples[f.Name] {
				continue
			}
			if got, want := sec.got.Field(i).Interface(), sec.want.Field(i).Interface(); !reflect.DeepEqual(got, want) {
				t.Errorf("%s documents %s = %v; the default is %v", etcFile, f.Tag.Get("toml"), got, want)
			}
		}
	}
}

func TestEtcAskrTomlDocumentsEveryKey(t *testing.T) {
	lines := etcLines(t)
	documented := map[string]bool{}
	for _, k := range etcKeys(lines) {
		documented[k.name] = true
	}
	sections := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(strings.Join(lines, "\n")))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "[") {
			sections[strings.Trim(l, "[] ")] = true
		} else if m := arrayHeader.FindStringSubmatch(l); m != nil {
			sections[m[1]] = true
		}
	}
	ct := reflect.TypeOf(Config{})
	for i := 0; i < ct.NumField(); i++ {
		sf := ct.Field(i)
		sec := sf.Tag.Get("toml")
		if sec == "" || sec == "-" {
			continue
		}
		if !sections[sec] {
			t.Errorf("%s has no [%s] section for Config.%s", etcFile, sec, sf.Name)
		}
		st := sf.Type
		if st.Kind() == reflect.Slice { // an array of tables
			st = st.Elem()
		}
		for j := 0; j < st.NumField(); j++ {
			f := st.Field(j)
			key := f.Tag.Get("toml")
			if key == "" || key == "-" {
				continue
			}
			if !documented[sec+"."+key] {
				t.Errorf("%s does not document %s.%s (%s.%s): want a %q or %q line in [%s]",
					etcFile, sec, key, st.Name(), f.Name, key+" =", "# "+key+" =", sec)
			}
		}
	}
}

// fieldDocs returns the doc comment of every field of the section structs in config.go, by
// section-qualified key ("server.listen"), as one line.
func fieldDocs(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "config.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{} // type name → section
	ct := reflect.TypeFor[Config]()
	for i := 0; i < ct.NumField(); i++ {
		if sec := ct.Field(i).Tag.Get("toml"); sec != "" && sec != "-" {
			typ := ct.Field(i).Type
			if typ.Kind() == reflect.Slice {
				typ = typ.Elem()
			}
			sections[typ.Name()] = sec
		}
	}
	docs := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || sections[ts.Name.Name] == "" {
			return true
		}
		for _, fl := range ts.Type.(*ast.StructType).Fields.List {
			if fl.Tag == nil {
				continue
			}
			tag, _ := strconv.Unquote(fl.Tag.Value)
			key := reflect.StructTag(tag).Get("toml")
			docs[sections[ts.Name.Name]+"."+key] = strings.Join(strings.Fields(fl.Doc.Text()), " ")
		}
		return false
	})
	return docs
}

// etcComments returns the comment above every documented key of etc/askr.toml, by
// section-qualified key, as one line. Keys in one block share its comment.
func etcComments(lines []string) map[string]string {
	out := map[string]string{}
	var block []string
	var keys []string
	section := ""
	end := func() {
		for _, k := range keys {
			out[k] = strings.Join(strings.Fields(strings.Join(block, " ")), " ")
		}
		block, keys = nil, nil
	}
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		switch {
		case strings.HasPrefix(line, "["):
			end()
			section = strings.Trim(line, "[] ")
		case arrayHeader.MatchString(line):
			end()
			section = arrayHeader.FindStringSubmatch(line)[1]
		case line == "" || line == "#":
			end()
		case section != "" && documentedKey.MatchString(line):
			m := documentedKey.FindStringSubmatch(line)
			keys = append(keys, section+"."+m[1])
			if strings.HasPrefix(m[2], `"""`) && strings.Count(m[2], `"""`) == 1 {
				for i++; i < len(lines) && !strings.Contains(lines[i], `"""`); i++ {
				}
			}
		case strings.HasPrefix(line, "#") && len(keys) == 0:
			block = append(block, strings.TrimPrefix(line, "#"))
		}
	}
	end()
	return out
}

// defaultSentence matches the closing "Default: …" sentence of a field's doc comment.
var defaultSentence = regexp.MustCompile(` Default: [^\n]*$`)

// etcWant is what etc/askr.toml's comment above key must say, given the field's doc comment: the
// same text with the key in place of the field's name; the closing "Default: …" sentence may be
// left out, as the key's line shows the default.
func etcWant(key, doc, etc string) string {
	_, name, _ := strings.Cut(key, ".")
	_, rest, _ := strings.Cut(doc, " ")
	want := name + " " + rest
	if !strings.Contains(etc, "Default:") {
		want = defaultSentence.ReplaceAllString(want, "")
	}
	return want
}

// The comment of every key in etc/askr.toml (and so in the man page) repeats the struct field's doc
// comment, the reference; "(askr-go)" marks exactly the keys the original askr does not have.
func TestEtcAskrTomlCommentsMatchFieldDocs(t *testing.T) {
	lines := etcLines(t)
	docs := fieldDocs(t)
	comments := etcComments(lines)
	if len(docs) == 0 || len(comments) == 0 {
		t.Fatalf("found %d field docs and %d comments in %s; want some", len(docs), len(comments), etcFile)
	}
	for key, doc := range docs {
		etc, ok := comments[key]
		if !ok {
			continue // TestEtcAskrTomlDocumentsEveryKey reports it
		}
		sec, _, _ := strings.Cut(key, ".")
		original := slices.ContainsFunc(originalKeys, func(k originalKey) bool { return k.key == key || k.key == sec })
		marked := strings.HasPrefix(etc, "(askr-go) ")
		if marked == original {
			t.Errorf("%s: %s is marked (askr-go) = %t; want %t (the original askr has it: %t)", etcFile, key, marked, !original, original)
		}
		etc = strings.TrimPrefix(etc, "(askr-go) ")
		if want := etcWant(key, doc, etc); etc != want {
			t.Errorf("%s: the comment of %s\n%s\nwant (the doc comment of its field, with %q for the field's name)\n%s", etcFile, key, etc, key[strings.IndexByte(key, '.')+1:], want)
		}
	}
}

// The packaged /etc/askr.toml (packaging/debian/askr.toml) is etc/askr.toml with the welcome app's
// paragraph and its two settings (app_base is root's parent): a key documented in one and not the other fails here, before
// the package build's own check (debian/rules) does.
func TestPackagedAskrTomlFollowsEtc(t *testing.T) {
	etc, err := os.ReadFile(etcFile)
	if err != nil {
		t.Fatal(err)
	}
	// packaging/debian/ in the repository; debian/ in the package's source tree.
	deb, err := os.ReadFile(filepath.Join(filepath.Dir(etcFile), "..", "packaging", "debian", "askr.toml"))
	if errors.Is(err, os.ErrNotExist) {
		deb, err = os.ReadFile(filepath.Join(filepath.Dir(etcFile), "..", "debian", "askr.toml"))
	}
	if err != nil {
		t.Fatal(err)
	}
	welcome := map[string]bool{
		`root = "/usr/share/askr/welcome/public"`:       true,
		`script = "/usr/share/askr/welcome/worker.php"`: true,
	}
	var kept []string
	inParagraph := false
	for _, line := range strings.Split(string(deb), "\n") {
		switch {
		case strings.HasPrefix(line, "# As installed by the askr package"):
			inParagraph = true
			continue
		case inParagraph:
			inParagraph = line != "#"
			continue
		case welcome[line]:
			continue
		}
		kept = append(kept, line)
	}
	want := strings.Split(string(etc), "\n")
	if !slices.Equal(kept, want) {
		for i := 0; i < max(len(kept), len(want)); i++ {
			var k, w string
			if i < len(kept) {
				k = kept[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if k != w {
				t.Fatalf("packaging/debian/askr.toml differs from %s at line %d of what remains of it: %q; want %q", etcFile, i+1, k, w)
			}
		}
	}
}
