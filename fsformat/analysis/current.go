package analysis

import (
	"errors"
	"os"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/oidmap"
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
	backs      *oidmap.Set
	backsKnown bool
}

// scanIndex is the index OpenCurrent has ScanIndex fill: an OidIndex that
// also keeps the set of oids whose latest record is a backpointer.
type scanIndex struct {
	*OidIndex
	backs *oidmap.Set
}

// SetRecord implements fsformat.RecordIndex.
func (x *scanIndex) SetRecord(oid fsformat.Oid, pos int64, backpointer bool) {
	x.Set(oid, pos)
	if backpointer {
		// Dense like the index: its slice, or what it would grow to.
		x.backs.Add(oid, x.DenseRange())
	} else {
		x.backs.Remove(oid)
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
	var backs *oidmap.Set
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
		backs = &oidmap.Set{}
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
// reads randomly only to resolve backpointers; it holds the sorted
// positions (8 bytes per object) meanwhile. With headersOnly, the data of
// records holding it inline is not handed over (Data nil, Err nil): enough
// to find undone and unloadable objects. Data is valid only during the call.
func (c *Current) EachCurrent(headersOnly bool, fn func(r *CurrentRecord) error) error {
	// The records are visited by position, in ascending order, reading
	// through the File's sequential window: the same bytes are read as by a
	// walk with the iterator, but only the current records are parsed and
	// no index lookup is made per record. Every position of a scanned index
	// is one the iterator reaches (or, past where a damaged file stops it,
	// one it would have loaded by position), so the result is the same.
	positions := make([]int64, 0, c.Index.Len())
	for _, pos := range c.Index.All() {
		positions = append(positions, pos)
	}
	sortPositions(positions)
	f := c.File
	var cr CurrentRecord
	for _, pos := range positions {
		h, err := f.ReadDataHeaderSeq(pos)
		cr = CurrentRecord{Oid: h.Oid, Tid: h.Tid, Pos: pos}
		switch {
		case err != nil:
			cr.Err = err
		case h.DataLen == 0 || h.VersionLen != 0:
			cr.Data, cr.Err = c.load(pos)
		default:
			var data []byte
			data, err = f.InlineDataSeq(pos, &h)
			if err != nil {
				cr.Err = &fsformat.RecordError{File: f.Name, Pos: pos, Err: err}
			} else if !headersOnly {
				cr.Data = data
			}
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
		err = &fsformat.RecordError{File: c.File.Name, Pos: pos, Err: err}
	}
	return data, err
}
