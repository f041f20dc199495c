package backtrace

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// region is one mapping of a process, from /proc/PID/maps.
type region struct {
	start, end uint64
	readable   bool
	offset     uint64 // into the mapped file
	dev, ino   uint64 // the mapped file; 0 for anonymous memory
}

// readMaps reads the mappings of pid, sorted by address.
func readMaps(pid int) ([]region, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	var rs []region
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if r, ok := parseMapsLine(sc.Text()); ok {
			rs = append(rs, r)
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].start < rs[j].start })
	return rs, nil
}

// parseMapsLine parses "55d0c8e00000-55d0c8e7c000 r--p 00000000 08:01 1234 /usr/bin/php-cgi8.2".
func parseMapsLine(line string) (region, bool) {
	f := strings.Fields(line)
	if len(f) < 5 {
		return region{}, false
	}
	lo, hi, ok := strings.Cut(f[0], "-")
	major, minor, ok2 := strings.Cut(f[3], ":")
	if !ok || !ok2 {
		return region{}, false
	}
	var r region
	var errs [6]error
	r.start, errs[0] = strconv.ParseUint(lo, 16, 64)
	r.end, errs[1] = strconv.ParseUint(hi, 16, 64)
	r.offset, errs[2] = strconv.ParseUint(f[2], 16, 64)
	ma, e3 := strconv.ParseUint(major, 16, 32)
	mi, e4 := strconv.ParseUint(minor, 16, 32)
	errs[3], errs[4] = e3, e4
	r.ino, errs[5] = strconv.ParseUint(f[4], 10, 64)
	if errors.Join(errs[:]...) != nil {
		return region{}, false
	}
	if r.ino != 0 {
		r.dev = unix.Mkdev(uint32(ma), uint32(mi))
	}
	r.readable = f[1] != "" && f[1][0] == 'r'
	return r, true
}

// loadBase is where the executable k is mapped in a process with mappings rs: the start of its
// mapping at file offset 0. The inode decides; the device only breaks a tie, since on btrfs and
// on some overlayfs kernels the device in /proc/PID/maps is not the one stat reports.
func loadBase(rs []region, k fileKey) (uint64, bool) {
	base, found := uint64(0), false
	for _, r := range rs {
		if r.ino != k.ino || r.offset != 0 {
			continue
		}
		if r.dev == k.dev {
			return r.start, true
		}
		if !found {
			base, found = r.start, true
		}
	}
	return base, found
}

// errBadPointer: a pointer read from the process is not one the walk believes.
var errBadPointer = errors.New("bad pointer")

// memory reads another process's memory through /proc/PID/mem, only inside its readable
// mappings.
type memory struct {
	f  *os.File
	rs []region
}

// read reads n bytes at addr.
func (m *memory) read(addr uint64, n int) ([]byte, error) {
	if !m.readable(addr, uint64(n)) {
		return nil, fmt.Errorf("%w: %#x", errBadPointer, addr)
	}
	buf := make([]byte, n)
	if _, err := m.f.ReadAt(buf, int64(addr)); err != nil {
		return nil, fmt.Errorf("read %d bytes at %#x: %w", n, addr, err)
	}
	return buf, nil
}

// pointer reads an aligned pointer at addr.
func (m *memory) pointer(addr uint64) (uint64, error) {
	b, err := m.read(addr, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// readable reports whether [addr, addr+n) lies in one readable mapping.
func (m *memory) readable(addr, n uint64) bool {
	if addr == 0 || addr+n < addr {
		return false
	}
	i := sort.Search(len(m.rs), func(i int) bool { return m.rs[i].end > addr })
	return i < len(m.rs) && m.rs[i].readable && m.rs[i].start <= addr && addr+n <= m.rs[i].end
}

// aligned reports whether p can be the address of a structure that holds pointers.
func aligned(p uint64) bool { return p != 0 && p%8 == 0 }
