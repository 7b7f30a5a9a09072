package pickle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/zodbctl/zodbctl/fsformat/pickle/opcode"
)

// maxDepth bounds the nesting the decoder resolves and the encoder writes
// (CPython's own pickler gives up near 1000 levels of recursion).
const maxDepth = 10000

var (
	// ErrTruncated means the input ended inside a pickle.
	ErrTruncated = errors.New("pickle data was truncated")
	errUnderflow = errors.New("unpickling stack underflow")
	errNoMark    = errors.New("could not find MARK")
	errCycle     = errors.New("value contains itself (recursive structures are not supported)")
	errTooDeep   = errors.New("value nested too deeply")
)

// emptyTuple is boxed once: every () decodes to it without allocating.
var emptyTuple any = Tuple{}

// Decoder reads pickles from a byte slice. Several pickles can follow each
// other in the input (a ZODB data record holds two that share one memo): each
// Decode call reads the next one, and the memo is kept until Reset.
//
// A Decoder can be reused with Reset; its stack and memo keep their capacity,
// so decoding similar messages again allocates only the values themselves.
// It is not safe for concurrent use (use one per goroutine, or a sync.Pool).
type Decoder struct {
	// FindGlobal decides what GLOBAL, STACK_GLOBAL and INST produce for
	// module.name: return a value (usually Global{module, name}) to admit it,
	// or an error to refuse. Nil refuses every global (see AllowGlobals and
	// AnyGlobal). Below protocol 3 the Python 2 names are first mapped to
	// Python 3 ones as Python's Unpickler does (copy_reg → copyreg,
	// __builtin__ → builtins, exceptions.X → builtins.X…). REDUCE of the
	// admitted builtins.set/frozenset, builtins.bytes and _codecs.encode
	// (protocol 0–2 bytes) decode to *Set and []byte.
	FindGlobal func(module, name string) (any, error)

	// AliasInput makes decoded []byte values share memory with the input
	// instead of copying it; the caller must then keep the input unchanged
	// while it uses them.
	AliasInput bool

	// MaxProtocol, if non-zero, refuses PROTO opcodes above it (zodbpickle,
	// which ZEO peers use, accepts at most 3).
	MaxProtocol int

	data  []byte
	pos   int
	proto int // from the last PROTO opcode; names are mapped from Python 2 below 3
	stack []any
	marks []int
	memo  []memoSlot
	// sparse holds memo entries whose index is too large for the slice
	// (indexes are chosen by the pickle, so they are not trusted to be dense).
	sparse    map[uint64]any
	memoCount int
	// strs caches short str values, boxed: method names and dict keys
	// repeat from message to message, and a cached one costs no allocation.
	// It survives Reset (it holds only immutable strings).
	strs map[string]any
}

// Bounds of the short-str cache.
const (
	maxCachedStr  = 32
	maxCachedStrs = 1024
)

// str returns the str value of b, from the cache when b is short.
func (d *Decoder) str(b []byte) any {
	if len(b) > maxCachedStr {
		return string(b)
	}
	if v, ok := d.strs[string(b)]; ok {
		return v
	}
	if d.strs == nil || len(d.strs) >= maxCachedStrs {
		d.strs = make(map[string]any)
	}
	s := string(b)
	v := any(s)
	d.strs[s] = v
	return v
}

type memoSlot struct {
	v  any
	ok bool
}

// NewDecoder returns a Decoder reading data.
func NewDecoder(data []byte) *Decoder {
	d := &Decoder{}
	d.Reset(data)
	return d
}

// Reset starts reading data from its beginning with an empty memo.
func (d *Decoder) Reset(data []byte) {
	d.data = data
	d.pos = 0
	d.proto = 0
	clear(d.stack)
	d.stack = d.stack[:0]
	d.marks = d.marks[:0]
	clear(d.memo)
	d.memo = d.memo[:0]
	if d.sparse != nil {
		clear(d.sparse)
	}
	d.memoCount = 0
}

// Offset returns the position in the input after the last pickle read.
func (d *Decoder) Offset() int { return d.pos }

// Unmarshal decodes the first pickle in data, refusing every global. Bytes
// after its STOP are ignored, as Python's pickle.loads ignores them.
func Unmarshal(data []byte) (any, error) {
	var d Decoder
	d.Reset(data)
	return d.Decode()
}

// AllowGlobals returns a FindGlobal policy that admits exactly the listed
// "module.name" globals (as Global values) and refuses all others. An entry
// "module.*" admits every name of that module.
func AllowGlobals(names ...string) func(module, name string) (any, error) {
	allowed := make(map[string]bool, len(names))
	for _, n := range names {
		allowed[n] = true
	}
	return func(module, name string) (any, error) {
		if allowed[module+"."+name] || allowed[module+".*"] {
			return Global{module, name}, nil
		}
		return nil, &GlobalError{Module: module, Name: name}
	}
}

// AnyGlobal is a FindGlobal policy that admits every global as a Global
// value. Nothing is ever imported or called, so it is safe for tools that only
// look at pickles (dumps, analysis), not for code that acts on the values.
func AnyGlobal(module, name string) (any, error) { return Global{module, name}, nil }

// Decode reads the next pickle and returns its value.
func (d *Decoder) Decode() (v any, err error) {
	clear(d.stack)
	d.stack = d.stack[:0]
	d.marks = d.marks[:0]
	for {
		if d.pos >= len(d.data) {
			return nil, &Error{Offset: d.pos, Op: opcode.Stop, Err: ErrTruncated}
		}
		start := d.pos
		op := d.data[d.pos]
		d.pos++
		if op == opcode.Stop {
			v, err = d.pop()
			// Only a box can hold boxes (makeTuple boxes a tuple that
			// holds one), so a plain top-level value is already final.
			if _, ok := v.(*box); ok && err == nil {
				v, err = d.finalize(v, 0)
			}
			if err != nil {
				return nil, &Error{Offset: start, Op: op, Err: err}
			}
			return v, nil
		}
		if err := d.step(op); err != nil {
			var pe *Error
			if errors.As(err, &pe) {
				return nil, err
			}
			return nil, &Error{Offset: start, Op: op, Err: err}
		}
	}
}

// fence is the stack index above which the current MARK's items start.
func (d *Decoder) fence() int {
	if len(d.marks) == 0 {
		return 0
	}
	return d.marks[len(d.marks)-1]
}

func (d *Decoder) push(v any) { d.stack = append(d.stack, v) }

func (d *Decoder) pop() (any, error) {
	n := len(d.stack)
	if n <= d.fence() {
		return nil, errUnderflow
	}
	v := d.stack[n-1]
	d.stack[n-1] = nil
	d.stack = d.stack[:n-1]
	return v, nil
}

func (d *Decoder) top() (any, error) {
	n := len(d.stack)
	if n <= d.fence() {
		return nil, errUnderflow
	}
	return d.stack[n-1], nil
}

// popMark removes the innermost MARK and returns the index of its first item.
func (d *Decoder) popMark() (int, error) {
	if len(d.marks) == 0 {
		return 0, errNoMark
	}
	m := d.marks[len(d.marks)-1]
	d.marks = d.marks[:len(d.marks)-1]
	return m, nil
}

// truncateStack drops stack[i:], clearing references for the GC.
func (d *Decoder) truncateStack(i int) {
	clear(d.stack[i:])
	d.stack = d.stack[:i]
}

func (d *Decoder) read(n uint64) ([]byte, error) {
	if n > uint64(len(d.data)-d.pos) {
		return nil, ErrTruncated
	}
	b := d.data[d.pos : d.pos+int(n) : d.pos+int(n)]
	d.pos += int(n)
	return b, nil
}

func (d *Decoder) readByte() (byte, error) {
	if d.pos >= len(d.data) {
		return 0, ErrTruncated
	}
	b := d.data[d.pos]
	d.pos++
	return b, nil
}

// readGlobalName reads the two newline-ended names of GLOBAL and INST,
// which must be UTF-8 text.
func (d *Decoder) readGlobalName() (module, name string, err error) {
	m, err := d.readLine()
	if err != nil {
		return "", "", err
	}
	n, err := d.readLine()
	if err != nil {
		return "", "", err
	}
	if err := checkUTF8(m); err != nil {
		return "", "", err
	}
	if err := checkUTF8(n); err != nil {
		return "", "", err
	}
	return string(m), string(n), nil
}

// readSized reads the unsigned little-endian length that follows op (1, 4
// or 8 bytes, by opcode) and then that many bytes.
func (d *Decoder) readSized(op byte) ([]byte, error) {
	var n uint64
	switch op {
	case opcode.ShortBinString, opcode.ShortBinBytes, opcode.ShortBinUnicode:
		b, err := d.readByte()
		if err != nil {
			return nil, err
		}
		n = uint64(b)
	case opcode.BinBytes, opcode.BinUnicode:
		b, err := d.read(4)
		if err != nil {
			return nil, err
		}
		n = uint64(binary.LittleEndian.Uint32(b))
	default: // BINBYTES8, BINUNICODE8, BYTEARRAY8
		b, err := d.read(8)
		if err != nil {
			return nil, err
		}
		n = binary.LittleEndian.Uint64(b)
	}
	return d.read(n)
}

// readLine returns the bytes up to (not including) the next newline.
func (d *Decoder) readLine() ([]byte, error) {
	for i := d.pos; i < len(d.data); i++ {
		if d.data[i] == '\n' {
			line := d.data[d.pos:i]
			d.pos = i + 1
			return line, nil
		}
	}
	return nil, ErrTruncated
}

func (d *Decoder) bytesValue(b []byte) []byte {
	if d.AliasInput {
		return b
	}
	return append([]byte(nil), b...)
}

func (d *Decoder) memoPut(idx uint64, v any) {
	// Picklers number memo entries 0, 1, 2…; the dense slice grows only for
	// such indexes (at most about twice the entries so far), so a stray large
	// index costs a map entry, not a slice of that size.
	if idx < uint64(len(d.memo)) || idx <= uint64(2*d.memoCount+256) {
		if idx >= uint64(len(d.memo)) {
			d.memo = append(d.memo, make([]memoSlot, int(idx)+1-len(d.memo))...)
		}
		if !d.memo[idx].ok {
			d.memoCount++
		}
		d.memo[idx] = memoSlot{v, true}
		return
	}
	if d.sparse == nil {
		d.sparse = make(map[uint64]any)
	}
	if _, ok := d.sparse[idx]; !ok {
		d.memoCount++
	}
	d.sparse[idx] = v
}

func (d *Decoder) memoGet(idx uint64) (any, error) {
	if idx < uint64(len(d.memo)) && d.memo[idx].ok {
		return d.memo[idx].v, nil
	}
	if v, ok := d.sparse[idx]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("memo key %d not found", idx)
}

// py3Global maps a global read from a protocol 0–2 pickle to its Python 3
// name, as Python's Unpickler does (fix_imports).
func py3Global(g Global) Global { return renameGlobal(g, py3Names, py3Modules) }

// renameGlobal applies a fix_imports mapping: a whole-name entry first,
// else the module's.
func renameGlobal(g Global, names map[Global]Global, modules map[string]string) Global {
	if r, ok := names[g]; ok {
		return r
	}
	if m, ok := modules[g.Module]; ok {
		g.Module = m
	}
	return g
}

func (d *Decoder) findGlobal(module, name string) (any, error) {
	if d.proto < 3 {
		g := py3Global(Global{module, name})
		module, name = g.Module, g.Name
	}
	if d.FindGlobal == nil {
		return nil, &GlobalError{Module: module, Name: name}
	}
	v, err := d.FindGlobal(module, name)
	if err != nil {
		var ge *GlobalError
		if errors.As(err, &ge) {
			return nil, err
		}
		return nil, &GlobalError{Module: module, Name: name, Err: err}
	}
	return v, nil
}

// pushTextNumber reads the newline-ended text of INT, LONG or FLOAT and
// pushes its value.
func pushTextNumber[T any](d *Decoder, parse func([]byte) (T, error)) error {
	line, err := d.readLine()
	if err != nil {
		return err
	}
	if len(line) == 0 {
		return ErrTruncated
	}
	v, err := parse(line)
	if err != nil {
		return err
	}
	d.push(v)
	return nil
}

// step executes one opcode other than STOP.
func (d *Decoder) step(op byte) error {
	switch op {
	case opcode.Mark:
		d.marks = append(d.marks, len(d.stack))
	case opcode.Pop:
		if len(d.stack) > d.fence() {
			_, err := d.pop()
			return err
		}
		// Python pops the MARK when the stack above it is empty.
		m, err := d.popMark()
		if err != nil {
			return errUnderflow
		}
		d.truncateStack(m)
	case opcode.PopMark:
		m, err := d.popMark()
		if err != nil {
			return err
		}
		d.truncateStack(m)
	case opcode.Dup:
		v, err := d.top()
		if err != nil {
			return err
		}
		d.push(v)

	case opcode.Proto:
		p, err := d.readByte()
		if err != nil {
			return err
		}
		max := 5
		if d.MaxProtocol > 0 {
			max = d.MaxProtocol
		}
		if int(p) > max {
			return fmt.Errorf("unsupported pickle protocol: %d", p)
		}
		d.proto = int(p)
	case opcode.Frame:
		b, err := d.read(8)
		if err != nil {
			return err
		}
		// The whole input is in memory; a frame only has to fit in it.
		if binary.LittleEndian.Uint64(b) > uint64(len(d.data)-d.pos) {
			return ErrTruncated
		}

	case opcode.None:
		d.push(nil)
	case opcode.NewTrue:
		d.push(true)
	case opcode.NewFalse:
		d.push(false)
	case opcode.BinInt:
		b, err := d.read(4)
		if err != nil {
			return err
		}
		d.push(int64(int32(binary.LittleEndian.Uint32(b))))
	case opcode.BinInt1:
		b, err := d.readByte()
		if err != nil {
			return err
		}
		d.push(int64(b))
	case opcode.BinInt2:
		b, err := d.read(2)
		if err != nil {
			return err
		}
		d.push(int64(binary.LittleEndian.Uint16(b)))
	case opcode.Long1, opcode.Long4:
		var n uint64
		if op == opcode.Long1 {
			b, err := d.readByte()
			if err != nil {
				return err
			}
			n = uint64(b)
		} else {
			b, err := d.read(4)
			if err != nil {
				return err
			}
			l := int32(binary.LittleEndian.Uint32(b))
			if l < 0 {
				return errors.New("LONG pickle has negative byte count")
			}
			n = uint64(l)
		}
		b, err := d.read(n)
		if err != nil {
			return err
		}
		d.push(decodeLong(b))
	case opcode.Int:
		return pushTextNumber(d, parseINT)
	case opcode.Long:
		return pushTextNumber(d, parseLONG)
	case opcode.Float:
		return pushTextNumber(d, parseFLOAT)
	case opcode.BinFloat:
		b, err := d.read(8)
		if err != nil {
			return err
		}
		d.push(math.Float64frombits(binary.BigEndian.Uint64(b)))

	case opcode.String:
		line, err := d.readLine()
		if err != nil {
			return err
		}
		s, err := unquotePy2String(line)
		if err != nil {
			return err
		}
		d.push(s)
	case opcode.BinString:
		b, err := d.read(4)
		if err != nil {
			return err
		}
		n := int32(binary.LittleEndian.Uint32(b))
		if n < 0 {
			return errors.New("BINSTRING pickle has negative byte count")
		}
		s, err := d.read(uint64(n))
		if err != nil {
			return err
		}
		d.push(d.bytesValue(s))
	case opcode.ShortBinString, opcode.ShortBinBytes, opcode.BinBytes, opcode.BinBytes8:
		s, err := d.readSized(op)
		if err != nil {
			return err
		}
		d.push(d.bytesValue(s))
	case opcode.ByteArray8:
		s, err := d.readSized(op)
		if err != nil {
			return err
		}
		d.push(ByteArray(append([]byte(nil), s...)))
	case opcode.Unicode:
		line, err := d.readLine()
		if err != nil {
			return err
		}
		s, err := decodeRawUnicodeEscape(line)
		if err != nil {
			return err
		}
		d.push(s)
	case opcode.ShortBinUnicode, opcode.BinUnicode, opcode.BinUnicode8:
		s, err := d.readSized(op)
		if err != nil {
			return err
		}
		if err := checkUTF8(s); err != nil {
			return err
		}
		d.push(d.str(s))

	case opcode.EmptyTuple:
		d.push(emptyTuple)
	case opcode.Tuple1, opcode.Tuple2, opcode.Tuple3:
		n := int(op-opcode.Tuple1) + 1
		if len(d.stack)-n < d.fence() {
			return errUnderflow
		}
		i := len(d.stack) - n
		t := d.makeTuple(d.stack[i:])
		d.truncateStack(i)
		d.push(t)
	case opcode.Tuple:
		m, err := d.popMark()
		if err != nil {
			return err
		}
		t := d.makeTuple(d.stack[m:])
		d.truncateStack(m)
		d.push(t)
	case opcode.EmptyList:
		d.push(d.newBox(boxList))
	case opcode.List:
		m, err := d.popMark()
		if err != nil {
			return err
		}
		b := d.newBox(boxList)
		b.items = append(make([]any, 0, len(d.stack)-m), d.stack[m:]...)
		d.truncateStack(m)
		d.push(b)
	case opcode.EmptyDict:
		d.push(d.newBox(boxDict))
	case opcode.Dict:
		m, err := d.popMark()
		if err != nil {
			return err
		}
		items := d.stack[m:]
		if len(items)%2 != 0 {
			return errors.New("odd number of items for DICT")
		}
		b := d.newBox(boxDict)
		b.dict = make(Dict, 0, len(items)/2)
		for i := 0; i < len(items); i += 2 {
			if err := b.setItem(items[i], items[i+1]); err != nil {
				return err
			}
		}
		d.truncateStack(m)
		d.push(b)
	case opcode.EmptySet:
		b := d.newBox(boxSet)
		b.set = &Set{}
		d.push(b)
	case opcode.FrozenSet:
		m, err := d.popMark()
		if err != nil {
			return err
		}
		s := &Set{Frozen: true}
		if err := addToSet(s, d.stack[m:]); err != nil {
			return err
		}
		d.truncateStack(m)
		var v any = s
		for _, it := range s.Items {
			if _, ok := it.(*box); ok {
				// A tuple or object item may still change: resolve at STOP.
				b := d.newBox(boxSet)
				b.set = s
				v = b
				break
			}
		}
		d.push(v)

	case opcode.Append:
		v, err := d.pop()
		if err != nil {
			return err
		}
		target, err := d.top()
		if err != nil {
			return err
		}
		return appendTo(target, v)
	case opcode.Appends:
		m, err := d.popMark()
		if err != nil {
			return err
		}
		if m-1 < d.fence() {
			return errUnderflow
		}
		for _, v := range d.stack[m:] {
			if err := appendTo(d.stack[m-1], v); err != nil {
				return err
			}
		}
		d.truncateStack(m)
	case opcode.SetItem:
		if len(d.stack)-3 < d.fence() {
			return errUnderflow
		}
		n := len(d.stack)
		if err := setItemOn(d.stack[n-3], d.stack[n-2], d.stack[n-1]); err != nil {
			return err
		}
		d.truncateStack(n - 2)
	case opcode.SetItems:
		m, err := d.popMark()
		if err != nil {
			return err
		}
		if m-1 < d.fence() {
			return errUnderflow
		}
		items := d.stack[m:]
		if len(items)%2 != 0 {
			return errors.New("odd number of items for SETITEMS")
		}
		for i := 0; i < len(items); i += 2 {
			if err := setItemOn(d.stack[m-1], items[i], items[i+1]); err != nil {
				return err
			}
		}
		d.truncateStack(m)
	case opcode.AddItems:
		m, err := d.popMark()
		if err != nil {
			return err
		}
		if m-1 < d.fence() {
			return errUnderflow
		}
		b, ok := d.stack[m-1].(*box)
		if !ok || b.kind != boxSet || b.set.Frozen {
			return fmt.Errorf("ADDITEMS on %s", typeName(d.stack[m-1]))
		}
		if b.status != statusBuilding {
			return errEarlier
		}
		if err := addToSet(b.set, d.stack[m:]); err != nil {
			return err
		}
		d.truncateStack(m)

	case opcode.Put:
		line, err := d.readLine()
		if err != nil {
			return err
		}
		idx, err := parseMemoIndex(line, "PUT")
		if err != nil {
			return err
		}
		v, err := d.top()
		if err != nil {
			return err
		}
		d.memoPut(idx, v)
	case opcode.BinPut:
		b, err := d.readByte()
		if err != nil {
			return err
		}
		v, err := d.top()
		if err != nil {
			return err
		}
		d.memoPut(uint64(b), v)
	case opcode.LongBinPut:
		b, err := d.read(4)
		if err != nil {
			return err
		}
		v, err := d.top()
		if err != nil {
			return err
		}
		d.memoPut(uint64(binary.LittleEndian.Uint32(b)), v)
	case opcode.Memoize:
		v, err := d.top()
		if err != nil {
			return err
		}
		d.memoPut(uint64(d.memoCount), v)
	case opcode.Get:
		line, err := d.readLine()
		if err != nil {
			return err
		}
		idx, err := parseMemoIndex(line, "GET")
		if err != nil {
			return err
		}
		v, err := d.memoGet(idx)
		if err != nil {
			return err
		}
		d.push(v)
	case opcode.BinGet:
		b, err := d.readByte()
		if err != nil {
			return err
		}
		v, err := d.memoGet(uint64(b))
		if err != nil {
			return err
		}
		d.push(v)
	case opcode.LongBinGet:
		b, err := d.read(4)
		if err != nil {
			return err
		}
		v, err := d.memoGet(uint64(binary.LittleEndian.Uint32(b)))
		if err != nil {
			return err
		}
		d.push(v)

	case opcode.Global:
		module, name, err := d.readGlobalName()
		if err != nil {
			return err
		}
		g, err := d.findGlobal(module, name)
		if err != nil {
			return err
		}
		d.push(g)
	case opcode.StackGlobal:
		name, err := d.pop()
		if err != nil {
			return err
		}
		module, err := d.pop()
		if err != nil {
			return err
		}
		ms, ok1 := module.(string)
		ns, ok2 := name.(string)
		if !ok1 || !ok2 {
			return errors.New("STACK_GLOBAL requires str")
		}
		g, err := d.findGlobal(ms, ns)
		if err != nil {
			return err
		}
		d.push(g)
	case opcode.Inst:
		module, name, err := d.readGlobalName()
		if err != nil {
			return err
		}
		m, err := d.popMark()
		if err != nil {
			return err
		}
		g, err := d.findGlobal(module, name)
		if err != nil {
			return err
		}
		args := d.makeTuple(d.stack[m:])
		d.truncateStack(m)
		d.push(d.newObject(g, args, nil, false))
	case opcode.Obj:
		m, err := d.popMark()
		if err != nil {
			return err
		}
		if len(d.stack) == m {
			return errUnderflow
		}
		cls := d.stack[m]
		args := d.makeTuple(d.stack[m+1:])
		d.truncateStack(m)
		d.push(d.newObject(cls, args, nil, false))
	case opcode.Reduce, opcode.NewObj:
		args, err := d.pop()
		if err != nil {
			return err
		}
		callable, err := d.pop()
		if err != nil {
			return err
		}
		if !isTuple(args) {
			return fmt.Errorf("%s args must be a tuple, not %s", opName(op), typeName(args))
		}
		if op == opcode.Reduce {
			v, ok, err := d.callBuiltin(callable, args)
			if err != nil {
				return err
			}
			if ok {
				d.push(v)
				break
			}
		}
		d.push(d.newObject(callable, args, nil, op == opcode.NewObj))
	case opcode.NewObjEx:
		kwargs, err := d.pop()
		if err != nil {
			return err
		}
		args, err := d.pop()
		if err != nil {
			return err
		}
		cls, err := d.pop()
		if err != nil {
			return err
		}
		if !isTuple(args) {
			return fmt.Errorf("NEWOBJ_EX args must be a tuple, not %s", typeName(args))
		}
		if b, ok := kwargs.(*box); !ok || b.kind != boxDict {
			return fmt.Errorf("NEWOBJ_EX kwargs must be a dict, not %s", typeName(kwargs))
		}
		d.push(d.newObject(cls, args, kwargs, true))
	case opcode.Build:
		state, err := d.pop()
		if err != nil {
			return err
		}
		target, err := d.top()
		if err != nil {
			return err
		}
		b, ok := target.(*box)
		if !ok || b.kind != boxObject {
			return fmt.Errorf("BUILD on %s", typeName(target))
		}
		if b.status != statusBuilding {
			return errEarlier
		}
		b.state = state

	case opcode.PersID:
		line, err := d.readLine()
		if err != nil {
			return err
		}
		for _, c := range line {
			if c >= 0x80 {
				return errors.New("persistent IDs in protocol 0 must be ASCII strings")
			}
		}
		d.push(PersistentRef{ID: string(line)})
	case opcode.BinPersID:
		id, err := d.pop()
		if err != nil {
			return err
		}
		if _, ok := id.(*box); ok {
			b := d.newBox(boxPersistent)
			b.items = []any{id}
			d.push(b)
		} else {
			d.push(PersistentRef{ID: id})
		}

	case opcode.Ext1, opcode.Ext2, opcode.Ext4:
		return errors.New("extension registry codes are not supported")
	case opcode.NextBuffer, opcode.ReadOnlyBuffer:
		return errors.New("out-of-band buffers are not supported")
	default:
		return fmt.Errorf("invalid load key %q", op)
	}
	return nil
}

func isTuple(v any) bool {
	switch x := v.(type) {
	case Tuple:
		return true
	case *box:
		return x.kind == boxTuple
	}
	return false
}

// decodeLong decodes a little-endian two's-complement integer.
func decodeLong(b []byte) any {
	if len(b) == 0 {
		return int64(0)
	}
	if len(b) <= 8 {
		var u uint64
		for i := len(b) - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[i])
		}
		shift := 64 - 8*uint(len(b))
		return int64(u<<shift) >> shift
	}
	be := make([]byte, len(b))
	for i, c := range b {
		be[len(b)-1-i] = c
	}
	n := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return normInt(n)
}

// normInt returns an int64 when n fits, else n.
func normInt(n *big.Int) any {
	if n.IsInt64() {
		return n.Int64()
	}
	return n
}

// unquotePy2String decodes the argument of STRING: a quoted Python 2 string
// literal with backslash escapes (codecs.escape_decode).
func unquotePy2String(line []byte) ([]byte, error) {
	if len(line) < 2 || line[0] != line[len(line)-1] || (line[0] != '\'' && line[0] != '"') {
		return nil, errors.New("the STRING opcode argument must be quoted")
	}
	s := line[1 : len(line)-1]
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(s) {
			return nil, errors.New("invalid \\ escape at end of string")
		}
		switch c = s[i]; c {
		case '\n':
		case '\\', '\'', '"':
			out = append(out, c)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 't':
			out = append(out, '\t')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 'v':
			out = append(out, '\v')
		case 'a':
			out = append(out, '\a')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(c - '0')
			for k := 0; k < 2 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '7'; k++ {
				i++
				v = v*8 + int(s[i]-'0')
			}
			out = append(out, byte(v))
		case 'x':
			if i+2 >= len(s) {
				return nil, fmt.Errorf("invalid \\x escape at position %d", i-1)
			}
			v, err := strconv.ParseUint(string(s[i+1:i+3]), 16, 8)
			if err != nil {
				return nil, fmt.Errorf("invalid \\x escape at position %d", i-1)
			}
			out = append(out, byte(v))
			i += 2
		default:
			out = append(out, '\\', c)
		}
	}
	return out, nil
}

// decodeRawUnicodeEscape decodes the argument of UNICODE: Latin-1 text with
// \uXXXX and \UXXXXXXXX escapes (Python's raw-unicode-escape codec).
func decodeRawUnicodeEscape(line []byte) (string, error) {
	var sb strings.Builder
	sb.Grow(len(line))
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c == '\\' && i+1 < len(line) && (line[i+1] == 'u' || line[i+1] == 'U') {
			// An escape only counts after an even number of backslashes.
			n := 0
			for j := i - 1; j >= 0 && line[j] == '\\'; j-- {
				n++
			}
			if n%2 == 0 {
				width := 4
				if line[i+1] == 'U' {
					width = 8
				}
				if i+2+width > len(line) {
					return "", errors.New("truncated \\uXXXX escape")
				}
				v, err := strconv.ParseUint(string(line[i+2:i+2+width]), 16, 32)
				if err != nil {
					return "", errors.New("truncated \\uXXXX escape")
				}
				if v > maxRune {
					return "", errors.New("\\Uxxxxxxxx out of range")
				}
				sb.WriteString(encodeRune(rune(v)))
				i += 1 + width
				continue
			}
		}
		sb.WriteRune(rune(c))
	}
	return sb.String(), nil
}

const maxRune = 0x10ffff

// encodeRune encodes r as UTF-8, keeping surrogates (Python strs may hold
// them; "surrogatepass" writes them as three-byte sequences).
func encodeRune(r rune) string {
	if r >= 0xd800 && r <= 0xdfff {
		return string([]byte{0xed, byte(0xa0 | (r>>6)&0x1f), byte(0x80 | r&0x3f)})
	}
	var b [4]byte
	n := utf8.EncodeRune(b[:], r)
	return string(b[:n])
}

// TypeName is the Python type name of a decoded value, for error messages
// ("NoneType", "int", "bytes", "tuple", "global module.name", …).
func TypeName(v any) string { return typeName(v) }

func typeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "NoneType"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case ByteArray:
		return "bytearray"
	case Tuple:
		return "tuple"
	case List:
		return "list"
	case Dict:
		return "dict"
	case *Set:
		if x.Frozen {
			return "frozenset"
		}
		return "set"
	case Global:
		return "global " + x.String()
	case PersistentRef:
		return "persistent id"
	case *Object:
		return "object"
	case *box:
		return x.typeName()
	}
	return fmt.Sprintf("%T", v)
}

// checkUTF8 accepts what Python's UTF-8 decoder with "surrogatepass" accepts:
// valid UTF-8 plus encoded surrogates (ED A0..BF xx).
func checkUTF8(b []byte) error {
	if utf8.Valid(b) {
		return nil
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			if i+2 < len(b) && b[i] == 0xed && b[i+1]&0xe0 == 0xa0 && b[i+2]&0xc0 == 0x80 {
				i += 3
				continue
			}
			return fmt.Errorf("invalid UTF-8 in str at byte %d", i)
		}
		i += n
	}
	return nil
}
