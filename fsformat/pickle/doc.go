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
// CPython memoizes by object identity. Go values have no identity except
// pointers, so the encoder treats every str, bytes and tuple as a distinct
// object — except the ones CPython itself keeps as singletons: str of length
// 0 or 1 with a code point below 256, bytes of length 0 or 1. That makes the
// output identical to CPython's for values that were built at run time (decoded,
// received, read from a file), which is what zodbctl encodes. Fast mode
// (Encoder.Fast, used by ZODB for Data.fs.index and by ZEO for messages) writes
// no memo at all.
package pickle
