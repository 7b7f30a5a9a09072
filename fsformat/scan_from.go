package fsformat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrIndexUnusable is wrapped by the errors of CheckSavedIndex: the saved
// index does not fit the file, and FileStorage would ignore it (log
// "Ignoring index for <path>") and rebuild from a full scan.
var ErrIndexUnusable = errors.New("saved index does not match the file")

// saneRecords is how many data records FileStorage's _check_sanity compares
// with the index (from the first record of the last non-empty transaction).
const saneRecords = 5

// CheckSavedIndex is FileStorage's sanity check of a saved index whose
// saved position is pos (fsindex.md §5): pos must lie in [100, size]; the
// transactions before pos, walked backwards through their redundant
// lengths, must be well-formed up to the last one that is neither undone
// nor empty; and up to five of its records must lie in it and be where idx
// says. It returns the tid of the transaction that ends at pos, the last
// tid the scan from pos continues after. idx is only read. Every mismatch
// is an error wrapping ErrIndexUnusable; read errors are returned as they
// are.
func CheckSavedIndex(r io.ReaderAt, size int64, name string, idx Index, pos int64) (Tid, error) {
	unusable := func(at int64, why string) (Tid, error) {
		return 0, fmt.Errorf("%s: index position %d: %s at %d: %w", name, pos, why, at, ErrIndexUnusable)
	}
	if pos < 100 {
		return unusable(pos, "below 100")
	}
	if pos > size {
		return unusable(pos, fmt.Sprintf("past the end of the file (%d bytes)", size))
	}
	var b [DataHeaderLen]byte
	read := func(p []byte, at int64) error {
		if _, err := r.ReadAt(p, at); err != nil {
			return fmt.Errorf("%s: checking the saved index at %d: %w", name, at, err)
		}
		return nil
	}
	var ltid Tid
	first := true
	end := pos // end of the transaction being checked, after its trailer
	for {
		if err := read(b[:8], end-TrailerLen); err != nil {
			return 0, err
		}
		tl := binary.BigEndian.Uint64(b[:8])
		if tl > uint64(end) || end-TrailerLen-int64(tl) < FileHeaderLen {
			return unusable(end-TrailerLen, "no transaction ends here")
		}
		tpos := end - TrailerLen - int64(tl)
		if tpos+TxnHeaderLen > size {
			return unusable(tpos, "no transaction ends here")
		}
		if err := read(b[:TxnHeaderLen], tpos); err != nil {
			return 0, err
		}
		h := ParseTxnHeader(b[:TxnHeaderLen])
		if first {
			ltid, first = h.Tid, false
		}
		if h.Len != int64(tl) {
			return unusable(tpos, "transaction length differs from its trailer")
		}
		end = tpos // the next step checks the transaction before this one
		if h.Status == StatusUndone {
			continue
		}
		if h.Status != StatusNormal && h.Status != StatusPacked {
			return unusable(tpos, fmt.Sprintf("transaction status %q", h.Status))
		}
		hl := h.HeaderLen()
		if h.Len < hl {
			return unusable(tpos, "transaction shorter than its header")
		}
		tend := tpos + h.Len
		dpos := tpos + hl
		if dpos == tend {
			continue // empty transaction: look further back
		}
		for n := 0; dpos < tend && n < saneRecords; n++ {
			if dpos+DataHeaderLen > tend {
				return unusable(dpos, "data record exceeds its transaction")
			}
			if err := read(b[:], dpos); err != nil {
				return 0, err
			}
			dh := ParseDataHeader(b[:])
			rl := dh.RecordLen()
			if dh.VersionLen != 0 || rl < 0 || dpos+rl > tend || dh.TxnPos != tpos {
				return unusable(dpos, "data record exceeds its transaction")
			}
			if at, ok := idx.Get(dh.Oid); !ok || at != dpos {
				return unusable(dpos, fmt.Sprintf("index entry of oid %s is not this record", dh.Oid))
			}
			dpos += rl
		}
		return ltid, nil
	}
}

// ScanIndexFrom continues FileStorage's open-time scan (ScanIndexReader)
// from start, the saved position of an index that passed CheckSavedIndex,
// with idx already holding the entries up to there and ltid the tid of the
// transaction that ends at start. Findings, errors and the ScanResult are
// those of a full scan from the beginning, except MaxOid, which covers only
// the records found after start.
//
// It runs ScanIndexReader itself, so that the two scans cannot drift apart,
// over a view of the file in which [4, start) reads as one undone
// transaction with tid ltid (a 23-byte header and, at start-8, its
// redundant length): the scan checks and skips it without indexing
// anything, and every later position is the file's own.
func ScanIndexFrom(f io.ReaderAt, size int64, name string, idx Index, start int64, ltid Tid, warn func(string)) (ScanResult, error) {
	if start == FileHeaderLen {
		return ScanIndexReader(f, size, name, idx, warn)
	}
	if start < FileHeaderLen+TxnHeaderLen+TrailerLen || start > size {
		return ScanResult{Truncate: -1}, fmt.Errorf("%s: cannot continue the scan at %d", name, start)
	}
	v := &skipView{f: f, start: start}
	h := TxnHeader{Tid: ltid, Len: start - TrailerLen - FileHeaderLen, Status: StatusUndone}
	h.AppendTo(v.head[:0])
	binary.BigEndian.PutUint64(v.trailer[:], uint64(h.Len))
	return ScanIndexReader(v, size, name, idx, warn)
}

// skipView is the file seen by ScanIndexFrom: its own bytes, except the
// header of a synthetic undone transaction at 4 and its trailer at
// start-8.
type skipView struct {
	f       io.ReaderAt
	start   int64
	head    [TxnHeaderLen]byte
	trailer [TrailerLen]byte
}

func (v *skipView) ReadAt(p []byte, off int64) (int, error) {
	n, err := v.f.ReadAt(p, off)
	overlay(p[:n], off, v.head[:], FileHeaderLen)
	overlay(p[:n], off, v.trailer[:], v.start-TrailerLen)
	return n, err
}

// overlay copies src, which belongs at file offset at, into the part of p
// (read from offset off) that it covers.
func overlay(p []byte, off int64, src []byte, at int64) {
	lo, hi := max(off, at), min(off+int64(len(p)), at+int64(len(src)))
	if lo < hi {
		copy(p[lo-off:hi-off], src[lo-at:hi-at])
	}
}
