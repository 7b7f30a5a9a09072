package zeowire

import (
	"encoding/binary"
	"fmt"
	"math/big"

	"github.com/zodbctl/zodbctl/fsformat/pickle"
	"github.com/zodbctl/zodbctl/fsformat/pyrepr"
)

// The container types are those of fsformat/pickle, so that pickle-mode
// messages need no conversion.
type (
	// Tuple is a Python tuple on the wire.
	Tuple = pickle.Tuple
	// List is a Python list on the wire.
	List = pickle.List
	// Dict is a Python dict on the wire, with its insertion order kept.
	Dict = pickle.Dict
	// KV is one entry of a Dict.
	KV = pickle.KV
)

// Oid is a ZODB object id. On the wire it is 8 big-endian bytes.
type Oid uint64

// Tid is a ZODB transaction id (also a serial). On the wire it is 8
// big-endian bytes; it encodes a UTC time (see TidFromTime).
type Tid uint64

// Z64 is the zero tid, "no transaction yet".
const Z64 Tid = 0

// MaxTid is the largest tid Python clients ask loadBefore with.
const MaxTid Tid = 0x7fffffffffffffff

// String returns the 16 lowercase hex digits of the oid.
func (o Oid) String() string { return fmt.Sprintf("%016x", uint64(o)) }

// String returns the 16 lowercase hex digits of the tid.
func (t Tid) String() string { return fmt.Sprintf("%016x", uint64(t)) }

// Bytes returns the 8-byte wire form.
func (o Oid) Bytes() []byte { return binary.BigEndian.AppendUint64(nil, uint64(o)) }

// Bytes returns the 8-byte wire form.
func (t Tid) Bytes() []byte { return binary.BigEndian.AppendUint64(nil, uint64(t)) }

// ArgError reports an argument of the wrong type or value; it becomes a
// builtins.TypeError reply.
type ArgError struct {
	Method string
	Msg    string
}

func (e *ArgError) Error() string { return e.Method + ": " + e.Msg }

func asBytes8(v any) (uint64, bool) {
	b, ok := v.([]byte)
	if !ok || len(b) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}

// AsOid converts a wire value (8 bytes) into an Oid.
func AsOid(v any) (Oid, error) {
	u, ok := asBytes8(v)
	if !ok {
		return 0, fmt.Errorf("oid must be 8 bytes, got %s", describe(v))
	}
	return Oid(u), nil
}

// AsTid converts a wire value (8 bytes) into a Tid.
func AsTid(v any) (Tid, error) {
	u, ok := asBytes8(v)
	if !ok {
		return 0, fmt.Errorf("tid must be 8 bytes, got %s", describe(v))
	}
	return Tid(u), nil
}

// AsInt converts a wire int (or bool) into an int64.
func AsInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case *big.Int:
		if x.IsInt64() {
			return x.Int64(), true
		}
	}
	return 0, false
}

// Truthy reports Python truthiness of a wire value.
func Truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case int64:
		return x != 0
	case *big.Int:
		return x.Sign() != 0
	case float64:
		return x != 0
	case string:
		return x != ""
	case []byte:
		return len(x) != 0
	case Tuple:
		return len(x) != 0
	case List:
		return len(x) != 0
	case Dict:
		return len(x) != 0
	}
	return true
}

// Equal compares two wire values structurally (tuple and list are distinct).
func Equal(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case int64:
		switch y := b.(type) {
		case int64:
			return x == y
		case *big.Int:
			return y.IsInt64() && y.Int64() == x
		}
		return false
	case *big.Int:
		switch y := b.(type) {
		case int64:
			return x.IsInt64() && x.Int64() == y
		case *big.Int:
			return x.Cmp(y) == 0
		}
		return false
	case float64:
		y, ok := b.(float64)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case []byte:
		y, ok := b.([]byte)
		return ok && string(x) == string(y)
	case Tuple:
		y, ok := b.(Tuple)
		return ok && equalSlices(x, y)
	case List:
		y, ok := b.(List)
		return ok && equalSlices(x, y)
	case Dict:
		y, ok := b.(Dict)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !Equal(x[i].Key, y[i].Key) || !Equal(x[i].Value, y[i].Value) {
				return false
			}
		}
		return true
	}
	return false
}

func equalSlices(x, y []any) bool {
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if !Equal(x[i], y[i]) {
			return false
		}
	}
	return true
}

// describe names the Python type of a wire value for error messages: as
// pickle.TypeName, with None for nil and the length of bytes.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case []byte:
		return fmt.Sprintf("bytes of length %d", len(x))
	}
	return pickle.TypeName(v)
}

// Repr renders a wire value as Python's repr does (for messages and logs;
// long bytes are abbreviated).
func Repr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		return fmt.Sprint(x)
	case *big.Int:
		return x.String()
	case float64:
		return pyrepr.Float(x)
	case string:
		return pyrepr.UnicodeStr(x)
	case []byte:
		if len(x) > 80 {
			return pyrepr.Bytes(x[:80]) + fmt.Sprintf("...<%d bytes>", len(x))
		}
		return pyrepr.Bytes(x)
	case Tuple:
		s := "("
		for i, e := range x {
			if i > 0 {
				s += ", "
			}
			s += Repr(e)
		}
		if len(x) == 1 {
			s += ","
		}
		return s + ")"
	case List:
		s := "["
		for i, e := range x {
			if i > 0 {
				s += ", "
			}
			s += Repr(e)
		}
		return s + "]"
	case Dict:
		s := "{"
		for i, kv := range x {
			if i > 0 {
				s += ", "
			}
			s += Repr(kv.Key) + ": " + Repr(kv.Value)
		}
		return s + "}"
	}
	return fmt.Sprintf("%#v", v)
}
