package pickle

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// A box holds a mutable container while a pickle is decoded: APPENDS,
// SETITEMS and BUILD may reach it after a memo PUT, so every reference to it
// (stack, memo, enclosing containers) must share it. At STOP the boxes are
// replaced by their final values (finalize).
type box struct {
	kind   uint8
	status uint8 // building, finalizing, done
	items  []any // list, tuple and persistent-id items
	dict   Dict
	index  map[dictKey]int // dict key → position, for large dicts
	obj    *Object
	set    *Set
	state  any // BUILD state of an object, resolved into obj.State
	final  any
}

const (
	boxList uint8 = iota
	boxTuple
	boxDict
	boxObject
	boxPersistent
	boxSet // a set, or a frozenset holding boxes
)

const (
	statusBuilding uint8 = iota
	statusFinalizing
	statusDone
)

func (b *box) typeName() string {
	switch b.kind {
	case boxList:
		return "list"
	case boxTuple:
		return "tuple"
	case boxDict:
		return "dict"
	case boxObject:
		return "object"
	case boxSet:
		if b.set.Frozen {
			return "frozenset"
		}
		return "set"
	}
	return "persistent id"
}

func (d *Decoder) newBox(kind uint8) *box {
	return &box{kind: kind}
}

// errEarlier: a pickle after the first one (same memo) modifies a container
// that an earlier Decode already returned as a final slice.
var errEarlier = errors.New("modifying a container of an earlier pickle is not supported")

// makeTuple copies items into a Tuple, or into a tuple box when an item is
// still a box (so that the tuple sees later mutations of that item).
func (d *Decoder) makeTuple(items []any) any {
	if len(items) == 0 {
		return emptyTuple
	}
	t := append(make(Tuple, 0, len(items)), items...)
	for _, it := range items {
		if _, ok := it.(*box); ok {
			b := d.newBox(boxTuple)
			b.items = t
			return b
		}
	}
	return t
}

func (d *Decoder) newObject(callable, args, kwargs any, isNew bool) *box {
	b := d.newBox(boxObject)
	b.obj = &Object{New: isNew}
	b.items = []any{callable, args, kwargs}
	return b
}

func appendTo(target, v any) error {
	b, ok := target.(*box)
	if !ok || (b.kind != boxList && b.kind != boxObject) {
		return fmt.Errorf("APPEND to %s", typeName(target))
	}
	if b.status != statusBuilding {
		return errEarlier
	}
	if b.kind == boxList {
		b.items = append(b.items, v)
	} else {
		b.obj.ListItems = append(b.obj.ListItems, v)
	}
	return nil
}

func setItemOn(target, k, v any) error {
	b, ok := target.(*box)
	if !ok || (b.kind != boxDict && b.kind != boxObject) {
		return fmt.Errorf("SETITEM on %s", typeName(target))
	}
	if b.status != statusBuilding {
		return errEarlier
	}
	if b.kind == boxObject {
		b.obj.DictItems = append(b.obj.DictItems, KV{k, v})
		return nil
	}
	return b.setItem(k, v)
}

// addToSet adds items to s, skipping those already there (Python's set
// semantics; as for dicts, large sets only find duplicates among keys of the
// common types).
func addToSet(s *Set, items []any) error {
	for _, it := range items {
		if err := checkHashable(it); err != nil {
			return err
		}
		if !s.contains(it) {
			s.Items = append(s.Items, it)
			if s.index != nil {
				if k, ok := keyOf(it); ok {
					s.index[k] = struct{}{}
				}
			}
		}
	}
	return nil
}

func (s *Set) contains(it any) bool {
	if s.index == nil && len(s.Items) < smallDict {
		for _, x := range s.Items {
			if keyEqual(x, it) {
				return true
			}
		}
		return false
	}
	if s.index == nil {
		s.index = make(map[dictKey]struct{}, 2*len(s.Items))
		for _, x := range s.Items {
			if k, ok := keyOf(x); ok {
				s.index[k] = struct{}{}
			}
		}
	}
	k, ok := keyOf(it)
	if !ok {
		return false
	}
	_, found := s.index[k]
	return found
}

func checkHashable(k any) error {
	switch x := k.(type) {
	case *box:
		switch x.kind {
		case boxObject:
			return nil // objects hash by identity
		case boxSet:
			if x.set.Frozen {
				return nil // its items were checked when it was built
			}
		case boxTuple:
			for _, it := range x.items {
				if err := checkHashable(it); err != nil {
					return err
				}
			}
			return nil
		case boxPersistent:
			return nil // what persistent_load returns: an object
		}
		return fmt.Errorf("unhashable type: '%s'", x.typeName())
	case *Set:
		if !x.Frozen {
			return errors.New("unhashable type: 'set'")
		}
	case ByteArray:
		return errors.New("unhashable type: 'bytearray'")
	case Dict:
		return errors.New("unhashable type: 'dict'")
	case List:
		return errors.New("unhashable type: 'list'")
	case Tuple:
		for _, it := range x {
			if err := checkHashable(it); err != nil {
				return err
			}
		}
	}
	return nil
}

// dictKey is a comparable form of the common hashable keys, used to find
// duplicates in large dicts without quadratic scans.
type dictKey struct {
	kind byte
	s    string
	i    int64
}

func keyOf(k any) (dictKey, bool) {
	switch x := k.(type) {
	case nil:
		return dictKey{kind: 'N'}, true
	case string:
		return dictKey{kind: 's', s: x}, true
	case []byte:
		return dictKey{kind: 'b', s: string(x)}, true
	case int64:
		return dictKey{kind: 'i', i: x}, true
	case bool:
		if x {
			return dictKey{kind: 'i', i: 1}, true
		}
		return dictKey{kind: 'i'}, true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<62 {
			return dictKey{kind: 'i', i: int64(x)}, true
		}
	}
	return dictKey{}, false
}

// smallDict is the size up to which duplicate keys are found by scanning.
const smallDict = 16

// setItem stores k: v with Python's semantics: an existing equal key keeps
// its place and gets the new value. In dicts larger than smallDict, keys other
// than None, str, bytes, int, bool and integral floats are not checked for
// duplicates (no Python pickler writes duplicate keys anyway).
func (b *box) setItem(k, v any) error {
	if err := checkHashable(k); err != nil {
		return err
	}
	if b.index == nil && len(b.dict) < smallDict {
		for i := range b.dict {
			if keyEqual(b.dict[i].Key, k) {
				b.dict[i].Value = v
				return nil
			}
		}
		b.dict = append(b.dict, KV{k, v})
		return nil
	}
	if b.index == nil {
		b.index = make(map[dictKey]int, 2*len(b.dict))
		for i, kv := range b.dict {
			if dk, ok := keyOf(kv.Key); ok {
				b.index[dk] = i
			}
		}
	}
	if dk, ok := keyOf(k); ok {
		if i, found := b.index[dk]; found {
			b.dict[i].Value = v
			return nil
		}
		b.index[dk] = len(b.dict)
	}
	b.dict = append(b.dict, KV{k, v})
	return nil
}

// keyEqual is Equal for dict keys, with fast paths for the common types.
func keyEqual(a, b any) bool {
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
	}
	// Tuples compare by value, also while still boxed (sets are built before
	// STOP resolves their boxes): two () or (1, 2) are one set item.
	if xs, ok := tupleItems(a); ok {
		ys, ok := tupleItems(b)
		if !ok || len(xs) != len(ys) {
			return false
		}
		for i := range xs {
			if !keyEqual(xs[i], ys[i]) {
				return false
			}
		}
		return true
	}
	// A persistent reference is its id, boxed or final.
	if x, ok := persistentID(a); ok {
		y, ok := persistentID(b)
		return ok && keyEqual(x, y)
	}
	if x, ok := a.(*box); ok {
		y, ok := b.(*box)
		return ok && x == y // objects hash and compare by identity
	}
	if _, ok := b.(*box); ok {
		return false
	}
	return Equal(a, b)
}

// persistentID returns the id of a persistent reference, boxed or final.
func persistentID(v any) (any, bool) {
	switch x := v.(type) {
	case PersistentRef:
		return x.ID, true
	case *box:
		if x.kind == boxPersistent {
			return x.items[0], true
		}
	}
	return nil, false
}

// tupleItems returns the items of a tuple, boxed or final.
func tupleItems(v any) ([]any, bool) {
	switch x := v.(type) {
	case Tuple:
		return x, true
	case *box:
		if x.kind == boxTuple {
			return x.items, true
		}
	}
	return nil, false
}

// finalize replaces boxes in v by their final values.
func (d *Decoder) finalize(v any, depth int) (any, error) {
	b, ok := v.(*box)
	if !ok {
		return v, nil
	}
	switch b.status {
	case statusDone:
		return b.final, nil
	case statusFinalizing:
		return nil, errCycle
	}
	if depth > maxDepth {
		return nil, errTooDeep
	}
	b.status = statusFinalizing
	var err error
	fin := func(x any) any {
		if err != nil {
			return nil
		}
		var r any
		r, err = d.finalize(x, depth+1)
		return r
	}
	finSlice := func(xs []any) {
		for i := range xs {
			xs[i] = fin(xs[i])
		}
	}
	switch b.kind {
	case boxList:
		finSlice(b.items)
		if b.items == nil {
			b.items = []any{}
		}
		b.final = List(b.items)
	case boxTuple:
		finSlice(b.items)
		b.final = Tuple(b.items)
	case boxPersistent:
		b.final = PersistentRef{ID: fin(b.items[0])}
	case boxDict:
		for i := range b.dict {
			b.dict[i].Key = fin(b.dict[i].Key)
			b.dict[i].Value = fin(b.dict[i].Value)
		}
		if b.dict == nil {
			b.dict = Dict{}
		}
		b.final = b.dict
		b.index = nil
	case boxSet:
		finSlice(b.set.Items)
		b.set.index = nil
		b.final = b.set
	case boxObject:
		o := b.obj
		o.Callable = fin(b.items[0])
		if args := fin(b.items[1]); args != nil {
			o.Args, _ = args.(Tuple)
		}
		if kw := fin(b.items[2]); kw != nil {
			o.Kwargs, _ = kw.(Dict)
		}
		o.State = fin(b.state)
		finSlice(o.ListItems)
		for i := range o.DictItems {
			o.DictItems[i].Key = fin(o.DictItems[i].Key)
			o.DictItems[i].Value = fin(o.DictItems[i].Value)
		}
		b.final = o
	}
	if err != nil {
		return nil, err
	}
	b.status = statusDone
	b.items = nil
	return b.final, nil
}

// callBuiltin does at REDUCE what Python's unpickler does by calling the
// builtin: the forms CPython writes for builtin types under protocols < 3
// (bytes(), _codecs.encode(str, 'latin1')) and < 4 (set(list),
// frozenset(list)) become values at once, so that they hash, compare and
// merge as dict keys and set items as in Python. ok is false for any other
// callable or argument shape: that REDUCE stays an Object.
func (d *Decoder) callBuiltin(callable, args any) (v any, ok bool, err error) {
	g, isGlobal := callable.(Global)
	items, isTuple := tupleItems(args)
	if !isGlobal || !isTuple {
		return nil, false, nil
	}
	switch g {
	case Global{"builtins", "set"}, Global{"builtins", "frozenset"}:
		var elems []any
		switch len(items) {
		case 0:
		case 1:
			if elems, ok = listItems(items[0]); !ok {
				return nil, false, nil
			}
		default:
			return nil, false, nil
		}
		s := &Set{Frozen: g.Name == "frozenset", Items: []any{}}
		// set(list) drops duplicates and refuses unhashable items, as
		// Python's call does.
		if err := addToSet(s, elems); err != nil {
			return nil, true, err
		}
		if s.Frozen && !slices.ContainsFunc(s.Items, isBox) {
			return s, true, nil
		}
		// A set may still get ADDITEMS; boxed items resolve at STOP.
		b := d.newBox(boxSet)
		b.set = s
		return b, true, nil
	case Global{"builtins", "bytes"}:
		if len(items) == 0 {
			return []byte{}, true, nil
		}
	case Global{"_codecs", "encode"}:
		if len(items) == 2 {
			text, ok1 := items[0].(string)
			enc, ok2 := items[1].(string)
			if ok1 && ok2 && (enc == "latin1" || enc == "latin-1") {
				if b, ok := latin1(text); ok {
					return b, true, nil
				}
			}
		}
	}
	return nil, false, nil
}

func isBox(v any) bool {
	_, ok := v.(*box)
	return ok
}

// listItems returns the items of a list, boxed or final.
func listItems(v any) ([]any, bool) {
	switch x := v.(type) {
	case List:
		return x, true
	case *box:
		if x.kind == boxList {
			return x.items, true
		}
	}
	return nil, false
}

// latin1 encodes text as Latin-1; ok is false if a character is above U+00FF.
func latin1(text string) ([]byte, bool) {
	b := make([]byte, 0, len(text))
	for _, r := range text {
		if r > 0xff {
			return nil, false
		}
		b = append(b, byte(r))
	}
	return b, true
}
