// Package memory reads how much memory processes use, from /proc/PID/smaps_rollup: what is shared
// copy-on-write between a CoW template and its workers shows in Pss and Shared, what each worker
// has made its own in Private_Dirty. It only reads; it does not decide anything.
package memory

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Usage is one process's memory, in bytes.
type Usage struct {
	Rss          int64 // resident
	Pss          int64 // resident, shared pages divided among the processes sharing them
	PrivateDirty int64 // pages only this process has written
	Shared       int64 // resident pages shared with other processes (clean + dirty)
}

// Add returns the sum of u and v.
func (u Usage) Add(v Usage) Usage {
	return Usage{u.Rss + v.Rss, u.Pss + v.Pss, u.PrivateDirty + v.PrivateDirty, u.Shared + v.Shared}
}

// Read reads the memory use of pid.
func Read(pid int) (Usage, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Usage{}, err
	}
	return parse(b)
}

func parse(b []byte) (Usage, error) {
	var u Usage
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(name) {
		case "Rss":
			dst = &u.Rss
		case "Pss":
			dst = &u.Pss
		case "Private_Dirty":
			dst = &u.PrivateDirty
		case "Shared_Clean", "Shared_Dirty":
			dst = &u.Shared
		default:
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			continue
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return u, fmt.Errorf("smaps_rollup: %s: %w", name, err)
		}
		*dst += kb << 10
		found++
	}
	if found == 0 {
		return u, fmt.Errorf("smaps_rollup: no Rss/Pss lines")
	}
	return u, nil
}
