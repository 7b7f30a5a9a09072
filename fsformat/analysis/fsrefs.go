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
	// reference, the reading and the pickle scanning overlapping on two
	// goroutines; the reports (usually few) are kept. When no object turned
	// out unloadable, the "missing" checks were complete and the kept
	// reports are the answer; otherwise, as fsrefs.py does, a second pass
	// checks again knowing them all.
	undone := map[fsformat.Oid]bool{}
	noload := map[fsformat.Oid]bool{}
	kept, overflow, err := checkRefsFirstPass(c, func(r *CurrentRecord) {
		if errors.Is(r.Err, fsformat.ErrNoData) {
			undone[r.Oid] = true
			return
		}
		noload[r.Oid] = true
		if failed != nil {
			failed(LoadFailure{r.Oid, r.Err})
		}
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
	var ck refChecker
	return c.EachCurrent(false, func(r *CurrentRecord) error {
		if r.Err != nil {
			return nil
		}
		bad, err := ck.check(c, r, undone, noload)
		if err != nil || !bad {
			return err
		}
		return broken(&ck.obj)
	})
}

// refChecker checks the references of one record at a time.
type refChecker struct {
	sc    refs.Scanner
	found []refs.Ref
	obj   BrokenObject // the last report; reused
}

// check fills ck.obj and returns true when r has bad references.
func (ck *refChecker) check(c *Current, r *CurrentRecord, undone, noload map[fsformat.Oid]bool) (bool, error) {
	var err error
	ck.found, err = ck.sc.Scan(r.Data, ck.found[:0])
	if err != nil {
		return false, fmt.Errorf("%s: oid %s: data record at %d: %w", c.File.Name, r.Oid.Repr(), r.Pos, err)
	}
	obj := &ck.obj
	obj.Refs = obj.Refs[:0]
	for i := range ck.found {
		ref := &ck.found[i]
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
	m, n := ck.sc.Class(r.Data)
	obj.Oid, obj.Tid, obj.Pos = r.Oid, r.Tid, r.Pos
	obj.Class = string(m) + "." + string(n)
	return true, nil
}

// refBatch carries copies of current records from the reading goroutine to
// the scanning one.
type refBatch struct {
	data []byte
	recs []CurrentRecord // Data empty; the bytes are data[start:end]
	ends []int
}

const (
	refBatchBytes = 1 << 20
	maxKept       = 10000 // reports kept by the first pass before giving up on it
)

// checkRefsFirstPass streams the current records: unloadable ones go to
// unloadable (on the calling goroutine), the others are scanned on a
// second goroutine against the index alone. It returns the reports in file
// order, or overflow when there were too many to keep.
func checkRefsFirstPass(c *Current, unloadable func(*CurrentRecord)) (kept []BrokenObject, overflow bool, err error) {
	work := make(chan *refBatch, 2)
	free := make(chan *refBatch, 3)
	for range 3 {
		free <- &refBatch{data: make([]byte, 0, refBatchBytes)}
	}
	var scanErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ck refChecker
		for b := range work {
			for i := range b.recs {
				if scanErr != nil || overflow {
					break
				}
				r := &b.recs[i]
				start := 0
				if i > 0 {
					start = b.ends[i-1]
				}
				r.Data = b.data[start:b.ends[i]]
				bad, err := ck.check(c, r, nil, nil)
				if err != nil {
					scanErr = err
					break
				}
				if !bad {
					continue
				}
				if len(kept) == maxKept {
					overflow, kept = true, nil
					break
				}
				o := ck.obj
				o.Refs = append([]BrokenRef(nil), ck.obj.Refs...)
				kept = append(kept, o)
			}
			b.data, b.recs, b.ends = b.data[:0], b.recs[:0], b.ends[:0]
			free <- b
		}
	}()
	b := <-free
	err = c.EachCurrent(false, func(r *CurrentRecord) error {
		if r.Err != nil {
			unloadable(r)
			return nil
		}
		if len(b.recs) > 0 && len(b.data)+len(r.Data) > refBatchBytes {
			work <- b
			b = <-free
		}
		b.data = append(b.data, r.Data...)
		rec := *r
		rec.Data = nil
		b.recs = append(b.recs, rec)
		b.ends = append(b.ends, len(b.data))
		return nil
	})
	work <- b
	close(work)
	<-done
	if err == nil {
		err = scanErr
	}
	return kept, overflow, err
}
