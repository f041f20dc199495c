// Package backtrace reads the PHP call stack of a running php-cgi process from outside, as
// php-fpm's slowlog does, without stopping or signalling it: it finds executor_globals (exported
// in php's dynamic symbol table) in the process, reads EG(current_execute_data) from
// /proc/PID/mem and walks the frames' prev_execute_data links, reading each frame's function,
// class, file and line. The process keeps running while it is read, so every pointer is checked
// against the process's readable mappings, the walk is bounded, and a walk that fails is tried
// once more. It knows the structures of the PHP builds listed in layout.go (PHP 8.2 NTS x86_64);
// for any other it says so. It needs the right to read the process's memory (same user, and not
// blocked by Yama: askrd is the ancestor of its workers). It owns nothing and changes nothing in
// the process it reads.
package backtrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"unicode/utf8"
)

// Limits of one walk.
const (
	maxFrames    = 64  // frames with a function, read from the innermost out
	maxString    = 512 // bytes kept of a function, class or file name
	maxStringLen = 1 << 20
	maxLine      = 1 << 24
)

// Frame is one PHP call frame.
type Frame struct {
	Addr     uint64 // the frame's zend_execute_data in the process, as php-fpm prints it
	Function string // "sleep", "App\Slow->run", "App\Slow::make", "{closure}", "{main}"
	File     string // user code: its file; "" for an internal function
	Line     int    // user code: the line the frame is at (0 if unknown; see location)
}

// Stack is a process's PHP call stack, innermost frame first.
type Stack struct {
	Frames []Frame
	Note   string // why Frames may be incomplete; "" if the walk ended at the outermost frame
}

// String formats s as php-fpm's slowlog does, one frame a line:
// "[0x00007f3a5c213080] sleep()" and "[0x00007f3a5c213020] Slow->run() /app/slow.php:12".
func (s Stack) String() string {
	var b strings.Builder
	for i, f := range s.Frames {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "[0x%016x] %s()", f.Addr, f.Function)
		switch {
		case f.File != "" && f.Line > 0:
			fmt.Fprintf(&b, " %s:%d", f.File, f.Line)
		case f.File != "":
			b.WriteString(" " + f.File)
		}
	}
	if s.Note != "" {
		if len(s.Frames) > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("(" + s.Note + ")")
	}
	return b.String()
}

// Reader reads stacks; it caches what it learns of each php executable. Its methods may be
// called from several goroutines.
type Reader struct {
	mu   sync.Mutex
	bins map[fileKey]*executable
}

// NewReader returns a Reader.
func NewReader() *Reader { return &Reader{bins: map[fileKey]*executable{}} }

// Read reads the PHP stack of process pid. An error means nothing could be read (the process is
// gone, its memory cannot be read, or its PHP is not one this package knows: ErrUnsupported); a
// stack that changed while it was read comes back as far as it was read, with a Note.
func (r *Reader) Read(pid int) (Stack, error) {
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	fi, err := os.Stat(exe)
	if err != nil {
		return Stack{}, fmt.Errorf("backtrace of pid %d: %w", pid, err)
	}
	k := keyOf(fi)
	bin, err := r.executable(exe, k)
	if err != nil {
		return Stack{}, fmt.Errorf("backtrace of pid %d: %s: %w", pid, exe, err)
	}
	if bin.err != nil {
		return Stack{}, bin.err
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return Stack{}, fmt.Errorf("backtrace of pid %d: %w", pid, err)
	}
	defer mem.Close()
	first, err := walk(pid, mem, bin, k)
	if err == nil {
		return first, nil
	}
	s, err := walk(pid, mem, bin, k) // once more: the process runs on while it is read
	if err == nil {
		return s, nil
	}
	if len(first.Frames) > len(s.Frames) {
		s = first
	}
	if len(s.Frames) == 0 && !errors.Is(err, errBadPointer) && !errors.Is(err, errTorn) {
		return Stack{}, fmt.Errorf("backtrace of pid %d: %w", pid, err) // gone, or not readable
	}
	s.Note = "stack changed while read: " + err.Error()
	return s, nil
}

// Check tells whether the stacks of processes running the executable at path can be read: nil,
// or why not (ErrUnsupported for a PHP whose structures this package does not know). What it
// learns is kept for Read.
func (r *Reader) Check(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	b, err := r.executable(path, keyOf(fi))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return b.err
}

// executable returns what is known of the executable k, inspecting it the first time.
func (r *Reader) executable(exe string, k fileKey) (*executable, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.bins[k]; ok {
		return b, nil
	}
	b, err := inspect(exe)
	if err != nil {
		return nil, err
	}
	r.bins[k] = b
	return b, nil
}

// walk reads the stack once: the frames it could read, and an error if it stopped before the
// outermost one.
func walk(pid int, f *os.File, bin *executable, k fileKey) (Stack, error) {
	rs, err := readMaps(pid)
	if err != nil {
		return Stack{}, err
	}
	eg := bin.eg
	if bin.pie {
		base, ok := loadBase(rs, k)
		if !ok {
			return Stack{}, errors.New("the executable is not mapped in the process")
		}
		eg += base - bin.minLoad
	}
	m := &memory{f: f, rs: rs}
	l := bin.lay
	var s Stack
	ed, err := m.pointer(eg + l.egCurrentExecuteData)
	seen := map[uint64]bool{}
	for err == nil && ed != 0 {
		if len(s.Frames) == maxFrames || len(seen) == 4*maxFrames { // frames without a function too
			s.Note = fmt.Sprintf("only the innermost %d frames", maxFrames)
			break
		}
		if !aligned(ed) || seen[ed] {
			return s, fmt.Errorf("%w: frame %#x", errBadPointer, ed)
		}
		seen[ed] = true
		var fr Frame
		var ok bool
		fr, ok, ed, err = frame(m, l, ed)
		if ok {
			s.Frames = append(s.Frames, fr)
		}
	}
	return s, err
}

// errTorn: a frame without a caller that PHP's outermost frames never are; the frame was being
// set up for a call while it was read.
var errTorn = errors.New("a frame without a caller that is not a top frame")

// frame reads the frame at ed: the Frame (ok false for a frame without a function, which PHP
// inserts for calls from C) and the address of the frame that called it.
func frame(m *memory, l layout, ed uint64) (fr Frame, ok bool, prev uint64, err error) {
	b, err := m.read(ed, l.frameSize())
	if err != nil {
		return fr, false, 0, err
	}
	opline := binary.LittleEndian.Uint64(b[l.edOpline:])
	fn := binary.LittleEndian.Uint64(b[l.edFunc:])
	callInfo := binary.LittleEndian.Uint32(b[l.edCallInfo:])
	prev = binary.LittleEndian.Uint64(b[l.edPrev:])
	if fn == 0 { // a frame PHP inserts for a call from C (zeroed if outermost)
		return fr, false, prev, nil
	}
	if prev == 0 && callInfo&l.callTop == 0 {
		// The outermost frame with a function is the script's (top code) or one called from
		// C with nothing running (top function). A frame being readied for a call has no
		// caller yet: the stack changed under the walk.
		return fr, false, 0, fmt.Errorf("%w: %#x", errTorn, ed)
	}
	if !aligned(fn) {
		return fr, false, 0, fmt.Errorf("%w: function %#x", errBadPointer, fn)
	}
	fb, err := m.read(fn, l.funcSize())
	if err != nil {
		return fr, false, 0, err
	}
	fr.Addr = ed
	fr.Function, err = functionName(m, l, fb, callInfo)
	if err != nil {
		return fr, false, 0, err
	}
	if fb[l.fnType] != l.internalFunction {
		if fr.File, fr.Line, err = location(m, l, fn, opline); err != nil {
			return fr, false, 0, err
		}
	}
	return fr, true, prev, nil
}

// functionName names the function whose first bytes are fb: "name", "Class->name" (a call with
// $this), "Class::name", and for code outside a function "{main}" (the script) or "{include}".
func functionName(m *memory, l layout, fb []byte, callInfo uint32) (string, error) {
	name := binary.LittleEndian.Uint64(fb[l.fnName:])
	if name == 0 {
		if callInfo&l.callTop != 0 {
			return "{main}", nil
		}
		return "{include}", nil
	}
	fname, err := zstring(m, l, name)
	if err != nil {
		return "", err
	}
	scope := binary.LittleEndian.Uint64(fb[l.fnScope:])
	if scope == 0 {
		return fname, nil
	}
	if !aligned(scope) {
		return "", fmt.Errorf("%w: class %#x", errBadPointer, scope)
	}
	cname, err := m.pointer(scope + l.ceName)
	if err != nil {
		return "", err
	}
	class, err := zstring(m, l, cname)
	if err != nil {
		return "", err
	}
	sep := "::"
	if callInfo&l.typeMask == l.isObject {
		sep = "->"
	}
	return class + sep + fname, nil
}

// location reads the file of the user function fn and the line of the frame's opline. A frame
// that has called another saved its opline at the call; the innermost frame's opline, while PHP
// code runs, lives in a register and the frame holds an older one, or one left by an earlier
// frame in the same memory: a line is given only for an opline inside fn's own opcodes, and is
// then a line of fn (Line 0 otherwise).
func location(m *memory, l layout, fn, opline uint64) (string, int, error) {
	b, err := m.read(fn+l.opLast, l.opArraySize())
	if err != nil {
		return "", 0, err
	}
	last := uint64(binary.LittleEndian.Uint32(b))
	opcodes := binary.LittleEndian.Uint64(b[l.opOpcodes-l.opLast:])
	file, err := zstring(m, l, binary.LittleEndian.Uint64(b[l.opFilename-l.opLast:]))
	if err != nil {
		return "", 0, err
	}
	if opline < opcodes || opline >= opcodes+last*l.opSize || (opline-opcodes)%l.opSize != 0 {
		return file, 0, nil
	}
	lb, err := m.read(opline+l.opLineno, 4)
	if err != nil {
		return "", 0, err
	}
	line := binary.LittleEndian.Uint32(lb)
	if line > maxLine {
		return "", 0, fmt.Errorf("%w: line %d of opline %#x", errBadPointer, line, opline)
	}
	return file, int(line), nil
}

// zstring reads the zend_string at p, up to maxString bytes of it, made safe to print on a line.
func zstring(m *memory, l layout, p uint64) (string, error) {
	if !aligned(p) {
		return "", fmt.Errorf("%w: string %#x", errBadPointer, p)
	}
	n, err := m.pointer(p + l.strLen)
	if err != nil {
		return "", err
	}
	if n > maxStringLen {
		return "", fmt.Errorf("%w: string %#x of length %d", errBadPointer, p, n)
	}
	b, err := m.read(p+l.strVal, int(min(n, maxString)))
	if err != nil {
		return "", err
	}
	s := printable(b)
	if n > maxString {
		s += "…"
	}
	return s, nil
}

// printable makes b safe for one line of a log: invalid UTF-8 and control characters become �.
func printable(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return '\uFFFD'
		}
		return r
	}, s)
}
