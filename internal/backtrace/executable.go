package backtrace

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"regexp"
	"syscall"
)

// executable is what the walk needs to know of one php executable.
type executable struct {
	eg      uint64 // executor_globals' address before relocation
	pie     bool   // ET_DYN: the address moves by the load base
	minLoad uint64 // the lowest PT_LOAD segment's page-aligned address
	lay     layout
	err     error // why a stack cannot be read from this executable
}

// The strings every php binary holds: the Zend module build id ("API20220829,NTS") and the
// version, in the X-Powered-By header php-cgi sends.
var (
	buildIDPattern = regexp.MustCompile(`API[0-9]{8},N?TS(,[a-z]+)*\x00`)
	versionPattern = regexp.MustCompile(`X-Powered-By: PHP/([0-9]+\.[0-9]+)[^\x00]*\x00`)
)

// ErrUnsupported is wrapped by Read's error when the process's PHP is one whose structures this
// package does not know.
var ErrUnsupported = errors.New("not available")

// inspect reads the executable at path: the address of executor_globals and the layout of its
// PHP's structures. A PHP it has no layout for gives an executable whose err says so.
func inspect(path string) (*executable, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ver, id := identify(f)
	unsupported := func(why string) *executable {
		return &executable{err: fmt.Errorf("%w for PHP %s (%s)", ErrUnsupported, ver, why)}
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return unsupported(fmt.Sprintf("%s, %s: only x86_64 is known", id, f.Machine)), nil
	}
	lay, ok := layouts[id]
	if !ok {
		return unsupported(fmt.Sprintf("%s: its structures are not known to this askrd", id)), nil
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		return unsupported("no dynamic symbols: " + err.Error()), nil
	}
	b := &executable{lay: lay, pie: f.Type == elf.ET_DYN, minLoad: ^uint64(0)}
	for _, s := range syms {
		if s.Name == "executor_globals" && elf.ST_TYPE(s.Info) == elf.STT_OBJECT {
			b.eg = s.Value
		}
	}
	if b.eg == 0 {
		return unsupported("executor_globals is not exported"), nil
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			b.minLoad = min(b.minLoad, p.Vaddr&^(pageSize-1))
		}
	}
	return b, nil
}

const pageSize = 4096

// identify finds the PHP version ("8.2") and the Zend build id ("API20220829,NTS") in the
// executable's read-only data; either is "unknown" if it is not there.
func identify(f *elf.File) (version, id string) {
	version, id = "unknown", "unknown"
	s := f.Section(".rodata")
	if s == nil {
		return
	}
	data, err := s.Data()
	if err != nil {
		return
	}
	if m := buildIDPattern.Find(data); m != nil {
		id = string(bytes.TrimSuffix(m, []byte{0}))
	}
	if m := versionPattern.FindSubmatch(data); m != nil {
		version = string(m[1])
	}
	return
}

// fileKey identifies an executable file: the same path may hold a newer php after an upgrade.
type fileKey struct{ dev, ino uint64 }

func keyOf(fi os.FileInfo) fileKey {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileKey{dev: st.Dev, ino: st.Ino}
	}
	return fileKey{}
}
