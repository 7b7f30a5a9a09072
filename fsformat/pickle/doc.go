// Package pickle is a general-purpose Python pickle codec: a decoder for
// protocols 0–5 and an encoder for protocols 0–4 that emits exactly the bytes
// CPython's C pickler (_pickle.c) emits for the same value.
//
// It serves the ZEO wire protocol (messages are protocol-3 pickles of plain
// values), Data.fs.index (a sequence of protocol-3 pickles) and any tool that
// needs to look inside a data record. The fast reference scanner used by pack
// and fsrefs is a separate, allocation-free machine in fsformat/refs; this
// package builds values.
//
// # Values
//
// Decoded values have these Go types, and the encoder accepts them:
//
//	None            nil
//	bool            bool
//	int             int64, or *big.Int when outside the int64 range
//	float           float64
//	str             string (UTF-8; surrogates in their "surrogatepass" form,
//	                other invalid UTF-8 is refused as Python refuses it)
//	bytes           []byte; Python 2 str opcodes (STRING, BINSTRING,
//	                SHORT_BINSTRING) and zodbpickle's binary decode to []byte too
//	bytearray       ByteArray
//	tuple           Tuple
//	list            List
//	dict            Dict (ordered key/value pairs: keys may be tuples or bytes)
//	set, frozenset  Set (Frozen tells which)
//	global          Global{Module, Name}, only when Decoder.FindGlobal admits it
//	REDUCE, NEWOBJ, *Object: the callable or class, its arguments, and the
//	NEWOBJ_EX, OBJ, state BUILD gave it
//	INST
//	persistent id   PersistentRef{ID}
//
// The encoder also accepts int, int8…int32, uint…uint64, float32, []any (a
// list) and Object by value.
//
// Tuple and List are distinct because Python peers distinguish them (a ZEO
// message id that is a list is unhashable). List and Dict are slices, not
// pointers, which is what callers want; while decoding, mutable containers
// live in private boxes so that APPENDS/SETITEMS/BUILD after a memo PUT are
// seen through every memo GET, and the boxes are replaced by the final slices
// when a pickle's STOP is reached. A value that contains itself (possible in
// Python) is therefore refused with an error.
//
// # Safety
//
// Decoding never constructs anything: a GLOBAL is looked up through
// Decoder.FindGlobal, which by default refuses every global with a
// *GlobalError naming module.name (the ZEO server must never build arbitrary
// classes from the wire). Every length field is checked against the remaining
// input before anything is allocated, so memory stays proportional to the
// input, and malformed input yields an error, never a panic (FuzzDecode).
//
// # Identity and the memo
//
// CPython memoizes by object identity. The encoder takes a Go value's
// identity from its memory: the same non-empty slice (same data pointer and
// length) or the same string data is the same Python object, and pointers
// (*Set, *Object) are themselves; an empty list or dict has no identity (Go's
// empty slices share one address). Values CPython keeps as singletons are
// identified by value: str of length 0 or 1 with a code point below 256,
// bytes of length 0 or 1, classes and functions (Global), and a module's name
// in STACK_GLOBAL. So a value decoded, received or read from a file encodes
// exactly as CPython encodes the object it came from (checked against 1000
// random values and 300 hand-made ones, protocols 0–4, testdata/
// gen_vectors.py). Fast mode (Encoder.Fast, used by ZODB for Data.fs.index and
// by ZEO for messages) writes no memo at all.
//
// # API
//
// Decode: NewDecoder(data) then Decode() for each pickle (Unmarshal for one);
// set FindGlobal (AllowGlobals, AnyGlobal) to admit globals. Encode:
// Encoder{Protocol: 3, Fast: true}.Append(buf, v) appends to a reusable
// buffer and allocates nothing in fast mode; Marshal and MarshalFast are the
// one-shot forms. Equal compares values as Python's == does.
package pickle
