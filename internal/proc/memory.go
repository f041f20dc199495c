package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Memory is one process's memory from /proc/PID/smaps_rollup, in bytes. What a CoW template shares
// with its workers shows in Pss and Shared; what a worker has made its own in PrivateDirty.
type Memory struct {
	Rss          int64 // resident
	Pss          int64 // resident, shared pages divided among the processes sharing them
	Shared       int64 // resident pages shared with other processes (Shared_Clean + Shared_Dirty)
	PrivateClean int64 // pages only this process maps, not written
	PrivateDirty int64 // pages only this process has written
}

// Add returns the sum of m and o.
func (m Memory) Add(o Memory) Memory {
	return Memory{m.Rss + o.Rss, m.Pss + o.Pss, m.Shared + o.Shared, m.PrivateClean + o.PrivateClean, m.PrivateDirty + o.PrivateDirty}
}

// Private is the memory only this process maps (Private_Clean + Private_Dirty).
func (m Memory) Private() int64 { return m.PrivateClean + m.PrivateDirty }

// ReadMemory reads pid's /proc/PID/smaps_rollup. A process that is gone gives an error that is
// os.ErrNotExist.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return Memory{}, err
	}
	return parseMemory(b)
}

func parseMemory(b []byte) (Memory, error) {
	var m Memory
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
			dst = &m.Rss
		case "Pss":
			dst = &m.Pss
		case "Private_Clean":
			dst = &m.PrivateClean
		case "Private_Dirty":
			dst = &m.PrivateDirty
		case "Shared_Clean", "Shared_Dirty":
			dst = &m.Shared
		default:
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			continue
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return m, fmt.Errorf("smaps_rollup: %s: %w", name, err)
		}
		*dst += kb << 10
		found++
	}
	if found == 0 {
		return m, fmt.Errorf("smaps_rollup: no Rss/Pss lines")
	}
	return m, nil
}
