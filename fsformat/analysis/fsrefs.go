package analysis

import (
	"errors"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/oidmap"
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
	// goroutines; the reports (usually few) are kept. Only a current record
	// that is a backpointer can turn out unloadable, and the index scan
	// told which those are (Current.backs): objects referring to one are
	// set aside (suspects) and checked again once all unloadable objects
	// are known, by position. Every other report of the first pass is final.
	// Without that knowledge (a saved index), when an unloadable object is
	// not among them (a damaged file) or when there were too many reports
	// to keep, a second pass checks everything again, as fsrefs.py does.
	undone := map[fsformat.Oid]bool{}
	noload := map[fsformat.Oid]bool{}
	unknownFailure := false
	first, err := checkRefsFirstPass(c, func(r *CurrentRecord) {
		if !c.backsKnown || !c.backs.Has(r.Oid) {
			unknownFailure = true
		}
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
	if !first.overflow && (len(undone) == 0 && len(noload) == 0 || c.backsKnown && !unknownFailure) {
		return first.report(c, undone, noload, broken)
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

// firstPass is what checkRefsFirstPass found.
type firstPass struct {
	kept     []BrokenObject // reports of the objects that are not suspects, in file order
	suspects []int64        // positions of the objects referring to a current backpointer record
	overflow bool           // too many reports to keep: kept and suspects are incomplete
}

// report calls broken for the kept reports and for the suspects that turn
// out to have bad references, all in file order.
func (p *firstPass) report(c *Current, undone, noload map[fsformat.Oid]bool, broken func(*BrokenObject) error) error {
	var ck refChecker
	kept := p.kept
	for _, pos := range p.suspects {
		for len(kept) > 0 && kept[0].Pos < pos {
			if err := broken(&kept[0]); err != nil {
				return err
			}
			kept = kept[1:]
		}
		data, h, err := c.File.LoadRecord(pos)
		if err != nil {
			// It loaded in the first pass.
			return &fsformat.RecordError{File: c.File.Name, Pos: pos, Err: err}
		}
		r := CurrentRecord{Oid: h.Oid, Tid: h.Tid, Pos: pos, Data: data}
		bad, err := ck.check(c, &r, undone, noload)
		if err != nil {
			return err
		}
		if bad {
			if err := broken(&ck.obj); err != nil {
				return err
			}
		}
	}
	for i := range kept {
		if err := broken(&kept[i]); err != nil {
			return err
		}
	}
	return nil
}

// refChecker checks the references of one record at a time.
type refChecker struct {
	sc    refs.Scanner
	found []refs.Ref
	obj   BrokenObject // the last report; reused

	// backs, when not nil, are the oids whose current record is a
	// backpointer; check sets suspect when r refers to one of them.
	backs   *oidmap.Set
	suspect bool
}

// check fills ck.obj and returns true when r has bad references.
func (ck *refChecker) check(c *Current, r *CurrentRecord, undone, noload map[fsformat.Oid]bool) (bool, error) {
	var err error
	ck.found, err = ck.sc.Scan(r.Data, ck.found[:0])
	if err != nil {
		return false, &fsformat.RecordError{File: c.File.Name, Pos: r.Pos, Oid: r.Oid.Repr(), Err: err}
	}
	obj := &ck.obj
	obj.Refs = obj.Refs[:0]
	ck.suspect = false
	for i := range ck.found {
		ref := &ck.found[i]
		if !ref.CountsForReferencesf() {
			continue
		}
		target := fsformat.Oid(ref.Oid)
		if ck.backs != nil && ck.backs.Has(target) {
			ck.suspect = true
		}
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
	maxSuspects   = 50000 // suspects set aside by the first pass before giving up on it
)

// checkRefsFirstPass streams the current records: unloadable ones go to
// unloadable (on the calling goroutine), the others are scanned on a
// second goroutine against the index alone. It returns the reports and the
// suspects in file order, or overflow when there were too many to keep.
func checkRefsFirstPass(c *Current, unloadable func(*CurrentRecord)) (p firstPass, err error) {
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
		if c.backsKnown && c.backs.Len() > 0 {
			ck.backs = c.backs
		}
		for b := range work {
			for i := range b.recs {
				if scanErr != nil || p.overflow {
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
				if ck.suspect {
					if len(p.suspects) == maxSuspects {
						// Reloading them one by one would cost more
						// than a second pass.
						p.overflow, p.kept, p.suspects = true, nil, nil
						break
					}
					p.suspects = append(p.suspects, r.Pos)
					continue
				}
				if !bad {
					continue
				}
				if len(p.kept) == maxKept {
					p.overflow, p.kept, p.suspects = true, nil, nil
					break
				}
				o := ck.obj
				o.Refs = append([]BrokenRef(nil), ck.obj.Refs...)
				p.kept = append(p.kept, o)
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
	return p, err
}
