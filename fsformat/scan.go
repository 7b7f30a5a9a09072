package fsformat

import (
	"fmt"
	"io"
	"os"
)

// ScanResult is what ScanIndex found.
type ScanResult struct {
	Magic   [4]byte
	End     int64 // end of the valid data (FileStorage's _pos)
	LastTid Tid   // last tid seen, including that of a dropped incomplete transaction
	MaxOid  Oid   // largest oid indexed
	// Truncate is where a writable open cuts the file (-1: nowhere), and
	// CopyTail whether the cut bytes are first saved to <name>.trN.
	Truncate int64
	CopyTail bool
	// TailWarning is the message FileStorage logs when truncating.
	TailWarning string
}

// RecordIndex is an Index that also wants to know, for each record it
// is given, whether the record is a backpointer (holds no data of its own:
// an undo, or a deletion). ScanIndex calls SetRecord instead of Set on such
// an index. Tools use it to know, without reading the records again, which
// current revisions can fail to load (fsrefs' "creation was undone").
type RecordIndex interface {
	Index
	SetRecord(oid Oid, pos int64, backpointer bool)
}

// scanEntry is one record of the transaction being scanned.
type scanEntry struct {
	oid  Oid
	pos  int64
	back bool
}

// ScanIndex rebuilds the oid → position index of a whole file the way
// FileStorage's read_index does on open (filestorage.md §10.3), filling
// idx. Non-fatal findings (time-stamp reduction, invalid status, incorrect
// previous pointer) go to warn; damage FileStorage refuses to open is a
// *FormatError carrying FileStorage's message. The scan never modifies the
// file: where a writable open would truncate, the result says so.
func ScanIndex(f *os.File, name string, idx Index, warn func(string)) (ScanResult, error) {
	st, err := f.Stat()
	if err != nil {
		return ScanResult{Truncate: -1}, err
	}
	return ScanIndexReader(f, st.Size(), name, idx, warn)
}

// ScanIndexReader is ScanIndex on any io.ReaderAt of the given size.
func ScanIndexReader(f io.ReaderAt, size int64, name string, idx Index, warn func(string)) (ScanResult, error) {
	if warn == nil {
		warn = func(string) {}
	}
	res := ScanResult{Truncate: -1}
	var r reader
	r.init(f, size)
	if size == 0 {
		res.End = FileHeaderLen
		return res, nil
	}
	m, err := r.at(0, 4)
	if err != nil {
		return res, err
	}
	if len(m) < 4 || ([4]byte(m) != MagicFS30 && [4]byte(m) != MagicFS21) {
		return res, formatErr(name, 0, "invalid file header (FileStorageFormatError)")
	}
	res.Magic = [4]byte(m)
	pos := int64(FileHeaderLen)
	var ltid Tid
	var tindex []scanEntry
	ridx, _ := idx.(RecordIndex)
	for {
		b, err := r.at(pos, TxnHeaderLen)
		if err != nil {
			return res, fmt.Errorf("%s: transaction at %d: %w", name, pos, err)
		}
		if len(b) == 0 {
			break
		}
		if len(b) < TxnHeaderLen {
			res.Truncate = pos
			res.TailWarning = fmt.Sprintf("%s truncated at %d", name, pos)
			break
		}
		h := ParseTxnHeader(b)
		if h.Tid <= ltid {
			warn(fmt.Sprintf("%s time-stamp reduction at %d", name, pos))
		}
		ltid = h.Tid
		res.LastTid = ltid
		if h.Len < 0 || h.Len > size || pos+h.Len+TrailerLen > size || h.Status == StatusCheckpoint {
			res.Truncate, res.CopyTail = pos, true
			res.TailWarning = fmt.Sprintf("%s truncated, possibly due to damaged records at %d", name, pos)
			break
		}
		if h.Status != StatusNormal && h.Status != StatusUndone && h.Status != StatusPacked {
			warn(fmt.Sprintf("%s has invalid status, %s, at %d", name, string(rune(h.Status)), pos))
		}
		tpos, tend := pos, pos+h.Len
		if h.Len < h.HeaderLen() {
			rtl, ok, err := r.peek8(size - 8)
			if err != nil {
				return res, err
			}
			if !ok || size-int64(rtl) < pos || rtl < TxnHeaderLen || int64(rtl) < 0 {
				warn(fmt.Sprintf("%s has invalid transaction header at %d", name, pos))
				res.Truncate, res.CopyTail = pos, true
				res.TailWarning = fmt.Sprintf("It appears that there is invalid data at the end of the file, possibly due to a system crash.  %s truncated to recover from bad data at end.", name)
				break
			}
			return res, formatErr(name, pos, "%s has invalid transaction header at %d", name, pos)
		}
		if h.Status == StatusUndone {
			rtl, ok, err := r.peek8(tend)
			if err != nil {
				return res, err
			}
			if !ok || int64(rtl) != h.Len {
				return res, formatErr(name, pos, "%s has inconsistent transaction length at %d", name, pos)
			}
			pos = tend + TrailerLen
			continue
		}
		tindex = tindex[:0]
		dpos := tpos + h.HeaderLen()
		for dpos < tend {
			db, err := r.at(dpos, DataHeaderLen)
			if err != nil {
				return res, fmt.Errorf("%s: data record at %d: %w", name, dpos, err)
			}
			if len(db) < DataHeaderLen {
				return res, formatErr(name, dpos, "%s data record exceeds transaction record at %d", name, dpos)
			}
			dh := ParseDataHeader(db)
			if dh.VersionLen != 0 {
				return res, formatErr(name, dpos, "Non-zero version length. Versions aren't supported.")
			}
			rl := dh.RecordLen()
			if rl < 0 || dpos+rl > tend || dh.TxnPos != tpos {
				return res, formatErr(name, dpos, "%s data record exceeds transaction record at %d", name, dpos)
			}
			tindex = append(tindex, scanEntry{dh.Oid, dpos, dh.DataLen == 0})
			cur, _ := idx.Get(dh.Oid)
			if cur != dh.Prev {
				warn(fmt.Sprintf("%s incorrect previous pointer at %d", name, dpos))
			}
			dpos += rl
		}
		if dpos != tend {
			return res, formatErr(name, tpos, "%s data records don't add up at %d", name, tpos)
		}
		rtl, ok, err := r.peek8(tend)
		if err != nil {
			return res, err
		}
		if !ok || int64(rtl) != h.Len {
			return res, formatErr(name, tend, "%s redundant transaction length check failed at %d", name, tend)
		}
		for _, op := range tindex {
			if ridx != nil {
				ridx.SetRecord(op.oid, op.pos, op.back)
			} else {
				idx.Set(op.oid, op.pos)
			}
			if op.oid > res.MaxOid {
				res.MaxOid = op.oid
			}
		}
		pos = tend + TrailerLen
	}
	res.End = pos
	return res, nil
}
