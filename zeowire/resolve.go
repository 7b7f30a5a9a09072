package zeowire

import (
	"context"
	"errors"
	"math/big"

	"github.com/zodbctl/zodbctl/fsformat/pickle"
)

// Native conflict resolution for BTrees.Length.Length, the one common
// resolver that needs no Python: a Length is a counter whose state is an
// int, resolved as committed + (new - old), exactly as its
// _p_resolveConflict does. It applies only when the server resolves
// conflicts itself (ClientConflictResolution false); every other class
// ends in ConflictError there.

const lengthClass = "BTrees.Length.Length"

var errNoResolution = errors.New("no native resolver")

// resolveLength returns the resolved record for a conflicting store of a
// Length, or errNoResolution.
func resolveLength(ctx context.Context, st Storage, ce *ConflictError, data []byte) ([]byte, error) {
	if recordClassName(data) != lengthClass {
		return nil, errNoResolution
	}
	classLen, newValue, ok := lengthState(data)
	if !ok {
		return nil, errNoResolution
	}
	oldData, err := st.LoadSerial(ctx, ce.Oid, ce.Serial)
	if err != nil {
		return nil, errNoResolution
	}
	committedData, err := st.LoadSerial(ctx, ce.Oid, ce.Committed)
	if err != nil {
		return nil, errNoResolution
	}
	_, oldValue, ok1 := lengthState(oldData)
	_, committedValue, ok2 := lengthState(committedData)
	if !ok1 || !ok2 {
		return nil, errNoResolution
	}
	resolved := new(big.Int).Sub(newValue, oldValue)
	resolved.Add(resolved, committedValue)
	var state any = resolved
	if resolved.IsInt64() {
		state = resolved.Int64()
	}
	// The reference re-pickles the class and then the state with one
	// pickler; for the plain GLOBAL class pickle that is the client's own
	// class pickle, and ints are not memoized.
	out := append([]byte(nil), data[:classLen]...)
	return pickle.NewEncoder(3).Append(out, state)
}

// lengthState splits a Length record: the class pickle's length and the
// int state.
func lengthState(data []byte) (classLen int, value *big.Int, ok bool) {
	d := pickle.NewDecoder(data)
	d.FindGlobal = pickle.AllowGlobals(lengthClass)
	class, err := d.Decode()
	if err != nil {
		return 0, nil, false
	}
	if g, isGlobal := class.(pickle.Global); !isGlobal || g.String() != lengthClass {
		return 0, nil, false
	}
	classLen = d.Offset()
	state, err := d.Decode()
	if err != nil || d.Offset() != len(data) {
		return 0, nil, false
	}
	switch v := state.(type) {
	case int64:
		return classLen, big.NewInt(v), true
	case *big.Int:
		return classLen, v, true
	}
	return 0, nil, false
}
