package refs

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"

	"github.com/zodbctl/zodbctl/fsformat/pickle/opcode"
)

// maxRecord keeps every offset representable in the int32 spans of value.
const maxRecord = math.MaxInt32

// memoSlack is how far past the end of the memo slice a key may be and still
// be stored in the slice; farther keys go to a map so that a forged
// LONG_BINPUT cannot make the Scanner allocate a huge slice.
const memoSlack = 1024

var (
	vNoneValue   = value{kind: vNone}
	vScalarValue = value{kind: vScalar}
)

// run executes one pickle starting at pos and returns the position after
// its STOP. Persistent ids are classified and appended to refs when collect
// is set.
func (s *Scanner) run(pos int, refs []Ref, collect bool) (int, []Ref, error) {
	data := s.data
	if len(data) > maxRecord {
		return pos, refs, &Error{Offset: 0, Msg: "record larger than 2 GiB"}
	}
	s.stack = s.stack[:0]
	s.marks = s.marks[:0]
	for {
		if pos >= len(data) {
			if s.pickle == 1 && pos == len(data) && len(s.stack) == 0 && len(s.marks) == 0 {
				return pos, refs, &Error{Offset: pos, Msg: "no state pickle after the class pickle"}
			}
			return pos, refs, &Error{Offset: pos, Msg: "unexpected end of data (no STOP)"}
		}
		at := pos
		op := data[pos]
		pos++
		switch op {
		case opcode.Proto:
			if pos >= len(data) {
				return at, refs, s.fail(at, "truncated")
			}
			if data[pos] > 5 {
				return at, refs, s.fail(at, "unsupported pickle protocol "+strconv.Itoa(int(data[pos])))
			}
			pos++
		case opcode.Frame:
			if len(data)-pos < 8 {
				return at, refs, s.fail(at, "truncated")
			}
			pos += 8
		case opcode.Stop:
			v, ok := s.pop()
			if !ok {
				return at, refs, s.fail(at, "stack empty")
			}
			if s.pickle == 0 {
				s.result = v
			}
			return pos, refs, nil
		case opcode.Mark:
			s.marks = append(s.marks, len(s.stack))
		case opcode.Pop:
			if _, ok := s.pop(); !ok {
				if _, ok := s.popMark(); !ok {
					return at, refs, s.fail(at, "stack empty")
				}
			}
		case opcode.PopMark:
			base, ok := s.popMark()
			if !ok {
				return at, refs, s.fail(at, "no MARK")
			}
			s.stack = s.stack[:base]
		case opcode.Dup:
			if len(s.stack) <= s.markBase() {
				return at, refs, s.fail(at, "stack empty")
			}
			s.push(s.stack[len(s.stack)-1])
		case opcode.None:
			s.push(vNoneValue)
		case opcode.NewTrue, opcode.NewFalse:
			s.push(vScalarValue)
		case opcode.Int, opcode.Long, opcode.Float:
			_, end, ok := s.line(pos)
			if !ok {
				return at, refs, s.fail(at, "missing end of line")
			}
			pos = end + 1
			s.push(vScalarValue)
		case opcode.BinInt:
			if pos += 4; pos > len(data) {
				return at, refs, s.fail(at, "truncated")
			}
			s.push(vScalarValue)
		case opcode.BinInt1:
			if pos++; pos > len(data) {
				return at, refs, s.fail(at, "truncated")
			}
			s.push(vScalarValue)
		case opcode.BinInt2:
			if pos += 2; pos > len(data) {
				return at, refs, s.fail(at, "truncated")
			}
			s.push(vScalarValue)
		case opcode.BinFloat:
			if pos += 8; pos > len(data) {
				return at, refs, s.fail(at, "truncated")
			}
			s.push(vScalarValue)
		case opcode.Long1, opcode.Long4:
			n, next, ok := s.length(pos, true, lenSize(op))
			if !ok {
				return at, refs, s.fail(at, "bad length")
			}
			pos = next + n
			s.push(vScalarValue)
		case opcode.ShortBinString, opcode.ShortBinBytes, opcode.ShortBinUnicode:
			n, next, ok := s.length(pos, false, 1)
			if !ok {
				return at, refs, s.fail(at, "string runs past the end of the data")
			}
			s.push(value{kind: vString, idx: int32(next), n: int32(n)})
			pos = next + n
		case opcode.BinString, opcode.BinBytes, opcode.BinUnicode:
			// BINSTRING's length is signed in Python; a negative one is an
			// error there and exceeds the data here.
			n, next, ok := s.length(pos, false, 4)
			if !ok {
				return at, refs, s.fail(at, "string runs past the end of the data")
			}
			s.push(value{kind: vString, idx: int32(next), n: int32(n)})
			pos = next + n
		case opcode.BinUnicode8, opcode.BinBytes8, opcode.ByteArray8:
			n, next, ok := s.length(pos, false, 8)
			if !ok {
				return at, refs, s.fail(at, "string runs past the end of the data")
			}
			s.push(value{kind: vString, idx: int32(next), n: int32(n)})
			pos = next + n
		case opcode.String:
			start, end, ok := s.line(pos)
			if !ok {
				return at, refs, s.fail(at, "missing end of line")
			}
			v, err := s.decodeQuoted(start, end)
			if err != "" {
				return at, refs, s.fail(at, err)
			}
			s.push(v)
			pos = end + 1
		case opcode.Unicode:
			start, end, ok := s.line(pos)
			if !ok {
				return at, refs, s.fail(at, "missing end of line")
			}
			v, err := s.decodeRawUnicodeEscape(start, end)
			if err != "" {
				return at, refs, s.fail(at, err)
			}
			s.push(v)
			pos = end + 1
		case opcode.EmptyTuple:
			s.push(s.newTuple(nil))
		case opcode.Tuple1, opcode.Tuple2, opcode.Tuple3:
			n := int(op-opcode.Tuple1) + 1
			if len(s.stack)-n < s.markBase() {
				return at, refs, s.fail(at, "stack underflow")
			}
			t := s.newTuple(s.stack[len(s.stack)-n:])
			s.stack = append(s.stack[:len(s.stack)-n], t)
		case opcode.Tuple:
			base, ok := s.popMark()
			if !ok {
				return at, refs, s.fail(at, "no MARK")
			}
			t := s.newTuple(s.stack[base:])
			s.stack = append(s.stack[:base], t)
		case opcode.EmptyList:
			s.push(s.newList(nil))
		case opcode.List:
			base, ok := s.popMark()
			if !ok {
				return at, refs, s.fail(at, "no MARK")
			}
			l := s.newList(s.stack[base:])
			s.stack = append(s.stack[:base], l)
		case opcode.EmptyDict, opcode.EmptySet:
			s.push(value{kind: vDict})
		case opcode.Dict, opcode.FrozenSet:
			base, ok := s.popMark()
			if !ok {
				return at, refs, s.fail(at, "no MARK")
			}
			s.stack = append(s.stack[:base], value{kind: vDict})
		case opcode.Append:
			if len(s.stack)-2 < s.markBase() {
				return at, refs, s.fail(at, "stack underflow")
			}
			v := s.stack[len(s.stack)-1]
			s.stack = s.stack[:len(s.stack)-1]
			s.appendOne(s.stack[len(s.stack)-1], v)
		case opcode.Appends, opcode.SetItems, opcode.AddItems:
			base, ok := s.popMark()
			if !ok {
				return at, refs, s.fail(at, "no MARK")
			}
			if base <= s.markBase() {
				return at, refs, s.fail(at, "stack underflow")
			}
			if op == opcode.Appends {
				s.appendTo(s.stack[base-1], s.stack[base:])
			}
			s.stack = s.stack[:base]
		case opcode.SetItem:
			if len(s.stack)-3 < s.markBase() {
				return at, refs, s.fail(at, "stack underflow")
			}
			s.stack = s.stack[:len(s.stack)-2]
		case opcode.Put:
			start, end, ok := s.line(pos)
			if !ok {
				return at, refs, s.fail(at, "missing end of line")
			}
			key, err := strconv.ParseInt(string(data[start:end]), 10, 64)
			if err != nil || key < 0 {
				return at, refs, s.fail(at, "bad memo key")
			}
			pos = end + 1
			if err := s.put(at, key); err != nil {
				return at, refs, err
			}
		case opcode.BinPut:
			if pos >= len(data) {
				return at, refs, s.fail(at, "truncated")
			}
			key := int64(data[pos])
			pos++
			if err := s.put(at, key); err != nil {
				return at, refs, err
			}
		case opcode.LongBinPut:
			if len(data)-pos < 4 {
				return at, refs, s.fail(at, "truncated")
			}
			key := int64(binary.LittleEndian.Uint32(data[pos:]))
			pos += 4
			if err := s.put(at, key); err != nil {
				return at, refs, err
			}
		case opcode.Memoize:
			if err := s.put(at, int64(s.memoLen)); err != nil {
				return at, refs, err
			}
		case opcode.Get:
			start, end, ok := s.line(pos)
			if !ok {
				return at, refs, s.fail(at, "missing end of line")
			}
			key, err := strconv.ParseInt(string(data[start:end]), 10, 64)
			if err != nil {
				return at, refs, s.fail(at, "bad memo key")
			}
			pos = end + 1
			if err := s.get(at, key); err != nil {
				return at, refs, err
			}
		case opcode.BinGet:
			if pos >= len(data) {
				return at, refs, s.fail(at, "truncated")
			}
			key := int64(data[pos])
			pos++
			if err := s.get(at, key); err != nil {
				return at, refs, err
			}
		case opcode.LongBinGet:
			if len(data)-pos < 4 {
				return at, refs, s.fail(at, "truncated")
			}
			key := int64(binary.LittleEndian.Uint32(data[pos:]))
			pos += 4
			if err := s.get(at, key); err != nil {
				return at, refs, err
			}
		case opcode.Global, opcode.Inst:
			m0, m1, ok := s.line(pos)
			if !ok {
				return at, refs, s.fail(at, "missing end of line")
			}
			n0, n1, ok := s.line(m1 + 1)
			if !ok {
				return at, refs, s.fail(at, "missing end of line")
			}
			pos = n1 + 1
			g := s.newGlobal(value{kind: vString, idx: int32(m0), n: int32(m1 - m0)}, value{kind: vString, idx: int32(n0), n: int32(n1 - n0)})
			s.sawGlobal(g)
			if op == opcode.Global {
				s.push(g)
				break
			}
			base, ok := s.popMark()
			if !ok {
				return at, refs, s.fail(at, "no MARK")
			}
			s.stack = append(s.stack[:base], vNoneValue)
		case opcode.StackGlobal:
			if len(s.stack)-2 < s.markBase() {
				return at, refs, s.fail(at, "stack underflow")
			}
			mod, name := s.stack[len(s.stack)-2], s.stack[len(s.stack)-1]
			if mod.kind != vString || name.kind != vString {
				return at, refs, s.fail(at, "module or name is not a string")
			}
			g := s.newGlobal(mod, name)
			s.sawGlobal(g)
			s.stack = append(s.stack[:len(s.stack)-2], g)
		case opcode.Obj:
			base, ok := s.popMark()
			if !ok || base >= len(s.stack) {
				return at, refs, s.fail(at, "no MARK or no class")
			}
			s.stack = append(s.stack[:base], vNoneValue)
		case opcode.Reduce, opcode.NewObj, opcode.Build:
			// REDUCE and NEWOBJ replace (callable, args) by the object, which
			// noload does not build; BUILD drops the state and keeps the
			// object.
			if len(s.stack)-2 < s.markBase() {
				return at, refs, s.fail(at, "stack underflow")
			}
			s.stack = s.stack[:len(s.stack)-1]
			if op != opcode.Build {
				s.stack[len(s.stack)-1] = vNoneValue
			}
		case opcode.NewObjEx:
			if len(s.stack)-3 < s.markBase() {
				return at, refs, s.fail(at, "stack underflow")
			}
			s.stack = s.stack[:len(s.stack)-2]
			s.stack[len(s.stack)-1] = vNoneValue
		case opcode.Ext1, opcode.Ext2, opcode.Ext4:
			n := 1
			if op == opcode.Ext2 {
				n = 2
			} else if op == opcode.Ext4 {
				n = 4
			}
			if pos += n; pos > len(data) {
				return at, refs, s.fail(at, "truncated")
			}
			s.push(vNoneValue)
		case opcode.ReadOnlyBuffer:
			if len(s.stack) <= s.markBase() {
				return at, refs, s.fail(at, "stack empty")
			}
		case opcode.PersID, opcode.BinPersID:
			var pid value
			if op == opcode.PersID {
				start, end, ok := s.line(pos)
				if !ok {
					return at, refs, s.fail(at, "missing end of line")
				}
				pid = value{kind: vString, idx: int32(start), n: int32(end - start)}
				pos = end + 1
			} else {
				v, ok := s.pop()
				if !ok {
					return at, refs, s.fail(at, "stack empty")
				}
				pid = v
			}
			if s.pickle == 0 {
				s.persidInCls = true
				s.persidFirst = s.persidFirst || s.firstGlobal.kind == vUnset
			}
			if collect {
				r, err := s.classify(pid, at)
				if err != nil {
					return at, refs, err
				}
				refs = append(refs, r)
			}
			s.push(vNoneValue)
		default:
			return at, refs, s.fail(at, "unknown opcode")
		}
	}
}

func (s *Scanner) sawGlobal(g value) {
	if s.pickle == 0 && s.firstGlobal.kind == vUnset {
		s.firstGlobal = g
	}
}

func (s *Scanner) put(at int, key int64) error {
	if len(s.stack) <= s.markBase() {
		return s.fail(at, "stack empty")
	}
	s.memoPut(key, s.stack[len(s.stack)-1])
	return nil
}

func (s *Scanner) get(at int, key int64) error {
	v, ok := s.memoGet(key)
	if !ok {
		return s.fail(at, "memo key "+strconv.FormatInt(key, 10)+" not found")
	}
	s.push(v)
	return nil
}

// line returns the bounds of the text line starting at pos (end is the
// index of its '\n').
func (s *Scanner) line(pos int) (start, end int, ok bool) {
	if pos > len(s.data) {
		return 0, 0, false
	}
	i := bytes.IndexByte(s.data[pos:], '\n')
	if i < 0 {
		return 0, 0, false
	}
	return pos, pos + i, true
}

// length reads a little-endian length of size bytes at pos (signed when
// signed is set) and checks that that many bytes follow.
func (s *Scanner) length(pos int, signed bool, size int) (n, next int, ok bool) {
	data := s.data
	if len(data)-pos < size {
		return 0, 0, false
	}
	var u uint64
	switch size {
	case 1:
		u = uint64(data[pos])
	case 4:
		u32 := binary.LittleEndian.Uint32(data[pos:])
		if signed && int32(u32) < 0 {
			return 0, 0, false
		}
		u = uint64(u32)
	case 8:
		u = binary.LittleEndian.Uint64(data[pos:])
	}
	next = pos + size
	if u > uint64(len(data)-next) {
		return 0, 0, false
	}
	return int(u), next, true
}

// decodeQuoted decodes a protocol-0 STRING argument ('...' or "..." with
// Python escapes) into the arena.
func (s *Scanner) decodeQuoted(start, end int) (value, string) {
	src := s.data[start:end]
	if len(src) < 2 || (src[0] != '\'' && src[0] != '"') || src[len(src)-1] != src[0] {
		return value{}, "the STRING opcode argument must be quoted"
	}
	src = src[1 : len(src)-1]
	off := len(s.arena)
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '\\' {
			s.arena = append(s.arena, c)
			continue
		}
		i++
		if i >= len(src) {
			return value{}, "trailing backslash in STRING"
		}
		switch c = src[i]; c {
		case '\n':
		case '\\', '\'', '"':
			s.arena = append(s.arena, c)
		case 'a':
			s.arena = append(s.arena, 7)
		case 'b':
			s.arena = append(s.arena, 8)
		case 'f':
			s.arena = append(s.arena, 12)
		case 'n':
			s.arena = append(s.arena, '\n')
		case 'r':
			s.arena = append(s.arena, '\r')
		case 't':
			s.arena = append(s.arena, '\t')
		case 'v':
			s.arena = append(s.arena, 11)
		case 'x':
			if i+2 >= len(src) {
				return value{}, "truncated \\x escape in STRING"
			}
			h, ok := hexByte(src[i+1 : i+3])
			if !ok {
				return value{}, "invalid \\x escape in STRING"
			}
			s.arena = append(s.arena, h)
			i += 2
		default:
			if c >= '0' && c <= '7' {
				v := int(c - '0')
				for k := 0; k < 2 && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '7'; k++ {
					i++
					v = v*8 + int(src[i]-'0')
				}
				s.arena = append(s.arena, byte(v))
				break
			}
			s.arena = append(s.arena, '\\', c)
		}
	}
	return value{kind: vString, flags: inArena, idx: int32(off), n: int32(len(s.arena) - off)}, ""
}

// decodeRawUnicodeEscape decodes a protocol-0 UNICODE argument into UTF-8 in
// the arena: \uXXXX and \UXXXXXXXX are escapes, every other byte is a
// Latin-1 character.
func (s *Scanner) decodeRawUnicodeEscape(start, end int) (value, string) {
	src := s.data[start:end]
	off := len(s.arena)
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c == '\\' && i+1 < len(src) && (src[i+1] == 'u' || src[i+1] == 'U') {
			n := 4
			if src[i+1] == 'U' {
				n = 8
			}
			if i+2+n > len(src) {
				return value{}, "truncated \\u escape in UNICODE"
			}
			var r rune
			for _, h := range src[i+2 : i+2+n] {
				d, ok := hexDigit(h)
				if !ok {
					return value{}, "invalid \\u escape in UNICODE"
				}
				r = r<<4 | rune(d)
			}
			if r > 0x10ffff || r < 0 {
				return value{}, "\\U escape out of range in UNICODE"
			}
			s.arena = appendRune(s.arena, r)
			i += 1 + n
			continue
		}
		s.arena = appendRune(s.arena, rune(c))
	}
	return value{kind: vString, flags: inArena, idx: int32(off), n: int32(len(s.arena) - off)}, ""
}

func appendRune(b []byte, r rune) []byte {
	if r < 0x80 {
		return append(b, byte(r))
	}
	// Surrogates (possible with \ud800) are kept as WTF-8 style bytes; they
	// only matter for display.
	switch {
	case r < 0x800:
		return append(b, byte(0xc0|r>>6), byte(0x80|r&0x3f))
	case r < 0x10000:
		return append(b, byte(0xe0|r>>12), byte(0x80|(r>>6)&0x3f), byte(0x80|r&0x3f))
	}
	return append(b, byte(0xf0|r>>18), byte(0x80|(r>>12)&0x3f), byte(0x80|(r>>6)&0x3f), byte(0x80|r&0x3f))
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func hexByte(h []byte) (byte, bool) {
	hi, ok1 := hexDigit(h[0])
	lo, ok2 := hexDigit(h[1])
	return hi<<4 | lo, ok1 && ok2
}

func lenSize(op byte) int {
	if op == opcode.Long4 {
		return 4
	}
	return 1
}
