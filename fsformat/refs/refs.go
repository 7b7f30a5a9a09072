// Package refs reads the two pickles of a ZODB data record without executing
// them: the class of the object ("module.class", as ZODB's
// get_pickle_metadata computes it) and every persistent reference in the
// record, classified as strong or weak, local or cross-database.
//
// Why a hand-written opcode scanner instead of a general pickle decoder (such
// as og-rek): reference extraction runs over every record of multi-GB files,
// and a general decoder builds Go values (maps, slices, big ints, strings) for
// the whole object state, allocating per opcode. The Scanner here follows
// zodbpickle's noload semantics (references.md §6): it keeps only what a
// persistent id can be made of — short tuples and lists, strings, GLOBALs —
// and turns every other object into an opaque placeholder. All its stacks,
// the memo and the decoded-text arena are reused across records, so scanning
// a typical record allocates nothing.
//
// The class pickle and the state pickle share one memo (the state pickle may
// BINGET an entry the class pickle PUT), so a record is always scanned from
// its first byte. Results are appended to caller-provided slices; byte slices
// inside results point into the record or into the Scanner and stay valid
// until the next call on the same Scanner.
//
// This package does not import fsformat (fsformat's pack GC uses it), so oids
// are plain uint64 values here (big-endian interpretation of the 8 bytes).
package refs

import (
	"encoding/binary"
	"fmt"

	"github.com/zodbctl/zodbctl/fsformat/pickle/opcode"
)

// Kind says whether a reference keeps its target alive.
type Kind uint8

const (
	// Strong references: (oid, klass), a bare oid, ['m', (db, oid, klass)],
	// ['n', (db, oid)] and the legacy (oid, (module, name)).
	Strong Kind = iota + 1
	// Weak references: ['w', (oid,)], ['w', (oid, db)] and the legacy [oid].
	Weak
)

func (k Kind) String() string {
	switch k {
	case Strong:
		return "strong"
	case Weak:
		return "weak"
	}
	return "unknown"
}

// Form is the Python shape of a persistent id (references.md §5).
type Form uint8

const (
	FormOidClass     Form = iota + 1 // (oid, klass); klass None/GLOBAL or a legacy (module, name) tuple
	FormOid                          // oid (target class defines __getnewargs__)
	FormWeak                         // ['w', (oid,)]
	FormWeakCross                    // ['w', (oid, db)]
	FormCross                        // ['m', (db, oid, klass)]
	FormCrossNoClass                 // ['n', (db, oid)]
	FormLegacyWeak                   // [oid]
	FormUnknownList                  // a list that is none of the above (unknown kind); ZODB cannot load it
)

var formNames = [...]string{"", "(oid, klass)", "oid", "['w', (oid,)]", "['w', (oid, db)]",
	"['m', (db, oid, klass)]", "['n', (db, oid)]", "[oid]", "unknown list"}

func (f Form) String() string {
	if int(f) < len(formNames) {
		return formNames[f]
	}
	return "invalid"
}

// Ref is one persistent reference found in a record, in pickle order.
// Duplicates are kept, as in ZODB.
type Ref struct {
	Oid  uint64
	Kind Kind
	Form Form
	// DB is the target database name for cross-database references
	// (FormWeakCross, FormCross, FormCrossNoClass); nil for local ones.
	DB []byte
	// Module and Name give the target's class when the reference carries
	// one: a GLOBAL (which ZODB's noload sees as None) or a legacy
	// (module, name) string tuple (LegacyClass set; ZODB shows those).
	Module, Name []byte
	LegacyClass  bool
	// Offset is the position of the (BIN)PERSID opcode in the record.
	Offset int
}

// Cross reports whether the reference points into another database.
func (r *Ref) Cross() bool { return r.DB != nil }

// CountsForReferencesf reports whether ZODB's referencesf and get_refs
// (pack GC, fsrefs, fsoids, netspace) see this reference: only the tuple and
// bare-oid forms; every list form is ignored by them.
func (r *Ref) CountsForReferencesf() bool { return r.Form == FormOidClass || r.Form == FormOid }

// Error reports malformed pickle data. Callers add the oid and record
// offset.
type Error struct {
	Offset int    // offset of the opcode in the record
	Op     byte   // the opcode byte
	Msg    string // what is wrong
}

func (e *Error) Error() string {
	if name := opcode.Name(e.Op); name != "" {
		return fmt.Sprintf("pickle opcode %s (0x%02x) at offset %d: %s", name, e.Op, e.Offset, e.Msg)
	}
	return fmt.Sprintf("pickle opcode 0x%02x at offset %d: %s", e.Op, e.Offset, e.Msg)
}

// value kinds on the machine's stack. vUnset (the zero value) marks an empty
// memo slot.
type vkind uint8

const (
	vUnset  vkind = iota
	vNone         // None and every object noload does not build
	vScalar       // int, float, bool: contents never needed
	vString       // any string-family opcode: bytes or text (UTF-8)
	vGlobal       // GLOBAL / STACK_GLOBAL: module and name
	vTuple        // index into Scanner.tuples
	vList         // index into Scanner.lists
	vDict         // dicts and sets: contents never needed
)

// inArena marks a string kept in the arena rather than in the record.
const inArena = 1

// value is one item of the machine's stack or memo, 12 bytes: strings are
// spans of the record or the arena; tuples, lists and globals are indexes
// into side tables.
type value struct {
	kind  vkind
	flags uint8
	idx   int32 // string: offset; tuple, list, global: index
	n     int32 // string: length
}

// globalObj is a GLOBAL's module and name, two string values.
type globalObj struct{ module, name value }

// Only the first elements of tuples and lists matter for persistent ids,
// (db, oid, klass) being the longest; the rest is counted, not kept.
const (
	tupleKeep = 3
	listKeep  = 2
)

type tupleObj struct {
	n     int
	items [tupleKeep]value
}

type listObj struct {
	n     int
	items [listKeep]value
}

// maxDirectMemo bounds the memo slice; larger keys (never written by
// Python, which numbers memo entries from 0) go to a map.
const maxDirectMemo = 1 << 20

// Scanner extracts classes and references from data records. The zero value
// is ready to use; reuse one Scanner for many records. A Scanner is not safe
// for concurrent use.
type Scanner struct {
	data    []byte
	stack   []value
	marks   []int
	memo    []value
	bigMemo map[int64]value
	memoLen int // number of memo entries (for MEMOIZE)
	tuples  []tupleObj
	lists   []listObj
	globals []globalObj
	arena   []byte

	// per-pickle results
	pickle      int   // 0: class pickle, 1: state pickle
	result      value // value left by the class pickle's STOP
	firstGlobal value // first GLOBAL/INST/STACK_GLOBAL in the class pickle
	persidInCls bool  // a persistent id appeared in the class pickle
	persidFirst bool  // … before any GLOBAL
}

func (s *Scanner) reset(data []byte) {
	s.data = data
	s.stack = s.stack[:0]
	s.marks = s.marks[:0]
	clear(s.memo)
	s.memo = s.memo[:0]
	if s.bigMemo != nil {
		clear(s.bigMemo)
	}
	s.memoLen = 0
	s.tuples = s.tuples[:0]
	s.lists = s.lists[:0]
	s.globals = s.globals[:0]
	s.arena = s.arena[:0]
	s.pickle = 0
	s.result = value{}
	s.firstGlobal = value{}
	s.persidInCls = false
	s.persidFirst = false
}

// Scan runs both pickles of a data record and appends every persistent
// reference, in stream order, to refs. It fails on malformed or truncated
// data (including a record that lacks the state pickle).
func (s *Scanner) Scan(data []byte, refs []Ref) ([]Ref, error) {
	s.reset(data)
	pos, refs, err := s.run(0, refs, true)
	if err != nil {
		return refs, err
	}
	s.pickle = 1
	_, refs, err = s.run(pos, refs, true)
	return refs, err
}

// bytesOf returns the bytes of a string value, or the module of a global.
func (s *Scanner) bytesOf(v value) []byte {
	if v.kind == vGlobal {
		v = s.globals[v.idx].module
	}
	if v.flags&inArena != 0 {
		return s.arena[v.idx : v.idx+v.n : v.idx+v.n]
	}
	return s.data[v.idx : v.idx+v.n : v.idx+v.n]
}

// nameOf returns the name of a global value.
func (s *Scanner) nameOf(v value) []byte { return s.bytesOf(s.globals[v.idx].name) }

func (s *Scanner) newGlobal(module, name value) value {
	s.globals = append(s.globals, globalObj{module, name})
	return value{kind: vGlobal, idx: int32(len(s.globals) - 1)}
}

func (s *Scanner) fail(pos int, msg string) error {
	var op byte
	if pos < len(s.data) {
		op = s.data[pos]
	}
	return &Error{Offset: pos, Op: op, Msg: msg}
}

func (s *Scanner) push(v value) { s.stack = append(s.stack, v) }

// markBase is the stack index of the innermost mark, or 0.
func (s *Scanner) markBase() int {
	if len(s.marks) == 0 {
		return 0
	}
	return s.marks[len(s.marks)-1]
}

// pop removes the top of the stack; ok is false when the stack (above the
// innermost mark) is empty.
func (s *Scanner) pop() (value, bool) {
	if len(s.stack) <= s.markBase() {
		return value{}, false
	}
	v := s.stack[len(s.stack)-1]
	s.stack = s.stack[:len(s.stack)-1]
	return v, true
}

// popMark removes the innermost mark and returns the stack index where the
// items above it start.
func (s *Scanner) popMark() (int, bool) {
	if len(s.marks) == 0 {
		return 0, false
	}
	base := s.marks[len(s.marks)-1]
	s.marks = s.marks[:len(s.marks)-1]
	return base, true
}

func (s *Scanner) newTuple(items []value) value {
	var t tupleObj
	t.n = len(items)
	copy(t.items[:], items)
	s.tuples = append(s.tuples, t)
	return value{kind: vTuple, idx: int32(len(s.tuples) - 1)}
}

func (s *Scanner) newList(items []value) value {
	var l listObj
	l.n = len(items)
	copy(l.items[:], items)
	s.lists = append(s.lists, l)
	return value{kind: vList, idx: int32(len(s.lists) - 1)}
}

// appendTo performs APPEND/APPENDS as noload does: lists get the items, any
// other target discards them.
func (s *Scanner) appendTo(target value, items []value) {
	if target.kind != vList {
		return
	}
	l := &s.lists[target.idx]
	for _, it := range items {
		if l.n < listKeep {
			l.items[l.n] = it
		}
		l.n++
	}
}

func (s *Scanner) appendOne(target, v value) {
	if target.kind != vList {
		return
	}
	l := &s.lists[target.idx]
	if l.n < listKeep {
		l.items[l.n] = v
	}
	l.n++
}

// memoPut stores v under key. Python numbers memo entries 0, 1, 2, … so
// they live in a slice; a key far past its end (forged data) goes to a map
// instead, so no length field can make the Scanner allocate a large slice.
func (s *Scanner) memoPut(key int64, v value) {
	if key >= 0 && key < int64(len(s.memo))+memoSlack {
		k := int(key)
		for k >= len(s.memo) {
			s.memo = append(s.memo, value{})
		}
		if s.memo[k].kind == vUnset {
			if _, dup := s.bigMemo[key]; dup {
				delete(s.bigMemo, key)
			} else {
				s.memoLen++
			}
		}
		s.memo[k] = v
		return
	}
	if s.bigMemo == nil {
		s.bigMemo = make(map[int64]value)
	}
	if _, ok := s.bigMemo[key]; !ok {
		s.memoLen++
	}
	s.bigMemo[key] = v
}

func (s *Scanner) memoGet(key int64) (value, bool) {
	if key >= 0 && key < int64(len(s.memo)) {
		if v := s.memo[key]; v.kind != vUnset {
			return v, true
		}
	}
	v, ok := s.bigMemo[key]
	return v, ok
}

// oidOf converts a string value holding exactly 8 bytes into an oid.
func (s *Scanner) oidOf(v value) (uint64, bool) {
	if v.kind != vString || v.n != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(s.bytesOf(v)), true
}

// classify turns a persistent id into a Ref (references.md §5).
func (s *Scanner) classify(pid value, pos int) (Ref, error) {
	r := Ref{Offset: pos}
	switch pid.kind {
	case vString:
		oid, ok := s.oidOf(pid)
		if !ok {
			return r, s.fail(pos, fmt.Sprintf("persistent id is a %d-byte string, not an 8-byte oid", pid.n))
		}
		r.Oid, r.Kind, r.Form = oid, Strong, FormOid
		return r, nil
	case vTuple:
		t := &s.tuples[pid.idx]
		if t.n == 0 {
			return r, s.fail(pos, "persistent id is an empty tuple")
		}
		oid, ok := s.oidOf(t.items[0])
		if !ok {
			return r, s.fail(pos, "persistent id tuple does not start with an 8-byte oid")
		}
		r.Oid, r.Kind, r.Form = oid, Strong, FormOidClass
		if t.n >= 2 {
			s.setClass(&r, t.items[1])
		}
		return r, nil
	case vList:
		l := &s.lists[pid.idx]
		if l.n == 1 {
			oid, ok := s.oidOf(l.items[0])
			if !ok {
				return r, s.fail(pos, "one-item persistent id list does not hold an 8-byte oid")
			}
			r.Oid, r.Kind, r.Form = oid, Weak, FormLegacyWeak
			return r, nil
		}
		r.Form = FormUnknownList
		if l.n != 2 || l.items[0].kind != vString || l.items[0].n != 1 || l.items[1].kind != vTuple {
			return r, nil
		}
		args := &s.tuples[l.items[1].idx]
		switch s.bytesOf(l.items[0])[0] {
		case 'w':
			oid, ok := s.oidOf(args.items[0])
			if args.n < 1 || !ok {
				return r, s.fail(pos, "weak reference without an 8-byte oid")
			}
			r.Oid, r.Kind, r.Form = oid, Weak, FormWeak
			if args.n >= 2 {
				if args.items[1].kind != vString {
					return r, s.fail(pos, "weak cross-database reference: database name is not a string")
				}
				r.Form, r.DB = FormWeakCross, s.bytesOf(args.items[1])
			}
		case 'm', 'n':
			if args.n < 2 || args.items[0].kind != vString {
				return r, s.fail(pos, "cross-database reference without a database name")
			}
			oid, ok := s.oidOf(args.items[1])
			if !ok {
				return r, s.fail(pos, "cross-database reference without an 8-byte oid")
			}
			r.Oid, r.Kind, r.DB = oid, Strong, s.bytesOf(args.items[0])
			r.Form = FormCrossNoClass
			if s.bytesOf(l.items[0])[0] == 'm' {
				r.Form = FormCross
				if args.n >= 3 {
					s.setClass(&r, args.items[2])
				}
			}
		}
		return r, nil
	}
	return r, s.fail(pos, "persistent id is not an oid, a tuple or a list")
}

// setClass records the class carried by a reference: a GLOBAL or a legacy
// (module, name) tuple.
func (s *Scanner) setClass(r *Ref, k value) {
	switch k.kind {
	case vGlobal:
		r.Module, r.Name = s.bytesOf(k), s.nameOf(k)
	case vTuple:
		t := &s.tuples[k.idx]
		if t.n == 2 && t.items[0].kind == vString && t.items[1].kind == vString {
			r.Module, r.Name = s.bytesOf(t.items[0]), s.bytesOf(t.items[1])
			r.LegacyClass = true
		}
	}
}
