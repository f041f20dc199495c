package phpruntime

import (
	"encoding/json"
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"go/types"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/askr-php/askr/internal/channel"
)

// The runtime's Channel class (Channel.php) and package channel describe one wire format: every
// exported constant of package channel (version, sizes, frame types, flags) is a constant of
// Askr\Runtime\Channel with the same value, and Askr\Runtime\Channel has none that channel
// lacks. A frame type added or renumbered on one side only fails here, not as a protocol error at
// run time.
func TestFrameConstantsMatchChannel(t *testing.T) {
	goSide := channelConstants(t)
	// The parse above is checked against the compiled package, so that a broken parse cannot pass.
	for name, v := range map[string]int64{"PROTOCOL": channel.Version, "MAX_PAYLOAD": channel.MaxPayload,
		"T_REQUEST": int64(channel.TypeRequest), "T_BYE": int64(channel.TypeBye), "FLAG_FLUSH": int64(channel.FlagFlush)} {
		if goSide[name] != v {
			t.Fatalf("constants parsed from internal/channel: %s = %d; want %d (the compiled value)", name, goSide[name], v)
		}
	}
	phpSide := phpChannelConstants(t)
	for _, name := range slices.Sorted(maps.Keys(goSide)) {
		if v, ok := phpSide[name]; !ok {
			t.Errorf("Askr\\Runtime\\Channel::%s missing; internal/channel has it = %d", name, goSide[name])
		} else if v != goSide[name] {
			t.Errorf("Askr\\Runtime\\Channel::%s = %d; want %d as in internal/channel", name, v, goSide[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(phpSide)) {
		if _, ok := goSide[name]; !ok {
			t.Errorf("Askr\\Runtime\\Channel::%s = %d has no constant in internal/channel", name, phpSide[name])
		}
	}
}

// channelConstants evaluates the exported constants of package channel from its source, keyed by
// their PHP names: Version is PROTOCOL, TypeX is T_X, and the others are upper snake case
// (FlagExit is FLAG_EXIT).
func channelConstants(t *testing.T) map[string]int64 {
	t.Helper()
	paths, _ := filepath.Glob("../channel/*.go")
	fset := token.NewFileSet()
	// Only the const declarations, type-checked on their own: they need no imports.
	consts := &ast.File{Name: ast.NewIdent("channel")}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
				consts.Decls = append(consts.Decls, g)
			}
		}
	}
	pkg, err := new(types.Config).Check("channel", fset, []*ast.File{consts}, nil)
	if err != nil {
		t.Fatalf("type-checking internal/channel's constants: %v", err)
	}
	out := map[string]int64{}
	for _, name := range pkg.Scope().Names() {
		c, ok := pkg.Scope().Lookup(name).(*types.Const)
		if !ok || !c.Exported() {
			continue
		}
		v, exact := constant.Int64Val(c.Val())
		if !exact {
			t.Fatalf("channel.%s = %v is not an integer", name, c.Val())
		}
		out[phpName(name)] = v
	}
	if len(out) == 0 {
		t.Fatal("no constants found in internal/channel")
	}
	return out
}

func phpName(goName string) string {
	if goName == "Version" {
		return "PROTOCOL"
	}
	prefix := ""
	if rest, ok := strings.CutPrefix(goName, "Type"); ok {
		prefix, goName = "T_", rest
	}
	return prefix + strings.ToUpper(regexp.MustCompile(`([a-z0-9])([A-Z])`).ReplaceAllString(goName, "${1}_${2}"))
}

// phpChannelConstants asks PHP for Askr\Runtime\Channel's constants, as PHP evaluates them.
func phpChannelConstants(t *testing.T) map[string]int64 {
	t.Helper()
	php, err := exec.LookPath("php")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("php (the CLI) not found: %v", err)
		}
		t.Skip("php (the CLI) not installed")
	}
	// Channel.php only declares the class: requiring it alone starts nothing.
	out, err := exec.Command(php, "-n", "-r",
		`require $argv[1]; echo json_encode((new ReflectionClass(Askr\Runtime\Channel::class))->getConstants());`,
		"Channel.php").CombinedOutput()
	if err != nil {
		t.Fatalf("php: %v\n%s", err, out)
	}
	var consts map[string]int64
	if err := json.Unmarshal(out, &consts); err != nil {
		t.Fatalf("Askr\\Runtime\\Channel's constants: %v in %s", err, out)
	}
	return consts
}
