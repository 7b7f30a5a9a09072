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
	"unsafe"

	"github.com/zodbctl/zodbctl/fsformat/pickle/opcode"
	"github.com/zodbctl/zodbctl/fsformat/pyrepr"
)

// batchSize is CPython's BATCHSIZE: APPENDS/SETITEMS/ADDITEMS carry at most
// this many items.
const batchSize = 1000

// Protocol-4 framing constants of CPython's pickler.
const (
	frameSizeTarget = 64 * 1024
	frameSizeMin    = 4
	frameHeaderSize = 9
)

// HighestProtocol is the highest protocol the encoder writes.
const HighestProtocol = 4

// Encoder writes pickles byte for byte as CPython's C pickler does
// (pickle.Pickler(f, Protocol).dump, or with Fast the "fast mode" ZODB and
// ZEO use: no memo at all). The memo is kept across Append calls, as one
// Pickler keeps it across dump calls (ZODB writes a record's two pickles
// with one memo), until ClearMemo.
//
// The zero Encoder writes protocol 0; use NewEncoder.
type Encoder struct {
	Protocol int  // 0…4
	Fast     bool // no memo: no PUT/GET opcodes (cyclic values are refused)

	memo    map[memoKey]uint32
	memoLen uint32 // entries written (the memo map may hold aliases)
	buf     []byte

	framing    bool
	frameStart int // index in buf of the current frame's header, or -1
}

// memoKey identifies a Python object. Go slices and strings are identified by
// their data pointer and length; the objects CPython keeps as singletons
// (empty and one-character str and bytes, modules' names…) by value.
type memoKey struct {
	p    unsafe.Pointer
	n    int
	kind byte
	s    string
}

// NewEncoder returns an Encoder for protocol (0…4) with memo.
func NewEncoder(protocol int) *Encoder {
	return &Encoder{Protocol: protocol}
}

// Marshal returns pickle.dumps(v, protocol) as CPython computes it.
func Marshal(v any, protocol int) ([]byte, error) {
	return NewEncoder(protocol).Append(nil, v)
}

// MarshalFast returns the pickle written by a fast-mode pickler (no memo), as
// ZEO peers send messages and ZODB writes Data.fs.index.
func MarshalFast(v any, protocol int) ([]byte, error) {
	e := Encoder{Protocol: protocol, Fast: true}
	return e.Append(nil, v)
}

// ClearMemo forgets every memoized object (Pickler.clear_memo).
func (e *Encoder) ClearMemo() { clear(e.memo); e.memoLen = 0 }

// Append appends one pickle of v (PROTO … STOP) to dst and returns the
// extended slice. On error dst is returned unchanged in length.
func (e *Encoder) Append(dst []byte, v any) ([]byte, error) {
	if e.Protocol < 0 || e.Protocol > HighestProtocol {
		return dst, fmt.Errorf("pickle protocol must be <= %d", HighestProtocol)
	}
	start := len(dst)
	e.buf = dst
	e.frameStart = -1
	e.framing = false
	if e.Protocol >= 2 {
		e.write(opcode.Proto, byte(e.Protocol))
		if e.Protocol >= 4 {
			e.framing = true
		}
	}
	err := e.save(v, 0)
	if err == nil {
		e.write(opcode.Stop)
		e.commitFrame()
	}
	out := e.buf
	e.buf = nil
	e.framing = false
	if err != nil {
		return out[:start], err
	}
	return out, nil
}

// write appends opcode bytes, opening a frame first when framing.
func (e *Encoder) write(b ...byte) {
	e.startFrame()
	e.buf = append(e.buf, b...)
}

func (e *Encoder) writeString(s string) {
	e.startFrame()
	e.buf = append(e.buf, s...)
}

func (e *Encoder) startFrame() {
	if e.framing && e.frameStart < 0 {
		e.frameStart = len(e.buf)
		e.buf = append(e.buf, make([]byte, frameHeaderSize)...)
	}
}

// commitFrame closes the current frame: a FRAME header if it holds at least
// frameSizeMin bytes, otherwise its reserved header is removed.
func (e *Encoder) commitFrame() {
	if e.frameStart < 0 {
		return
	}
	n := len(e.buf) - e.frameStart - frameHeaderSize
	if n >= frameSizeMin {
		e.buf[e.frameStart] = opcode.Frame
		binary.LittleEndian.PutUint64(e.buf[e.frameStart+1:], uint64(n))
	} else {
		copy(e.buf[e.frameStart:], e.buf[e.frameStart+frameHeaderSize:])
		e.buf = e.buf[:len(e.buf)-frameHeaderSize]
	}
	e.frameStart = -1
}

// opcodeBoundary ends the current frame once it reaches the target size
// (CPython checks after every saved object).
func (e *Encoder) opcodeBoundary() {
	if e.framing && e.frameStart >= 0 && len(e.buf)-e.frameStart-frameHeaderSize >= frameSizeTarget {
		e.commitFrame()
	}
}

// writeLarge writes an opcode header and its payload; a payload of at least
// frameSizeTarget bytes goes outside any frame, as CPython writes it.
func (e *Encoder) writeLarge(header []byte, data string) {
	if e.framing && len(data) >= frameSizeTarget {
		e.commitFrame()
		e.buf = append(e.buf, header...)
		e.buf = append(e.buf, data...)
		return
	}
	e.write(header...)
	e.writeString(data)
}

func (e *Encoder) memoKeyOf(v any) (memoKey, bool) {
	switch x := v.(type) {
	case string:
		if singletonStr(x) {
			return memoKey{kind: 's', s: x}, true
		}
		return memoKey{p: unsafe.Pointer(unsafe.StringData(x)), n: len(x), kind: 's'}, true
	case []byte:
		if len(x) <= 1 {
			return memoKey{kind: 'b', s: string(x)}, true
		}
		return memoKey{p: unsafe.Pointer(unsafe.SliceData(x)), n: len(x), kind: 'b'}, true
	case Tuple:
		if len(x) == 0 {
			return memoKey{}, false
		}
		return memoKey{p: unsafe.Pointer(unsafe.SliceData(x)), n: len(x), kind: 't'}, true
	case List:
		return sliceKey('l', x)
	case []any:
		return sliceKey('l', x)
	case Dict:
		if len(x) == 0 {
			return memoKey{}, false
		}
		return memoKey{p: unsafe.Pointer(unsafe.SliceData(x)), n: len(x), kind: 'd'}, true
	case *Set:
		return memoKey{p: unsafe.Pointer(x), kind: 'S'}, true
	case *Object:
		return memoKey{p: unsafe.Pointer(x), kind: 'o'}, true
	case Global:
		// Classes and functions are singletons in Python.
		return memoKey{kind: 'g', s: x.Module + "\n" + x.Name}, true
	}
	return memoKey{}, false
}

// sliceKey identifies a non-empty list by its backing array; an empty Go
// slice has none, so each empty list is its own object.
func sliceKey(kind byte, x []any) (memoKey, bool) {
	if len(x) == 0 {
		return memoKey{}, false
	}
	return memoKey{p: unsafe.Pointer(unsafe.SliceData(x)), n: len(x), kind: kind}, true
}

// singletonStr reports the strs CPython shares: "" and one character
// below U+0100.
func singletonStr(s string) bool {
	if s == "" {
		return true
	}
	r, n := utf8.DecodeRuneInString(s)
	return n == len(s) && r < 256 && r != utf8.RuneError
}

// memoGet writes a GET for v if v was memoized.
func (e *Encoder) memoGet(v any) bool {
	if e.Fast || e.memoLen == 0 {
		return false
	}
	k, ok := e.memoKeyOf(v)
	if !ok {
		return false
	}
	idx, ok := e.memo[k]
	if !ok {
		return false
	}
	e.writeGet(idx)
	return true
}

func (e *Encoder) writeGet(idx uint32) {
	switch {
	case e.Protocol == 0:
		e.write(opcode.Get)
		e.writeString(strconv.FormatUint(uint64(idx), 10))
		e.write('\n')
	case idx < 256:
		e.write(opcode.BinGet, byte(idx))
	default:
		e.write(opcode.LongBinGet, byte(idx), byte(idx>>8), byte(idx>>16), byte(idx>>24))
	}
}

// memoPut records v under the next memo index and writes the PUT.
func (e *Encoder) memoPut(v any) {
	if e.Fast {
		return
	}
	k, ok := e.memoKeyOf(v)
	if !ok {
		// Values without identity still take an index, as in CPython.
		k = memoKey{kind: 'u', n: int(e.memoLen)}
	}
	if e.memo == nil {
		e.memo = make(map[memoKey]uint32)
	}
	idx := e.memoLen
	e.memoLen++
	e.memo[k] = idx
	switch {
	case e.Protocol >= 4:
		e.write(opcode.Memoize)
	case e.Protocol == 0:
		e.write(opcode.Put)
		e.writeString(strconv.FormatUint(uint64(idx), 10))
		e.write('\n')
	case idx < 256:
		e.write(opcode.BinPut, byte(idx))
	default:
		e.write(opcode.LongBinPut, byte(idx), byte(idx>>8), byte(idx>>16), byte(idx>>24))
	}
}

func (e *Encoder) inMemo(v any) (uint32, bool) {
	if e.Fast {
		return 0, false
	}
	k, ok := e.memoKeyOf(v)
	if !ok {
		return 0, false
	}
	idx, ok := e.memo[k]
	return idx, ok
}

func (e *Encoder) save(v any, depth int) error {
	if depth > maxDepth {
		return errTooDeep
	}
	// CPython ends a full frame when it starts saving the next object.
	e.opcodeBoundary()
	return e.saveValue(v, depth)
}

func (e *Encoder) saveValue(v any, depth int) error {
	// Atoms are never memoized.
	switch x := v.(type) {
	case nil:
		e.write(opcode.None)
		return nil
	case bool:
		e.saveBool(x)
		return nil
	case int:
		e.saveInt(int64(x))
		return nil
	case int8:
		e.saveInt(int64(x))
		return nil
	case int16:
		e.saveInt(int64(x))
		return nil
	case int32:
		e.saveInt(int64(x))
		return nil
	case int64:
		e.saveInt(x)
		return nil
	case uint:
		return e.saveUint(uint64(x))
	case uint8:
		e.saveInt(int64(x))
		return nil
	case uint16:
		e.saveInt(int64(x))
		return nil
	case uint32:
		e.saveInt(int64(x))
		return nil
	case uint64:
		return e.saveUint(x)
	case *big.Int:
		return e.saveBig(x)
	case float64:
		e.saveFloat(x)
		return nil
	case float32:
		e.saveFloat(float64(x))
		return nil
	}
	if e.memoGet(v) {
		return nil
	}
	switch x := v.(type) {
	case string:
		return e.saveStr(x, v)
	case []byte:
		return e.saveBytes(x, v, depth)
	case Tuple:
		return e.saveTuple(x, v, depth)
	case List:
		return e.saveList(x, v, depth)
	case []any:
		return e.saveList(x, v, depth)
	case Dict:
		return e.saveDict(x, v, depth)
	case *Set:
		return e.saveSet(x, depth)
	case Global:
		return e.saveGlobal(x, v)
	case PersistentRef:
		return e.savePers(x, depth)
	case *Object:
		return e.saveObject(x, depth)
	case Object:
		return e.saveObject(&x, depth)
	case ByteArray:
		return errors.New("pickle: bytearray is not supported by the encoder")
	}
	return fmt.Errorf("pickle: cannot encode a value of type %T", v)
}

func (e *Encoder) saveBool(b bool) {
	switch {
	case e.Protocol >= 2 && b:
		e.write(opcode.NewTrue)
	case e.Protocol >= 2:
		e.write(opcode.NewFalse)
	case b:
		e.writeString("I01\n")
	default:
		e.writeString("I00\n")
	}
}

func (e *Encoder) saveInt(v int64) {
	if v >= math.MinInt32 && v <= math.MaxInt32 {
		if e.Protocol == 0 {
			e.write(opcode.Int)
			e.writeString(strconv.FormatInt(v, 10))
			e.write('\n')
			return
		}
		u := uint32(v)
		switch {
		case u>>16 != 0:
			e.write(opcode.BinInt, byte(u), byte(u>>8), byte(u>>16), byte(u>>24))
		case u>>8 != 0:
			e.write(opcode.BinInt2, byte(u), byte(u>>8))
		default:
			e.write(opcode.BinInt1, byte(u))
		}
		return
	}
	if e.Protocol < 2 {
		e.write(opcode.Long)
		e.writeString(strconv.FormatInt(v, 10))
		e.writeString("L\n")
		return
	}
	// LONG1 with the minimal two's-complement length (at most 8 bytes here).
	var b [9]byte
	binary.LittleEndian.PutUint64(b[:], uint64(v))
	n := 8
	if v < 0 {
		for n > 1 && b[n-1] == 0xff && b[n-2]&0x80 != 0 {
			n--
		}
	} else {
		for n > 1 && b[n-1] == 0 && b[n-2]&0x80 == 0 {
			n--
		}
	}
	e.write(opcode.Long1, byte(n))
	e.write(b[:n]...)
}

func (e *Encoder) saveUint(v uint64) error {
	if v <= math.MaxInt64 {
		e.saveInt(int64(v))
		return nil
	}
	return e.saveBig(new(big.Int).SetUint64(v))
}

func (e *Encoder) saveBig(x *big.Int) error {
	if x.IsInt64() {
		e.saveInt(x.Int64())
		return nil
	}
	if e.Protocol < 2 {
		e.write(opcode.Long)
		e.writeString(x.String())
		e.writeString("L\n")
		return nil
	}
	// CPython: nbytes = bitlen(|x|)/8 + 1 in two's complement, one byte less
	// for a negative number whose top byte is only sign.
	nbytes := x.BitLen()/8 + 1
	mag := new(big.Int)
	if x.Sign() < 0 {
		mag.Lsh(big.NewInt(1), uint(8*nbytes))
		mag.Add(mag, x)
	} else {
		mag.Set(x)
	}
	be := mag.FillBytes(make([]byte, nbytes))
	le := make([]byte, nbytes)
	for i, c := range be {
		le[nbytes-1-i] = c
	}
	if x.Sign() < 0 && nbytes > 1 && le[nbytes-1] == 0xff && le[nbytes-2]&0x80 != 0 {
		le = le[:nbytes-1]
		nbytes--
	}
	if nbytes < 256 {
		e.write(opcode.Long1, byte(nbytes))
	} else {
		if nbytes > math.MaxInt32 {
			return errors.New("pickle: int too large to pickle")
		}
		e.write(opcode.Long4, byte(nbytes), byte(nbytes>>8), byte(nbytes>>16), byte(nbytes>>24))
	}
	e.writeLarge(nil, string(le))
	return nil
}

func (e *Encoder) saveFloat(f float64) {
	if e.Protocol == 0 {
		e.write(opcode.Float)
		e.startFrame()
		e.buf = pyrepr.AppendFloat(e.buf, f)
		e.write('\n')
		return
	}
	var b [9]byte
	b[0] = opcode.BinFloat
	binary.BigEndian.PutUint64(b[1:], math.Float64bits(f))
	e.write(b[:]...)
}

// saveStr saves s; v is s as an interface value (passed down so that fast
// mode, which memoizes nothing, does not box it again).
func (e *Encoder) saveStr(s string, v any) error {
	if e.Protocol == 0 {
		e.write(opcode.Unicode)
		e.startFrame()
		e.buf = appendRawUnicodeEscape(e.buf, s)
		e.write('\n')
	} else {
		// Python could not decode it (surrogates, which Python strs may
		// hold, are written as CPython writes them).
		if err := checkUTF8(unsafe.Slice(unsafe.StringData(s), len(s))); err != nil {
			return fmt.Errorf("pickle: %w", err)
		}
		n := len(s)
		var hdr [9]byte
		switch {
		case n <= 0xff && e.Protocol >= 4:
			hdr[0], hdr[1] = opcode.ShortBinUnicode, byte(n)
			e.writeLarge(hdr[:2], s)
		case uint64(n) <= 0xffffffff:
			hdr[0] = opcode.BinUnicode
			binary.LittleEndian.PutUint32(hdr[1:], uint32(n))
			e.writeLarge(hdr[:5], s)
		case e.Protocol >= 4:
			hdr[0] = opcode.BinUnicode8
			binary.LittleEndian.PutUint64(hdr[1:], uint64(n))
			e.writeLarge(hdr[:9], s)
		default:
			return errors.New("pickle: cannot serialize a string larger than 4GiB")
		}
	}
	if !e.Fast {
		e.memoPut(v)
	}
	return nil
}

// appendRawUnicodeEscape is CPython's pickler variant of raw-unicode-escape:
// Latin-1 bytes, with \uXXXX / \UXXXXXXXX for characters above U+00FF and for
// backslash, NUL, newline, carriage return and U+001A.
func appendRawUnicodeEscape(dst []byte, s string) []byte {
	const hexdigits = "0123456789abcdef"
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			r = rune(s[i]) // not UTF-8: keep the byte's value
		} else if r >= 0xd800 && r <= 0xdfff {
			r = utf8.RuneError
		}
		// Surrogates encoded in "surrogatepass" form.
		if n == 1 && s[i] == 0xed && i+2 < len(s) && s[i+1]&0xe0 == 0xa0 && s[i+2]&0xc0 == 0x80 {
			r = rune(0xd000) | rune(s[i+1]&0x3f)<<6 | rune(s[i+2]&0x3f)
			n = 3
		}
		i += n
		switch {
		case r >= 0x10000:
			dst = append(dst, '\\', 'U')
			for sh := 28; sh >= 0; sh -= 4 {
				dst = append(dst, hexdigits[(r>>uint(sh))&0xf])
			}
		case r >= 256 || r == '\\' || r == 0 || r == '\n' || r == '\r' || r == 0x1a:
			dst = append(dst, '\\', 'u')
			for sh := 12; sh >= 0; sh -= 4 {
				dst = append(dst, hexdigits[(r>>uint(sh))&0xf])
			}
		default:
			dst = append(dst, byte(r))
		}
	}
	return dst
}

// latin1Name stands for the interned 'latin1' str CPython passes to
// _codecs.encode when pickling bytes with protocols 0–2.
var latin1Name = "latin1"

func (e *Encoder) saveBytes(b []byte, v any, depth int) error {
	if e.Protocol < 3 {
		// CPython fakes bytes with a REDUCE: _codecs.encode(latin1 text,
		// 'latin1'), or bytes() when empty.
		var red *Object
		if len(b) == 0 {
			red = &Object{Callable: Global{"builtins", "bytes"}, Args: Tuple{}}
		} else {
			text := make([]rune, len(b))
			for i, c := range b {
				text[i] = rune(c)
			}
			red = &Object{Callable: Global{"_codecs", "encode"}, Args: Tuple{string(text), latin1Name}}
		}
		return e.saveReduce(red, v, depth)
	}
	n := len(b)
	var hdr [9]byte
	switch {
	case n <= 0xff:
		hdr[0], hdr[1] = opcode.ShortBinBytes, byte(n)
		e.writeLarge(hdr[:2], unsafeString(b))
	case uint64(n) <= 0xffffffff:
		hdr[0] = opcode.BinBytes
		binary.LittleEndian.PutUint32(hdr[1:], uint32(n))
		e.writeLarge(hdr[:5], unsafeString(b))
	case e.Protocol >= 4:
		hdr[0] = opcode.BinBytes8
		binary.LittleEndian.PutUint64(hdr[1:], uint64(n))
		e.writeLarge(hdr[:9], unsafeString(b))
	default:
		return errors.New("pickle: cannot serialize a bytes object larger than 4 GiB")
	}
	if !e.Fast {
		e.memoPut(v)
	}
	return nil
}

// unsafeString views b as a string without copying; the string is only
// appended to the output, never kept.
func unsafeString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func (e *Encoder) saveTuple(t Tuple, v any, depth int) error {
	n := len(t)
	if n == 0 {
		if e.Protocol >= 1 {
			e.write(opcode.EmptyTuple)
		} else {
			e.write(opcode.Mark, opcode.Tuple)
		}
		return nil
	}
	if n <= 3 && e.Protocol >= 2 {
		for _, it := range t {
			if err := e.save(it, depth+1); err != nil {
				return err
			}
		}
		// A tuple reached again through its own items is already memoized:
		// drop the items and fetch it.
		if idx, ok := e.inMemo(v); ok {
			for i := 0; i < n; i++ {
				e.write(opcode.Pop)
			}
			e.writeGet(idx)
			return nil
		}
		e.write(byte(opcode.Tuple1 + n - 1))
		if !e.Fast {
			e.memoPut(v)
		}
		return nil
	}
	e.write(opcode.Mark)
	for _, it := range t {
		if err := e.save(it, depth+1); err != nil {
			return err
		}
	}
	if idx, ok := e.inMemo(v); ok {
		if e.Protocol >= 1 {
			e.write(opcode.PopMark)
		} else {
			for i := 0; i <= n; i++ {
				e.write(opcode.Pop)
			}
		}
		e.writeGet(idx)
		return nil
	}
	e.write(opcode.Tuple)
	if !e.Fast {
		e.memoPut(v)
	}
	return nil
}

func (e *Encoder) saveList(l []any, v any, depth int) error {
	if e.Protocol >= 1 {
		e.write(opcode.EmptyList)
	} else {
		e.write(opcode.Mark, opcode.List)
	}
	if !e.Fast {
		e.memoPut(v)
	}
	if e.Protocol == 0 {
		for _, it := range l {
			if err := e.save(it, depth+1); err != nil {
				return err
			}
			e.write(opcode.Append)
		}
		return nil
	}
	if len(l) == 1 {
		if err := e.save(l[0], depth+1); err != nil {
			return err
		}
		e.write(opcode.Append)
		return nil
	}
	for i := 0; i < len(l); {
		e.write(opcode.Mark)
		for j := 0; j < batchSize && i < len(l); j, i = j+1, i+1 {
			if err := e.save(l[i], depth+1); err != nil {
				return err
			}
		}
		e.write(opcode.Appends)
	}
	return nil
}

func (e *Encoder) saveDict(d Dict, v any, depth int) error {
	if e.Protocol >= 1 {
		e.write(opcode.EmptyDict)
	} else {
		e.write(opcode.Mark, opcode.Dict)
	}
	if !e.Fast {
		e.memoPut(v)
	}
	if len(d) == 0 {
		return nil
	}
	saveKV := func(kv KV) error {
		if err := e.save(kv.Key, depth+1); err != nil {
			return err
		}
		return e.save(kv.Value, depth+1)
	}
	if e.Protocol == 0 {
		for _, kv := range d {
			if err := saveKV(kv); err != nil {
				return err
			}
			e.write(opcode.SetItem)
		}
		return nil
	}
	if len(d) == 1 {
		if err := saveKV(d[0]); err != nil {
			return err
		}
		e.write(opcode.SetItem)
		return nil
	}
	// CPython's loop for exact dicts writes an empty MARK SETITEMS after a
	// last batch that was exactly full.
	for i := 0; ; {
		e.write(opcode.Mark)
		j := 0
		for ; j < batchSize && i < len(d); j, i = j+1, i+1 {
			if err := saveKV(d[i]); err != nil {
				return err
			}
		}
		e.write(opcode.SetItems)
		if j != batchSize {
			break
		}
	}
	return nil
}

func (e *Encoder) saveSet(s *Set, depth int) error {
	if e.Protocol < 4 {
		name := "set"
		if s.Frozen {
			name = "frozenset"
		}
		red := &Object{Callable: Global{"builtins", name}, Args: Tuple{List(s.Items)}}
		return e.saveReduce(red, s, depth)
	}
	if s.Frozen {
		e.write(opcode.Mark)
		for _, it := range s.Items {
			if err := e.save(it, depth+1); err != nil {
				return err
			}
		}
		if idx, ok := e.inMemo(s); ok {
			e.write(opcode.PopMark)
			e.writeGet(idx)
			return nil
		}
		e.write(opcode.FrozenSet)
		e.memoPut(s)
		return nil
	}
	e.write(opcode.EmptySet)
	e.memoPut(s)
	if len(s.Items) == 0 {
		return nil
	}
	for i := 0; ; {
		e.write(opcode.Mark)
		j := 0
		for ; j < batchSize && i < len(s.Items); j, i = j+1, i+1 {
			if err := e.save(s.Items[i], depth+1); err != nil {
				return err
			}
		}
		e.write(opcode.AddItems)
		if j != batchSize {
			break
		}
	}
	return nil
}

func (e *Encoder) saveGlobal(g Global, v any) error {
	if e.Protocol >= 4 {
		// The module name str is shared by all classes of a module and the
		// qualified name by nothing else: identify both by value.
		if err := e.saveIdentified(g.Module, 'M'); err != nil {
			return err
		}
		if err := e.saveIdentified(g.Name, 'Q'); err != nil {
			return err
		}
		e.write(opcode.StackGlobal)
	} else {
		if strings.ContainsRune(g.Module, '\n') || strings.ContainsRune(g.Name, '\n') {
			// The GLOBAL opcode ends each name with a newline.
			return fmt.Errorf("pickle: cannot write global %q.%q below protocol 4", g.Module, g.Name)
		}
		module, name := g.Module, g.Name
		if e.Protocol < 3 {
			g2 := py2Global(g)
			module, name = g2.Module, g2.Name
		}
		e.write(opcode.Global)
		e.writeString(module)
		e.write('\n')
		e.writeString(name)
		e.write('\n')
	}
	if !e.Fast {
		e.memoPut(v)
	}
	return nil
}

// saveIdentified saves a str whose identity is its value within kind.
func (e *Encoder) saveIdentified(s string, kind byte) error {
	k := memoKey{kind: kind, s: s}
	if !e.Fast {
		if idx, ok := e.memo[k]; ok {
			e.writeGet(idx)
			return nil
		}
	}
	if err := e.saveStr(s, s); err != nil {
		return err
	}
	if !e.Fast {
		// saveStr memoized it under its pointer; alias the value key.
		e.memo[k] = e.memoLen - 1
	}
	return nil
}

func (e *Encoder) savePers(p PersistentRef, depth int) error {
	if e.Protocol >= 1 {
		if err := e.save(p.ID, depth+1); err != nil {
			return err
		}
		e.write(opcode.BinPersID)
		return nil
	}
	s, ok := p.ID.(string)
	if !ok {
		return errors.New("pickle: persistent IDs in protocol 0 must be ASCII strings")
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] == '\n' {
			return errors.New("pickle: persistent IDs in protocol 0 must be ASCII strings")
		}
	}
	e.write(opcode.PersID)
	e.writeString(s)
	e.write('\n')
	return nil
}

func (e *Encoder) saveObject(o *Object, depth int) error {
	return e.saveReduce(o, o, depth)
}

// saveReduce is CPython's save_reduce for the description o of obj.
func (e *Encoder) saveReduce(o *Object, obj any, depth int) error {
	if o.New {
		if e.Protocol < 2 {
			return errors.New("pickle: NEWOBJ needs protocol 2 or higher")
		}
		if err := e.save(o.Callable, depth+1); err != nil {
			return err
		}
		if err := e.save(o.Args, depth+1); err != nil {
			return err
		}
		if len(o.Kwargs) > 0 {
			if e.Protocol < 4 {
				return errors.New("pickle: NEWOBJ_EX needs protocol 4")
			}
			if err := e.save(o.Kwargs, depth+1); err != nil {
				return err
			}
			e.write(opcode.NewObjEx)
		} else {
			e.write(opcode.NewObj)
		}
	} else {
		if err := e.save(o.Callable, depth+1); err != nil {
			return err
		}
		if err := e.save(o.Args, depth+1); err != nil {
			return err
		}
		e.write(opcode.Reduce)
	}
	if idx, ok := e.inMemo(obj); ok {
		e.write(opcode.Pop)
		e.writeGet(idx)
		return nil
	}
	e.memoPut(obj)
	if len(o.ListItems) > 0 {
		if err := e.batchIter(o.ListItems, nil, depth); err != nil {
			return err
		}
	}
	if len(o.DictItems) > 0 {
		if err := e.batchIter(nil, o.DictItems, depth); err != nil {
			return err
		}
	}
	if o.State != nil {
		if err := e.save(o.State, depth+1); err != nil {
			return err
		}
		e.write(opcode.Build)
	}
	return nil
}

// batchIter is CPython's batch_list / batch_dict for items that come from an
// iterator (not an exact list or dict): a lone last item gets APPEND/SETITEM.
func (e *Encoder) batchIter(items []any, pairs Dict, depth int) error {
	n := len(items) + len(pairs)
	one, many := byte(opcode.Append), byte(opcode.Appends)
	if pairs != nil {
		one, many = opcode.SetItem, opcode.SetItems
	}
	save := func(i int) error {
		if pairs == nil {
			return e.save(items[i], depth+1)
		}
		if err := e.save(pairs[i].Key, depth+1); err != nil {
			return err
		}
		return e.save(pairs[i].Value, depth+1)
	}
	if e.Protocol == 0 {
		for i := 0; i < n; i++ {
			if err := save(i); err != nil {
				return err
			}
			e.write(one)
		}
		return nil
	}
	for i := 0; i < n; {
		if n-i == 1 {
			if err := save(i); err != nil {
				return err
			}
			e.write(one)
			return nil
		}
		e.write(opcode.Mark)
		for j := 0; j < batchSize && i < n; j, i = j+1, i+1 {
			if err := save(i); err != nil {
				return err
			}
		}
		e.write(many)
	}
	return nil
}

// py2Global maps a global to the Python 2 name a protocol 0–2 pickle
// carries, as Python's Pickler does (fix_imports). The mapping is not
// one-to-one: py3Global(py2Global(g)) is not g for Python 2 module names
// (copy_reg stays copy_reg and reads back as copyreg) and for globals that
// share a Python 2 name (ConnectionError is written as OSError).
func py2Global(g Global) Global { return renameGlobal(g, py2Names, py2Modules) }
