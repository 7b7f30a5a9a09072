package analysis

import (
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/zodbctl/zodbctl/fsformat"
)

// Current is the index of a Data.fs as FileStorage builds it on open
// (read_index: oid → position of its latest data record), plus the order
// of those positions.
type Current struct {
	File  *fsformat.File
	Index fsformat.MapIndex
}

// OpenCurrent opens name read-only and builds its index with
// fsformat.ScanIndex; warn receives FileStorage's open-time warnings
// (time-stamp reduction, invalid status, incorrect previous pointer).
func OpenCurrent(name string, warn func(string)) (*Current, error) {
	f, err := fsformat.Open(name)
	if err != nil {
		return nil, err
	}
	// A second descriptor for the index scan keeps this independent of how
	// File exposes its own.
	osf, err := os.Open(name)
	if err != nil {
		f.Close()
		return nil, err
	}
	defer osf.Close()
	idx := fsformat.MapIndex{}
	if _, err := fsformat.ScanIndex(osf, name, idx, warn); err != nil {
		f.Close()
		return nil, err
	}
	return &Current{File: f, Index: idx}, nil
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
	visited := 0
	var last int64 = -1
	var cr CurrentRecord
	for txn, err := range f.Transactions(fsformat.IterOptions{}) {
		if err != nil {
			break // the index scan already reported what is wrong
		}
		for rec, err := range txn.Records() {
			if err != nil {
				break
			}
			if pos, ok := c.Index[rec.Oid]; !ok || pos != rec.Pos {
				continue
			}
			visited++
			last = rec.Pos
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
	}
	if visited == len(c.Index) {
		return nil
	}
	// Oids whose current record the iterator did not reach: visit them by
	// position, after the ones already seen.
	var rest []fsformat.Oid
	for oid, pos := range c.Index {
		if pos > last {
			rest = append(rest, oid)
		}
	}
	sort.Slice(rest, func(i, j int) bool { return c.Index[rest[i]] < c.Index[rest[j]] })
	for _, oid := range rest {
		pos := c.Index[oid]
		h, err := f.ReadDataHeaderAt(pos)
		cr = CurrentRecord{Oid: oid, Tid: h.Tid, Pos: pos}
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
