package config

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		err  bool
	}{
		{"4096", 4096, false},
		{"0", 0, false},
		{"512k", 512 << 10, false},
		{"512K", 512 << 10, false},
		{"16M", 16 << 20, false},
		{"16m", 16 << 20, false},
		{"1G", 1 << 30, false},
		{"1g", 1 << 30, false},
		{" 2M ", 2 << 20, false},
		{"8Q", 0, true},
		{"", 0, true},
		{"M", 0, true},
		{"-1", 0, true},
		{"-1K", 0, true},
		{"1.5M", 0, true},
		{"1 M", 0, true},
		{"16MB", 0, true},
		{"99999999999999999999", 0, true},
		{"4294967296G", 1 << 62, false}, // 2^62 bytes: the limit
		{"4294967297G", 0, true},
		{"4294967295G", 4294967295 << 30, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("ParseSize(%q) = %d, nil; want an error", tt.in, got)
			} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.in)) {
				t.Errorf("ParseSize(%q) error = %v; want it to quote the input", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
		}
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1000, "1000"},
		{1024, "1K"},
		{1536, "1536"},
		{512 << 10, "512K"},
		{16 << 20, "16M"},
		{1 << 30, "1G"},
		{3 << 30, "3G"},
		{1<<30 + 1<<20, "1025M"},
		{1<<30 + 1, "1073741825"},
	}
	for _, tt := range tests {
		got := tt.in.String()
		if got != tt.want {
			t.Errorf("Size(%d).String() = %q; want %q", int64(tt.in), got, tt.want)
		}
		if back, err := ParseSize(got); err != nil || back != tt.in {
			t.Errorf("ParseSize(Size(%d).String() = %q) = %d, %v; want %d, nil", int64(tt.in), got, back, err, int64(tt.in))
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"30", 30 * time.Second, false},
		{"0", 0, false},
		{" 15 ", 15 * time.Second, false},
		{"500ms", 500 * time.Millisecond, false},
		{"30s", 30 * time.Second, false},
		{"2m", 2 * time.Minute, false},
		{"1h", time.Hour, false},
		{"1m30s", 90 * time.Second, false},
		{"30x", 0, true},
		{"", 0, true},
		{"-1", 0, true},
		{"-5s", 0, true},
		{"1.5", 0, true},
		{"s", 0, true},
		{"thirty", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("ParseDuration(%q) = %v, nil; want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got.D() != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
		}
	}
}

// A number of seconds too large for a time.Duration must be refused, not wrapped around.
func TestParseDurationOverflow(t *testing.T) {
	for _, in := range []string{"10000000000", "18446744074", "9223372037"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, nil; want an out-of-range error", in, got)
		}
		path := writeTOML(t, "[server]\nrequest_timeout = "+in+"\n")
		if c, err := Load(path); err == nil {
			t.Errorf("Load(%q) with request_timeout = %s gives %v, nil; want an out-of-range error", path, in, c.Server.RequestTimeout)
		}
	}
}

func TestDurationString(t *testing.T) {
	if got := Duration(90 * time.Second).String(); got != "1m30s" {
		t.Errorf("Duration(90s).String() = %q; want %q", got, "1m30s")
	}
	if got, err := ParseDuration(Duration(1500 * time.Millisecond).String()); err != nil || got.D() != 1500*time.Millisecond {
		t.Errorf("ParseDuration(Duration(1.5s).String()) = %v, %v; want 1.5s, nil", got, err)
	}
}

func TestParseWorkers(t *testing.T) {
	tests := []struct {
		in   string
		want Workers
		err  bool
	}{
		{"auto", Workers{Auto: true}, false},
		{"AUTO", Workers{Auto: true}, false},
		{" Auto ", Workers{Auto: true}, false},
		{"4", Workers{N: 4}, false},
		{" 12 ", Workers{N: 12}, false},
		// Range checks are Validate's job; ParseWorkers only reads the number.
		{"0", Workers{N: 0}, false},
		{"-1", Workers{N: -1}, false},
		{"", Workers{}, true},
		{"four", Workers{}, true},
		{"4.0", Workers{}, true},
		{"automatic", Workers{}, true},
	}
	for _, tt := range tests {
		got, err := ParseWorkers(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("ParseWorkers(%q) = %+v, nil; want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseWorkers(%q) = %+v, %v; want %+v, nil", tt.in, got, err, tt.want)
		}
	}
}

// Size, Duration and Workers are flag.Values: a flag bound to one reads what the file accepts, says
// the same on a bad value, and leaves the value alone then.
func TestFlagValues(t *testing.T) {
	size, dur, workers := Size(2<<20), Duration(20*time.Second), Workers{N: 3}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&size, "size", "")
	fs.Var(&dur, "dur", "")
	fs.Var(&workers, "workers", "")
	if f := fs.Lookup("size"); f.DefValue != "2M" {
		t.Errorf("Lookup(size).DefValue = %q; want %q", f.DefValue, "2M")
	}
	if err := fs.Parse([]string{"--size", "512k", "--dur", "250ms", "--workers", "auto"}); err != nil {
		t.Fatalf("Parse error = %v; want nil", err)
	}
	if size != 512<<10 || dur.D() != 250*time.Millisecond || !workers.Auto {
		t.Errorf("after Parse: size %v, dur %v, workers %v; want 512K, 250ms, auto", size, dur, workers)
	}
	for _, tt := range []struct {
		v    flag.Value
		in   string
		want error // what Parse* says about in
	}{
		{&size, "8Q", errOf(ParseSize("8Q"))},
		{&dur, "30x", errOf(ParseDuration("30x"))},
		{&dur, "-1", errOf(ParseDuration("-1"))},
		{&workers, "many", errOf(ParseWorkers("many"))},
	} {
		before := tt.v.String()
		err := tt.v.Set(tt.in)
		if err == nil || tt.want == nil || err.Error() != tt.want.Error() {
			t.Errorf("Set(%q) error = %v; want %v", tt.in, err, tt.want)
		}
		if after := tt.v.String(); after != before {
			t.Errorf("Set(%q) changed the value from %q to %q; want it unchanged", tt.in, before, after)
		}
	}
}

func errOf[T any](_ T, err error) error { return err }

func TestWorkersString(t *testing.T) {
	for _, tt := range []struct {
		in   Workers
		want string
	}{{Workers{Auto: true}, "auto"}, {Workers{N: 4}, "4"}, {Workers{Auto: true, N: 3}, "auto"}} {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("%+v.String() = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestWorkerCount(t *testing.T) {
	tests := []struct {
		in   Workers
		want int
	}{
		{Workers{N: 4}, 4},
		{Workers{N: 1}, 1},
		{Workers{Auto: true}, max(1, CPUs)},
	}
	for _, tt := range tests {
		s := Server{Workers: tt.in}
		if got := s.WorkerCount(); got != tt.want {
			t.Errorf("Server{Workers: %v}.WorkerCount() = %d; want %d", tt.in, got, tt.want)
		}
	}
}

func TestWorkerCountFollowsCPUs(t *testing.T) {
	old := CPUs
	defer func() { CPUs = old }()
	CPUs = 3
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // askrd's own GOMAXPROCS does not count
	s := Server{Workers: Workers{Auto: true}}
	if got := s.WorkerCount(); got != 3 {
		t.Errorf("WorkerCount() with auto and 3 CPUs = %d; want 3", got)
	}
}
