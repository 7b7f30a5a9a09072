package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/zodbctl/zodbctl/fsformat/pickle"
	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/client"
)

// zeoup's write check (zeo-admin-tools.md §5.2): root['monitor'] (a
// PersistentMapping) holds 'zeoup' (a ZODB.tests.MinPO.MinPO) whose value
// is incremented. Objects are read and written as ZODB does: two pickles
// sharing one memo, protocol 3, persistent references (oid, class). A
// record is only rewritten when decoding and re-encoding it gives back its
// exact bytes, so nothing this code does not fully understand is ever
// changed; otherwise the check falls back to storing the root again
// unchanged, which proves the same thing (the server commits).

var (
	persistentMappingClass = pickle.Global{Module: "persistent.mapping", Name: "PersistentMapping"}
	minPOClass             = pickle.Global{Module: "ZODB.tests.MinPO", Name: "MinPO"}
)

// zodbObject is a decoded object record.
type zodbObject struct {
	oid    zeowire.Oid
	serial zeowire.Tid
	class  any // the class pickle's value (usually a Global)
	state  any
}

// loadObject loads and decodes oid; ok is false when the record does not
// re-encode to its own bytes.
func loadObject(ctx context.Context, cl *client.Client, oid zeowire.Oid) (obj *zodbObject, ok bool, err error) {
	rev, found, err := cl.LoadBefore(ctx, oid, zeowire.MaxTid)
	if err != nil {
		return nil, false, err
	}
	if !found {
		return nil, false, fmt.Errorf("%s: loadBefore: oid %s: %w", cl.Addr(), oid, errNoRevision)
	}
	d := pickle.NewDecoder(rev.Data)
	d.FindGlobal = pickle.AnyGlobal
	obj = &zodbObject{oid: oid, serial: rev.Start}
	if obj.class, err = d.Decode(); err != nil {
		return obj, false, nil
	}
	if obj.state, err = d.Decode(); err != nil || d.Offset() != len(rev.Data) {
		return obj, false, nil
	}
	again, err := obj.record()
	return obj, err == nil && bytes.Equal(again, rev.Data), nil
}

// record pickles the object as ZODB does.
func (o *zodbObject) record() ([]byte, error) {
	e := pickle.NewEncoder(3)
	b, err := e.Append(nil, o.class)
	if err != nil {
		return nil, err
	}
	return e.Append(b, o.state)
}

// mappingData returns the 'data' dict of a PersistentMapping state.
func mappingData(o *zodbObject) (pickle.Dict, bool) {
	if o.class != persistentMappingClass {
		return nil, false
	}
	st, ok := o.state.(pickle.Dict)
	if !ok {
		return nil, false
	}
	v, ok := st.Get("data")
	if !ok {
		return nil, false
	}
	d, ok := v.(pickle.Dict)
	return d, ok
}

// setMappingData replaces the 'data' dict of a PersistentMapping state.
func setMappingData(o *zodbObject, data pickle.Dict) {
	st := o.state.(pickle.Dict)
	for i := range st {
		if st[i].Key == "data" {
			st[i].Value = data
		}
	}
}

// refOid returns the oid of a persistent reference (oid, class) or oid.
func refOid(v any) (zeowire.Oid, bool) {
	r, ok := v.(pickle.PersistentRef)
	if !ok {
		return 0, false
	}
	id := r.ID
	if t, ok := id.(pickle.Tuple); ok && len(t) == 2 {
		id = t[0]
	}
	oid, err := zeowire.AsOid(id)
	return oid, err == nil
}

func newRef(oid zeowire.Oid, class pickle.Global) pickle.PersistentRef {
	return pickle.PersistentRef{ID: pickle.Tuple{oid.Bytes(), class}}
}

func newMapping(oid zeowire.Oid, data pickle.Dict) *zodbObject {
	return &zodbObject{oid: oid, class: persistentMappingClass, state: pickle.Dict{{Key: "data", Value: data}}}
}

// zeoupCommit runs zeoup's write: on an empty storage the root is created
// first in its own transaction, as ZODB.DB does. mode tells what was done:
// "zeoup" or "rewrite-root" (the fallback).
func zeoupCommit(ctx context.Context, cl *client.Client) (tid zeowire.Tid, mode string, err error) {
	root, ok, err := loadObject(ctx, cl, 0)
	var pk *zeowire.POSKeyError
	if errors.As(err, &pk) || errors.Is(err, errNoRevision) {
		t, cerr := cl.Commit(ctx, nil, []byte("initial database creation"), nil,
			[]client.Store{{Oid: 0, Data: emptyRootRecord}})
		if cerr != nil {
			return 0, "", cerr
		}
		root, ok, err = newMapping(0, pickle.Dict{}), true, nil
		root.serial = t
	}
	if err != nil {
		return 0, "", err
	}
	rewriteRoot := func() (zeowire.Tid, string, error) {
		rev, _, err := cl.LoadBefore(ctx, 0, zeowire.MaxTid)
		if err != nil {
			return 0, "", err
		}
		t, err := cl.Commit(ctx, nil, nil, nil, []client.Store{{Oid: 0, Serial: rev.Start, Data: rev.Data}})
		return t, "rewrite-root", err
	}
	rootData, isMapping := mappingData(root)
	if !ok || !isMapping {
		return rewriteRoot()
	}
	var changed []*zodbObject // in ZODB's store order: modified, then new
	var newOids []zeowire.Oid
	nextOid := func() (zeowire.Oid, error) {
		if len(newOids) == 0 {
			var err error
			if newOids, err = cl.NewOids(ctx); err != nil {
				return 0, err
			}
		}
		o := newOids[0]
		newOids = newOids[1:]
		return o, nil
	}
	var monitor *zodbObject
	var monData pickle.Dict
	if ref, found := rootData.Get("monitor"); found {
		monOid, isRef := refOid(ref)
		if !isRef {
			return rewriteRoot()
		}
		if monitor, ok, err = loadObject(ctx, cl, monOid); err != nil {
			return 0, "", err
		}
		if monData, isMapping = mappingData(monitor); !ok || !isMapping {
			return rewriteRoot()
		}
	} else {
		monOid, err := nextOid()
		if err != nil {
			return 0, "", err
		}
		monitor = newMapping(monOid, pickle.Dict{})
		monData = pickle.Dict{}
		setMappingData(root, append(rootData, pickle.KV{Key: "monitor", Value: newRef(monOid, persistentMappingClass)}))
		changed = append(changed, root)
	}
	var counter *zodbObject
	if ref, found := monData.Get("zeoup"); found {
		cOid, isRef := refOid(ref)
		if !isRef {
			return rewriteRoot()
		}
		if counter, ok, err = loadObject(ctx, cl, cOid); err != nil {
			return 0, "", err
		}
		if !ok || counter.class != minPOClass {
			return rewriteRoot()
		}
	} else {
		cOid, err := nextOid()
		if err != nil {
			return 0, "", err
		}
		counter = &zodbObject{oid: cOid, class: minPOClass, state: pickle.Dict{{Key: "value", Value: int64(0)}}}
		setMappingData(monitor, append(monData, pickle.KV{Key: "zeoup", Value: newRef(cOid, minPOClass)}))
		changed = append(changed, monitor)
	}
	// value += 1
	st, isDict := counter.state.(pickle.Dict)
	if !isDict {
		return rewriteRoot()
	}
	incremented := false
	for i := range st {
		if st[i].Key == "value" {
			n, isInt := st[i].Value.(int64)
			if !isInt {
				return rewriteRoot()
			}
			st[i].Value = n + 1
			incremented = true
		}
	}
	if !incremented {
		return rewriteRoot()
	}
	changed = append(changed, counter)
	stores := make([]client.Store, len(changed))
	for i, o := range changed {
		data, err := o.record()
		if err != nil {
			return 0, "", fmt.Errorf("oid %s: pickling: %w", o.oid, err)
		}
		stores[i] = client.Store{Oid: o.oid, Serial: o.serial, Data: data}
	}
	tid, err = cl.Commit(ctx, nil, nil, nil, stores)
	return tid, "zeoup", err
}
