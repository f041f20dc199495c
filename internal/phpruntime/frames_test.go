package phpruntime

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/askr-php/askr/internal/channel"
)

// The runtime's frame constants are the channel package's: a frame type added on one side only
// would be a protocol error at run time.
func TestFrameConstantsMatchChannel(t *testing.T) {
	want := map[string]int{
		"PROTOCOL": channel.Version, "MAX_PAYLOAD": channel.MaxPayload,
		"FLAG_EXIT": int(channel.FlagExit), "FLAG_FLUSH": int(channel.FlagFlush),
		"T_REQUEST": int(channel.TypeRequest), "T_STOP": int(channel.TypeStop), "T_FORK": int(channel.TypeFork),
		"T_PING": int(channel.TypePing), "T_ABORT": int(channel.TypeAbort), "T_HELLO": int(channel.TypeHello),
		"T_HEAD": int(channel.TypeHead), "T_BODY": int(channel.TypeBody), "T_END": int(channel.TypeEnd),
		"T_READY": int(channel.TypeReady), "T_PONG": int(channel.TypePong), "T_BYE": int(channel.TypeBye),
	}
	got := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^\s*(?:public|private) const (PROTOCOL|MAX_PAYLOAD|FLAG_\w+|T_\w+) = (\d+);`).FindAllSubmatch(source, -1) {
		n, _ := strconv.Atoi(string(m[2]))
		got[string(m[1])] = n
	}
	for name, v := range want {
		if g, ok := got[name]; !ok || g != v {
			t.Errorf("runtime.php const %s = %d (found: %v); want %d as in internal/channel", name, g, ok, v)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("runtime.php const %s has no counterpart in this test; add it (and to internal/channel)", name)
		}
	}
}
