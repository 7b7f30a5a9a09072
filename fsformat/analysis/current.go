package analysis

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/zodbctl/zodbctl/fsformat"
)

// Current is the index of a Data.fs as FileStorage builds it on open
// (read_index: oid → position of its latest data record), plus the order
// of those positions.
type Current struct {
	File  *fsformat.File
	Index *OidIndex

	// present is a bitmap of the oids in the index when they are dense
	// enough (the usual case: oids are allocated from 0 up); it answers Has
	// from a few cache lines instead of the index.
	present []uint64

	// backs holds the oids whose current record is a backpointer, the only
	// current records that can fail to load, when backsKnown (the index
	// was scanned, not read from <name>.index). CheckRefs uses it to avoid
	// a second pass over the file.
	backs      *oidSet
	backsKnown bool
}

// scanIndex is the index OpenCurrent has ScanIndex fill: an OidIndex that
// also keeps the set of oids whose latest record is a backpointer.
type scanIndex struct {
	*OidIndex
	backs *oidSet
}

// SetRecord implements fsformat.RecordIndex.
func (x *scanIndex) SetRecord(oid fsformat.Oid, pos int64, backpointer bool) {
	x.Set(oid, pos)
	if backpointer {
		// Dense like the index: its slice, or what it would grow to.
		x.backs.add(oid, max(uint64(len(x.dense)), 4*uint64(x.n+1)+denseSlack))
	} else {
		x.backs.remove(oid)
	}
}

// OpenCurrent opens name read-only and gets its index as FileStorage does:
// from a sane <name>.index covering the whole file, else by a scan
// (fsformat.ScanIndex); warn receives FileStorage's open-time warnings
// (time-stamp reduction, invalid status, incorrect previous pointer,
// ignored index).
func OpenCurrent(name string, warn func(string)) (*Current, error) {
	f, err := fsformat.Open(name)
	if err != nil {
		return nil, err
	}
	idx := loadSavedIndex(f, name, warn)
	var backs *oidSet
	if idx == nil {
		// A second descriptor for the index scan keeps this independent of
		// how File exposes its own.
		osf, err := os.Open(name)
		if err != nil {
			f.Close()
			return nil, err
		}
		defer osf.Close()
		idx = &OidIndex{}
		backs = &oidSet{}
		if _, err := fsformat.ScanIndex(osf, name, &scanIndex{idx, backs}, warn); err != nil {
			f.Close()
			return nil, err
		}
	}
	c := &Current{File: f, Index: idx, backs: backs, backsKnown: backs != nil}
	var maxOid fsformat.Oid
	for oid := range idx.All() {
		maxOid = max(maxOid, oid)
	}
	if idx.Len() > 0 && uint64(maxOid) < 64*uint64(idx.Len())+(1<<20) {
		c.present = make([]uint64, maxOid/64+1)
		for oid := range idx.All() {
			c.present[oid/64] |= 1 << (oid % 64)
		}
	}
	return c, nil
}

// Has tells whether oid is in the index.
func (c *Current) Has(oid fsformat.Oid) bool {
	if c.present != nil {
		i := uint64(oid / 64)
		return i < uint64(len(c.present)) && c.present[i]&(1<<(oid%64)) != 0
	}
	_, ok := c.Index.Get(oid)
	return ok
}

// Close closes the file.
func (c *Current) Close() error { return c.File.Close() }

// CurrentRecord is the current revision of one object, visited in file
// order by EachCurrent.
type CurrentRecord struct {
	Oid  fsformat.Oid
	Tid  fsformat.Tid // the tid of the current record itself (what load returns)
	Pos  int64        // position of the current record
	Data []byte       // resolved data; nil with Err set when it cannot be loaded
	// Err is fsformat.ErrNoData for a deletion or undone creation, another
	// error when the record cannot be loaded (a bad backpointer).
	Err error
}

// EachCurrent calls fn for the current record of every oid of the index,
// in ascending position. It streams the file (large sequential reads) and
// reads randomly only to resolve backpointers and for oids the iterator does
// not reach (possible in damaged files). With headersOnly, the data of
// records holding it inline is not handed over (Data nil, Err nil): enough
// to find undone and unloadable objects. Data is valid only during the call.
func (c *Current) EachCurrent(headersOnly bool, fn func(r *CurrentRecord) error) error {
	f := c.File
	seen := 0
	var end int64 // where the iterator stopped
	var cr CurrentRecord
	stream := func() error {
		for txn, err := range f.Transactions(fsformat.IterOptions{}) {
			if err != nil {
				return nil // the index scan already reported what is wrong
			}
			for rec, err := range txn.Records() {
				if err != nil {
					return nil
				}
				end = rec.Pos + 1
				if pos, ok := c.Index.Get(rec.Oid); !ok || pos != rec.Pos {
					continue
				}
				seen++
				cr = CurrentRecord{Oid: rec.Oid, Tid: rec.Tid, Pos: rec.Pos}
				if rec.IsBackpointer() {
					cr.Data, cr.Err = c.load(rec.Pos)
				} else if !headersOnly {
					cr.Data = rec.Data
				}
				if err := fn(&cr); err != nil {
					return err
				}
			}
			end = txn.Next()
		}
		return nil
	}
	if err := stream(); err != nil || seen == c.Index.Len() {
		return err
	}
	// Current records the iterator did not reach (possible in damaged
	// files): visit them by position.
	var rest []int64
	for _, pos := range c.Index.All() {
		if pos >= end {
			rest = append(rest, pos)
		}
	}
	slices.Sort(rest)
	for _, pos := range rest {
		h, err := f.ReadDataHeaderAt(pos)
		cr = CurrentRecord{Oid: h.Oid, Tid: h.Tid, Pos: pos}
		if err != nil {
			cr.Err = err
		} else {
			cr.Data, cr.Err = c.load(pos)
		}
		if err := fn(&cr); err != nil {
			return err
		}
	}
	return nil
}

func (c *Current) load(pos int64) ([]byte, error) {
	data, _, err := c.File.LoadRecord(pos)
	if err != nil && !errors.Is(err, fsformat.ErrNoData) {
		err = fmt.Errorf("%s: data record at %d: %w", c.File.Name, pos, err)
	}
	return data, err
}
