package backtrace

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// need skips the test when a tool is missing, unless $CI is set (there it must be installed).
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found: %v (make deps installs it)", tool, err)
		}
		t.Skipf("%s not installed (make deps)", tool)
	}
	return p
}

// The offsets in layouts are PHP's: a C program compiled against the installed PHP headers
// prints offsetof() of every field the walk reads, and its build id picks the layout to compare.
func TestLayoutMatchesHeaders(t *testing.T) {
	gcc := need(t, "gcc")
	out, err := exec.Command(need(t, "php-config"), "--includes").Output()
	if err != nil {
		t.Fatalf("php-config --includes: %v", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "offsets.c")
	if err := os.WriteFile(src, []byte(offsetsC), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(strings.Fields(string(out)), "-o", filepath.Join(dir, "offsets"), src)
	if b, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	b, err := exec.Command(filepath.Join(dir, "offsets")).Output()
	if err != nil {
		t.Fatalf("offsets: %v", err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(line, " ")
		got[k] = v
	}
	lay, ok := layouts[got["build_id"]]
	if !ok {
		t.Fatalf("no layout for the installed headers' build id %q", got["build_id"])
	}
	want := map[string]uint64{
		"eg.current_execute_data": lay.egCurrentExecuteData,
		"ed.opline":               lay.edOpline, "ed.func": lay.edFunc, "ed.call_info": lay.edCallInfo, "ed.prev": lay.edPrev,
		"fn.type": lay.fnType, "fn.function_name": lay.fnName, "fn.scope": lay.fnScope, "op_array.filename": lay.opFilename, "op_array.last": lay.opLast, "op_array.opcodes": lay.opOpcodes,
		"op.lineno": lay.opLineno, "sizeof.op": lay.opSize, "ce.name": lay.ceName, "str.len": lay.strLen, "str.val": lay.strVal,
		"ZEND_INTERNAL_FUNCTION": uint64(lay.internalFunction), "ZEND_CALL_TOP": uint64(lay.callTop),
		"IS_OBJECT":     uint64(lay.isObject),
		"sizeof.lineno": 4, "sizeof.last": 4, "sizeof.type": 1, "sizeof.call_info": 4, "sizeof.pointer": 8,
	}
	for k, w := range want {
		g, err := strconv.ParseUint(got[k], 10, 64)
		if err != nil || g != w {
			t.Errorf("%s: headers say %q, layouts[%q] has %d", k, got[k], got["build_id"], w)
		}
	}
}

const offsetsC = `#include "php.h"
#include <stdio.h>
#include <stddef.h>
#define OFF(name, type, field) printf("%s %zu\n", name, offsetof(type, field))
int main(void) {
	zend_execute_data ed;
	zend_op op;
	zend_function fn;
	zend_op_array oa;
	printf("build_id %s\n", ZEND_MODULE_BUILD_ID);
	OFF("eg.current_execute_data", zend_executor_globals, current_execute_data);
	OFF("ed.opline", zend_execute_data, opline);
	OFF("ed.func", zend_execute_data, func);
	OFF("ed.call_info", zend_execute_data, This.u1.type_info);
	OFF("ed.prev", zend_execute_data, prev_execute_data);
	OFF("fn.type", zend_function, type);
	OFF("fn.function_name", zend_function, common.function_name);
	OFF("fn.scope", zend_function, common.scope);
	OFF("op_array.filename", zend_op_array, filename);
	OFF("op_array.last", zend_op_array, last);
	OFF("op_array.opcodes", zend_op_array, opcodes);
	OFF("op.lineno", zend_op, lineno);
	printf("sizeof.op %zu\n", sizeof(zend_op));
	OFF("ce.name", zend_class_entry, name);
	OFF("str.len", zend_string, len);
	OFF("str.val", zend_string, val);
	printf("ZEND_INTERNAL_FUNCTION %d\n", ZEND_INTERNAL_FUNCTION);
	printf("ZEND_CALL_TOP %d\n", ZEND_CALL_TOP);
	printf("IS_OBJECT %d\n", IS_OBJECT);
	printf("sizeof.lineno %zu\n", sizeof op.lineno);
	printf("sizeof.type %zu\n", sizeof fn.type);
	printf("sizeof.last %zu\n", sizeof oa.last);
	printf("sizeof.call_info %zu\n", sizeof ed.This.u1.type_info);
	printf("sizeof.pointer %zu\n", sizeof(void *));
	return 0;
}
`
