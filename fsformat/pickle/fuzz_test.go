package pickle

import (
	"encoding/hex"
	"testing"
)

// FuzzDecode: no input panics or hangs; whatever decodes re-encodes, and the
// re-encoding decodes to an equal value.
func FuzzDecode(f *testing.F) {
	for _, v := range loadVectors(f) {
		if len(v.Hex) < 4000 {
			b, _ := hex.DecodeString(v.Hex)
			f.Add(b)
		}
	}
	for _, s := range []string{"(I1\np0\ng0\ntp1\n.", "S'a\\x41'\n.", "Vh\\u00e9\n.", "]q\x00h\x00a."} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(data)
		d.FindGlobal = AnyGlobal
		for i := 0; i < 3; i++ {
			v, err := d.Decode()
			if err != nil {
				return
			}
			if leaked := findBox(v, 0); leaked != "" {
				t.Fatalf("decoded value holds an internal box: %s", leaked)
			}
			for _, proto := range []int{0, 1, 2, 3, 4, -3} {
				var enc []byte
				var err error
				if proto < 0 { // fast mode, as ZEO and Data.fs.index use it
					enc, err = MarshalFast(v, -proto)
				} else {
					enc, err = Marshal(v, proto)
				}
				if err != nil {
					continue // e.g. NEWOBJ at protocol 0, bytearray
				}
				if proto >= 0 && proto < 3 && hasRenamedGlobal(v, 0) {
					// CPython's fix_imports renames these too, and a renamed
					// global may be another callable (__builtin__.set read
					// back as builtins.set is called at REDUCE).
					continue
				}
				d2 := NewDecoder(enc)
				d2.FindGlobal = AnyGlobal
				v2, err := d2.Decode()
				if err != nil {
					t.Fatalf("re-encoded %x (protocol %d) does not decode: %v", enc, proto, err)
				}
				if !Equal(v, v2) && !hasNaN(v) {
					t.Fatalf("protocol %d round trip: %#v became %#v", proto, v, v2)
				}
			}
		}
	})
}

func hasNaN(v any) bool {
	switch x := v.(type) {
	case float64:
		return x != x
	case Tuple:
		for _, e := range x {
			if hasNaN(e) {
				return true
			}
		}
	case List:
		for _, e := range x {
			if hasNaN(e) {
				return true
			}
		}
	case Dict:
		for _, kv := range x {
			if hasNaN(kv.Key) || hasNaN(kv.Value) {
				return true
			}
		}
	case *Set:
		for _, e := range x.Items {
			if hasNaN(e) {
				return true
			}
		}
	case *Object, PersistentRef:
		return true // too many shapes to bother
	}
	return false
}

// findBox reports where a decoding box survived in v ("" if nowhere).
func findBox(v any, depth int) string {
	if b, ok := v.(*box); ok {
		return b.typeName()
	}
	if depth > 200 {
		return ""
	}
	for _, it := range children(v) {
		if s := findBox(it, depth+1); s != "" {
			return s
		}
	}
	return ""
}

// hasRenamedGlobal reports whether v holds a global that does not survive a
// protocol 0–2 round trip through Python 2 names (see py2Global).
func hasRenamedGlobal(v any, depth int) bool {
	if g, ok := v.(Global); ok {
		return py3Global(py2Global(g)) != g
	}
	if depth > 200 {
		return false
	}
	for _, it := range children(v) {
		if hasRenamedGlobal(it, depth+1) {
			return true
		}
	}
	return false
}

// children lists the values a decoded container holds.
func children(v any) []any {
	switch x := v.(type) {
	case Tuple:
		return x
	case List:
		return x
	case Dict:
		items := make([]any, 0, 2*len(x))
		for _, kv := range x {
			items = append(items, kv.Key, kv.Value)
		}
		return items
	case *Set:
		return x.Items
	case PersistentRef:
		return []any{x.ID}
	case *Object:
		return append([]any{x.Callable, Tuple(x.Args), Dict(x.Kwargs), x.State, Dict(x.DictItems)}, x.ListItems...)
	}
	return nil
}
