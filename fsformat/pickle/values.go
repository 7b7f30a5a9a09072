package pickle

import (
	"fmt"
	"math/big"
)

// Tuple is a Python tuple.
type Tuple []any

// List is a Python list.
type List []any

// Dict is a Python dict: key/value pairs in insertion order.
type Dict []KV

// KV is one entry of a Dict.
type KV struct {
	Key   any
	Value any
}

// Get returns the value stored under key (compared with Equal).
func (d Dict) Get(key any) (any, bool) {
	for _, kv := range d {
		if Equal(kv.Key, key) {
			return kv.Value, true
		}
	}
	return nil, false
}

// ByteArray is a Python bytearray, as protocol 5's BYTEARRAY8 carries it
// (decoded only; the encoder refuses it).
type ByteArray []byte

// Set is a Python set or frozenset.
type Set struct {
	Items  []any
	Frozen bool

	index map[dictKey]struct{} // decoding large sets: items seen
}

// Global is a reference to module.name (a class or function), produced by
// GLOBAL / STACK_GLOBAL when the decoder's FindGlobal admits it.
type Global struct {
	Module string
	Name   string
}

func (g Global) String() string { return g.Module + "." + g.Name }

// Object is an object a pickle asks to build: REDUCE (Callable(*Args)),
// NEWOBJ / NEWOBJ_EX / OBJ (Callable.__new__(Callable, *Args, **Kwargs), New
// is true), INST (Callable(*Args)). BUILD sets State; APPEND(S) and SETITEM(S)
// applied to the object collect in ListItems and DictItems. Nothing is
// constructed: callers interpret the description (e.g. an exception the ZEO
// server sends, copy_reg._reconstructor).
type Object struct {
	Callable  any // usually a Global
	Args      Tuple
	Kwargs    Dict // NEWOBJ_EX only
	New       bool
	State     any // nil if no BUILD (a BUILD of None is also nil)
	ListItems []any
	DictItems Dict
}

// PersistentRef is a persistent id (PERSID / BINPERSID): ZODB stores
// references to other objects this way, e.g. (oid, class) tuples or
// ['w', (oid,)] lists.
type PersistentRef struct {
	ID any
}

// GlobalError reports a global the decoder's policy refused.
type GlobalError struct {
	Module string
	Name   string
	Err    error // the policy's reason, may be nil
}

func (e *GlobalError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("global %s.%s not allowed: %v", e.Module, e.Name, e.Err)
	}
	return fmt.Sprintf("global %s.%s not allowed", e.Module, e.Name)
}

func (e *GlobalError) Unwrap() error { return e.Err }

// Error is a malformed or unsupported pickle, with the offset of the opcode.
type Error struct {
	Offset int   // offset of the opcode in the input
	Op     byte  // the opcode
	Err    error // what is wrong
}

func (e *Error) Error() string {
	return fmt.Sprintf("pickle: at offset %d (opcode %s): %v", e.Offset, opName(e.Op), e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Equal compares two values structurally, as Python's == would for the
// types of this package (tuple and list differ; an int equals the bool and
// float of the same value, as in Python).
func Equal(a, b any) bool {
	return equalDepth(a, b, 0)
}

func equalDepth(a, b any, depth int) bool {
	if depth > maxDepth {
		return false
	}
	// Fast paths for the common same-type comparisons.
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case []byte:
		y, ok := b.([]byte)
		return ok && string(x) == string(y)
	case int64:
		if y, ok := b.(int64); ok {
			return x == y
		}
	case bool:
		if y, ok := b.(bool); ok {
			return x == y
		}
	}
	if na, ok := numeric(a); ok {
		nb, ok := numeric(b)
		return ok && na.Cmp(nb) == 0
	}
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case []byte:
		y, ok := b.([]byte)
		return ok && string(x) == string(y)
	case ByteArray:
		y, ok := b.(ByteArray)
		return ok && string(x) == string(y)
	case Tuple:
		y, ok := b.(Tuple)
		return ok && equalSlices(x, y, depth)
	case List:
		y, ok := b.(List)
		return ok && equalSlices(x, y, depth)
	case Dict:
		y, ok := b.(Dict)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalDepth(x[i].Key, y[i].Key, depth+1) || !equalDepth(x[i].Value, y[i].Value, depth+1) {
				return false
			}
		}
		return true
	case *Set:
		y, ok := b.(*Set)
		return ok && x.Frozen == y.Frozen && sameItems(x.Items, y.Items, depth)
	case Global:
		y, ok := b.(Global)
		return ok && x == y
	case PersistentRef:
		y, ok := b.(PersistentRef)
		return ok && equalDepth(x.ID, y.ID, depth+1)
	case *Object:
		y, ok := b.(*Object)
		if !ok {
			return false
		}
		return x.New == y.New && equalDepth(x.Callable, y.Callable, depth+1) &&
			equalSlices(x.Args, y.Args, depth) && equalDepth(x.Kwargs, y.Kwargs, depth+1) &&
			equalDepth(x.State, y.State, depth+1) && equalSlices(x.ListItems, y.ListItems, depth) &&
			equalDepth(x.DictItems, y.DictItems, depth+1)
	}
	return false
}

// sameItems compares sets: the same items in any order.
func sameItems(x, y []any, depth int) bool {
	if len(x) != len(y) {
		return false
	}
	used := make([]bool, len(y))
next:
	for _, a := range x {
		for j, b := range y {
			if !used[j] && equalDepth(a, b, depth+1) {
				used[j] = true
				continue next
			}
		}
		return false
	}
	return true
}

func equalSlices(x, y []any, depth int) bool {
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if !equalDepth(x[i], y[i], depth+1) {
			return false
		}
	}
	return true
}

// numeric converts bool, int64, *big.Int and integral float64 to a big.Float
// for comparison; ok is false for other types and for NaN.
func numeric(v any) (*big.Float, bool) {
	switch x := v.(type) {
	case bool:
		if x {
			return big.NewFloat(1), true
		}
		return big.NewFloat(0), true
	case int64:
		return new(big.Float).SetInt64(x), true
	case *big.Int:
		return new(big.Float).SetInt(x), true
	case float64:
		if x != x {
			return nil, false
		}
		return big.NewFloat(x), true
	}
	return nil, false
}
