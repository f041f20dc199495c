package backtrace

// layout is where the fields the walk reads sit in PHP's structures, for one Zend ABI (PHP minor
// version, NTS, x86_64). TestLayoutMatchesHeaders compiles offsetof() of each against the
// installed PHP headers and compares.
type layout struct {
	egCurrentExecuteData uint64 // zend_executor_globals.current_execute_data

	edOpline   uint64 // zend_execute_data.opline
	edFunc     uint64 // zend_execute_data.func
	edCallInfo uint64 // zend_execute_data.This.u1.type_info: the call info flags
	edPrev     uint64 // zend_execute_data.prev_execute_data

	fnType     uint64 // zend_function.type (one byte)
	fnName     uint64 // zend_function.common.function_name
	fnScope    uint64 // zend_function.common.scope
	opLast     uint64 // zend_op_array.last: how many opcodes (uint32)
	opOpcodes  uint64 // zend_op_array.opcodes
	opFilename uint64 // zend_op_array.filename

	opLineno uint64 // zend_op.lineno (uint32)
	opSize   uint64 // sizeof(zend_op)
	ceName   uint64 // zend_class_entry.name
	strLen   uint64 // zend_string.len
	strVal   uint64 // zend_string.val

	internalFunction byte   // ZEND_INTERNAL_FUNCTION: a zend_function.type without a file
	callTop          uint32 // ZEND_CALL_TOP in the call info
	typeMask         uint32 // the low byte of the call info: This's zval type
	isObject         uint32 // IS_OBJECT: the frame has $this
}

// layouts maps a Zend module build id (ZEND_MODULE_BUILD_ID, a string every php binary holds) to
// the layout of that ABI. Only layouts checked against real headers are here.
var layouts = map[string]layout{
	// PHP 8.2, NTS (Debian 12's php8.2).
	"API20220829,NTS": {
		egCurrentExecuteData: 488,
		edOpline:             0, edFunc: 24, edCallInfo: 40, edPrev: 48,
		fnType: 0, fnName: 8, fnScope: 16, opLast: 80, opOpcodes: 88, opFilename: 152,
		opLineno: 24, opSize: 32, ceName: 8, strLen: 16, strVal: 24,
		internalFunction: 1, callTop: 1 << 17, typeMask: 0xff, isObject: 8,
	},
}

// frameSize is how much of a zend_execute_data the walk reads at once: up to and including
// prev_execute_data.
func (l layout) frameSize() int { return int(l.edPrev) + 8 }

// funcSize is how much of a zend_function the walk reads at once: type, name and scope.
func (l layout) funcSize() int { return int(max(l.fnType+1, l.fnName+8, l.fnScope+8)) }

// opArraySize is how much of a zend_op_array the walk reads at once, from opLast: the opcodes
// and the file.
func (l layout) opArraySize() int {
	return int(max(l.opLast+4, l.opOpcodes+8, l.opFilename+8) - l.opLast)
}
