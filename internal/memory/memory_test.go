package memory

import (
	"os"
	"testing"
)

func TestParse(t *testing.T) {
	in := []byte(`55d0c5a8b000-7ffd6a5f4000 ---p 00000000 00:00 0                          [rollup]
Rss:               34120 kB
Pss:                5432 kB
Pss_Anon:           1200 kB
Shared_Clean:      28000 kB
Shared_Dirty:        600 kB
Private_Clean:      3000 kB
Private_Dirty:      1520 kB
Swap:                  0 kB
`)
	got, err := parse(in)
	want := Usage{Rss: 34120 << 10, Pss: 5432 << 10, PrivateDirty: 1520 << 10, Shared: 28600 << 10}
	if err != nil || got != want {
		t.Errorf("parse = %+v, %v; want %+v", got, err, want)
	}
	if _, err := parse([]byte("nothing here\n")); err == nil {
		t.Errorf("parse of a file without Rss/Pss: no error")
	}
}

func TestReadSelf(t *testing.T) {
	u, err := Read(os.Getpid())
	if err != nil {
		t.Skipf("no smaps_rollup here: %v", err)
	}
	if u.Rss <= 0 || u.Pss <= 0 || u.Pss > u.Rss {
		t.Errorf("Read(self) = %+v; want 0 < Pss ≤ Rss", u)
	}
}
