package analysis

import (
	"errors"
	"fmt"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/refs"
)

// Problem reasons, fsrefs.py's texts.
const (
	ReasonMissing    = "missing"
	ReasonFailedLoad = "failed to load"
	ReasonUndone     = "object creation was undone"
)

// BrokenRef is one bad reference of an object's current revision.
type BrokenRef struct {
	Oid    fsformat.Oid
	Reason string // ReasonMissing, ReasonFailedLoad or ReasonUndone
	// Class is what the reference says about the target's class: "module.name"
	// for a legacy (module, name) tuple, else "<unknown>" (ZODB reads
	// references with noload, which turns a class into None).
	Class string
}

// BrokenObject is an object whose current revision refers to objects that
// are missing or cannot be loaded (one fsrefs report).
type BrokenObject struct {
	Oid   fsformat.Oid
	Class string // get_pickle_metadata of its current data
	Tid   fsformat.Tid
	Pos   int64
	Refs  []BrokenRef // in pickle order, duplicates kept
}

// LoadFailure is an object of the index whose current data cannot be
// loaded for another reason than an undone creation (fsrefs' noload set).
type LoadFailure struct {
	Oid fsformat.Oid
	Err error
}

// CheckRefs is fsrefs.py: it loads the current revision of every object of
// c's index (in file order), then checks the local strong references of the
// loadable ones (referencesf's view: weak and cross-database references are
// not checked). broken is called for each object with problems, in file
// order; failed for each object that cannot be loaded, before any broken
// call.
func CheckRefs(c *Current, failed func(LoadFailure), broken func(*BrokenObject) error) error {
	// One streaming pass finds the unloadable objects and checks every
	// reference; the reports (usually few) are kept. When no object turned
	// out unloadable, the "missing" checks were complete and the kept
	// reports are the answer; otherwise, as fsrefs.py does, a second pass
	// checks again knowing them all.
	undone := map[fsformat.Oid]bool{}
	noload := map[fsformat.Oid]bool{}
	var kept []BrokenObject
	overflow := false
	const maxKept = 10000
	var sc refs.Scanner
	var found []refs.Ref
	var obj BrokenObject
	check := func(r *CurrentRecord) (bool, error) {
		var err error
		found, err = sc.Scan(r.Data, found[:0])
		if err != nil {
			return false, fmt.Errorf("%s: oid %s: data record at %d: %w", c.File.Name, r.Oid.Repr(), r.Pos, err)
		}
		obj.Refs = obj.Refs[:0]
		for i := range found {
			ref := &found[i]
			if !ref.CountsForReferencesf() {
				continue
			}
			target := fsformat.Oid(ref.Oid)
			var reasons [3]string
			n := 0
			if !c.Has(target) {
				reasons[n] = ReasonMissing
				n++
			}
			if noload[target] {
				reasons[n] = ReasonFailedLoad
				n++
			}
			if undone[target] {
				reasons[n] = ReasonUndone
				n++
			}
			if n == 0 {
				continue
			}
			class := "<unknown>"
			if ref.LegacyClass {
				class = string(ref.Module) + "." + string(ref.Name)
			}
			for _, reason := range reasons[:n] {
				obj.Refs = append(obj.Refs, BrokenRef{Oid: target, Reason: reason, Class: class})
			}
		}
		if len(obj.Refs) == 0 {
			return false, nil
		}
		m, n := sc.Class(r.Data)
		obj.Oid, obj.Tid, obj.Pos = r.Oid, r.Tid, r.Pos
		obj.Class = string(m) + "." + string(n)
		return true, nil
	}
	err := c.EachCurrent(false, func(r *CurrentRecord) error {
		switch {
		case errors.Is(r.Err, fsformat.ErrNoData):
			undone[r.Oid] = true
			return nil
		case r.Err != nil:
			noload[r.Oid] = true
			if failed != nil {
				failed(LoadFailure{r.Oid, r.Err})
			}
			return nil
		}
		if overflow {
			return nil
		}
		bad, err := check(r)
		if err != nil || !bad {
			return err
		}
		if len(kept) == maxKept {
			overflow, kept = true, nil
			return nil
		}
		o := obj
		o.Refs = append([]BrokenRef(nil), obj.Refs...)
		kept = append(kept, o)
		return nil
	})
	if err != nil {
		return err
	}
	if len(undone) == 0 && len(noload) == 0 && !overflow {
		for i := range kept {
			if err := broken(&kept[i]); err != nil {
				return err
			}
		}
		return nil
	}
	return c.EachCurrent(false, func(r *CurrentRecord) error {
		if r.Err != nil {
			return nil
		}
		bad, err := check(r)
		if err != nil || !bad {
			return err
		}
		return broken(&obj)
	})
}
