package fsformat

import (
	"encoding/binary"
	"fmt"
	"iter"
)

// IterOptions configures Transactions.
type IterOptions struct {
	// Start is the position of the first transaction (0 means 4, the first
	// one). It must be a transaction boundary.
	Start int64
	// DataLimit, if > 0, caps how much of each record's data Records loads:
	// DataRecord.Data then holds at most DataLimit bytes (DataLen is still
	// the full length; see DataRecord.Truncated). For tools that only look
	// at the start of a pickle (fsdump's class), so memory stays bounded by
	// the limit instead of the largest record.
	DataLimit int
	// Warn receives the warnings ZODB's FileIterator logs, with Python's
	// text (fsdump prints them on stderr), e.g. "Data.fs time-stamp
	// reduction at 166". Nil drops them.
	Warn func(msg string)
}

// Txn is one transaction as seen by the iterators. Reused between steps.
type Txn struct {
	TxnHeader
	Pos         int64  // position of the transaction header (tpos)
	User        []byte // raw bytes, valid until the next transaction
	Description []byte
	Extension   []byte // the extension pickle, empty for an empty dict

	file      *File
	warn      func(string)
	dataLimit int
	rec       DataRecord

	userBuf, descBuf, extBuf []byte
}

// DataPos is the position of the first data record (tpos + header length);
// fsdump prints it as offset=.
func (t *Txn) DataPos() int64 { return t.Pos + t.HeaderLen() }

// End is tpos + tlen: the position of the redundant length.
func (t *Txn) End() int64 { return t.Pos + t.Len }

// Next is the position of the following transaction.
func (t *Txn) Next() int64 { return t.Pos + t.Len + TrailerLen }

// DataRecord is one data record. Reused between steps.
type DataRecord struct {
	DataHeader
	Pos  int64  // position of the record
	Back int64  // backpointer, meaningful when DataLen == 0 (0: no data)
	Data []byte // the inline pickle when DataLen > 0; valid until the next record
}

// Truncated tells whether Data holds less than the record's data
// (IterOptions.DataLimit).
func (r *DataRecord) Truncated() bool { return int64(len(r.Data)) < r.DataLen }

// IsBackpointer tells whether the record holds no data of its own.
func (r *DataRecord) IsBackpointer() bool { return r.DataLen == 0 }

// Transactions iterates over the transactions in file order with ZODB's
// FileIterator semantics (see the package doc). The error, if any, is the
// last value yielded.
func (f *File) Transactions(opt IterOptions) iter.Seq2[*Txn, error] {
	return func(yield func(*Txn, error) bool) {
		warn := opt.Warn
		if warn == nil {
			warn = func(string) {}
		}
		pos := opt.Start
		if pos == 0 {
			pos = FileHeaderLen
		}
		t := &Txn{file: f, warn: warn, dataLimit: opt.DataLimit}
		var ltid Tid
		for {
			b, err := f.r.at(pos, TxnHeaderLen)
			if err != nil {
				yield(nil, fmt.Errorf("%s: transaction at %d: %w", f.Name, pos, err))
				return
			}
			if len(b) == 0 {
				return
			}
			if len(b) < TxnHeaderLen {
				yield(nil, formatErr(f.Name, pos, "truncated transaction header: %d bytes left, expected %d", len(b), TxnHeaderLen))
				return
			}
			t.TxnHeader = ParseTxnHeader(b)
			t.Pos = pos
			h := &t.TxnHeader
			if h.Tid <= ltid {
				warn(fmt.Sprintf("%s time-stamp reduction at %d", f.Name, pos))
			}
			ltid = h.Tid
			if h.Status == StatusCheckpoint {
				return
			}
			if h.Len < 0 || h.Len > f.size || pos+h.Len+TrailerLen > f.size {
				warn(fmt.Sprintf("%s truncated, possibly due to damaged records at %d", f.Name, pos))
				return
			}
			if h.Status != StatusNormal && h.Status != StatusUndone && h.Status != StatusPacked {
				warn(fmt.Sprintf("%s has invalid status, %s, at %d", f.Name, string(rune(h.Status)), pos))
			}
			if h.Len < h.HeaderLen() {
				rtl, ok, err := f.r.peek8(f.size - 8)
				if err != nil {
					yield(nil, fmt.Errorf("%s: reading trailer: %w", f.Name, err))
					return
				}
				if !ok || f.size-int64(rtl) < pos || rtl < TxnHeaderLen || int64(rtl) < 0 {
					warn(fmt.Sprintf("%s has invalid transaction header at %d", f.Name, pos))
					warn(fmt.Sprintf("It appears that there is invalid data at the end of the file, possibly due to a system crash.  %s truncated to recover from bad data at end.", f.Name))
				} else {
					warn(fmt.Sprintf("%s has invalid transaction header at %d", f.Name, pos))
				}
				return
			}
			tend := pos + h.Len
			rtl, ok, err := f.r.peek8(tend)
			if err != nil {
				yield(nil, fmt.Errorf("%s: transaction at %d: %w", f.Name, pos, err))
				return
			}
			if !ok || int64(rtl) != h.Len {
				warn(fmt.Sprintf("%s redundant transaction length check failed at %d", f.Name, tend))
				return
			}
			if h.Status == StatusUndone {
				pos = tend + TrailerLen
				continue
			}
			if err := t.loadMeta(); err != nil {
				yield(nil, err)
				return
			}
			if !yield(t, nil) {
				return
			}
			pos = tend + TrailerLen
		}
	}
}

// loadMeta copies user, description and extension into the Txn's buffers.
func (t *Txn) loadMeta() error {
	n := int(t.HeaderLen() - TxnHeaderLen)
	b, err := t.file.r.at(t.Pos+TxnHeaderLen, n)
	if err != nil {
		return fmt.Errorf("%s: transaction at %d: %w", t.file.Name, t.Pos, err)
	}
	if len(b) < n {
		return formatErr(t.file.Name, t.Pos, "transaction header runs past end of file")
	}
	u, d := int(t.UserLen), int(t.DescLen)
	t.userBuf = append(t.userBuf[:0], b[:u]...)
	t.descBuf = append(t.descBuf[:0], b[u:u+d]...)
	t.extBuf = append(t.extBuf[:0], b[u+d:]...)
	t.User, t.Description, t.Extension = t.userBuf, t.descBuf, t.extBuf
	return nil
}

// Records iterates over the transaction's data records with FileIterator
// semantics: a record whose tloc is wrong or that overruns the transaction
// ends the iteration with the warning "<file> data record exceeds
// transaction record at <pos>"; a record header cut short or a version
// record is an error.
func (t *Txn) Records() iter.Seq2[*DataRecord, error] {
	return func(yield func(*DataRecord, error) bool) {
		f := t.file
		tend := t.End()
		pos := t.DataPos()
		r := &t.rec
		for pos < tend {
			b, err := f.r.at(pos, DataHeaderLen)
			if err != nil {
				yield(nil, fmt.Errorf("%s: data record at %d: %w", f.Name, pos, err))
				return
			}
			if len(b) < DataHeaderLen {
				yield(nil, formatErr(f.Name, pos, "truncated data record header: %d bytes, expected %d", len(b), DataHeaderLen))
				return
			}
			r.DataHeader = ParseDataHeader(b)
			r.Pos = pos
			if r.VersionLen != 0 {
				yield(nil, formatErr(f.Name, pos, "data record with non-zero version length %d (versions are not supported)", r.VersionLen))
				return
			}
			rl := r.RecordLen()
			if rl < 0 || pos+rl > tend || r.TxnPos != t.Pos {
				t.warn(fmt.Sprintf("%s data record exceeds transaction record at %d", f.Name, pos))
				return
			}
			r.Back = 0
			r.Data = nil
			if r.DataLen > 0 {
				want := r.DataLen
				if t.dataLimit > 0 && want > int64(t.dataLimit) {
					want = int64(t.dataLimit)
				}
				d, err := f.r.at(pos+DataHeaderLen, int(want))
				if err != nil {
					yield(nil, fmt.Errorf("%s: data record at %d: %w", f.Name, pos, err))
					return
				}
				if int64(len(d)) < want {
					yield(nil, formatErr(f.Name, pos, "data runs past end of file"))
					return
				}
				r.Data = d
			} else {
				bp, ok, err := f.r.peek8(pos + DataHeaderLen)
				if err != nil || !ok {
					yield(nil, formatErr(f.Name, pos, "cannot read backpointer"))
					return
				}
				r.Back = int64(bp)
			}
			if !yield(r, nil) {
				return
			}
			pos += rl
		}
	}
}

// TransactionsBackward walks from the end of the data (end, 0 means the end
// of the file) towards the start using the redundant lengths, checking that
// each redundant length agrees with its header. Records() works on the
// yielded transactions as in forward iteration.
func (f *File) TransactionsBackward(end int64) iter.Seq2[*Txn, error] {
	return func(yield func(*Txn, error) bool) {
		if end == 0 {
			end = f.size
		}
		t := &Txn{file: f, warn: func(string) {}}
		pos := end
		for pos > FileHeaderLen {
			if pos < FileHeaderLen+TxnHeaderLen+TrailerLen {
				yield(nil, formatErr(f.Name, pos, "no room for a transaction before this position"))
				return
			}
			tl, ok, err := f.r.peek8(pos - TrailerLen)
			if err != nil || !ok {
				yield(nil, formatErr(f.Name, pos-TrailerLen, "cannot read redundant transaction length"))
				return
			}
			tpos := pos - TrailerLen - int64(tl)
			if tl > uint64(pos) || int64(tl) < TxnHeaderLen || tpos < FileHeaderLen {
				yield(nil, formatErr(f.Name, pos-TrailerLen, "redundant transaction length %d points before the start of the file", tl))
				return
			}
			hb := f.hdr[:TxnHeaderLen]
			if _, err := f.f.ReadAt(hb, tpos); err != nil {
				yield(nil, fmt.Errorf("%s: transaction at %d: %w", f.Name, tpos, err))
				return
			}
			t.TxnHeader = ParseTxnHeader(hb)
			t.Pos = tpos
			if t.Len != int64(tl) {
				yield(nil, formatErr(f.Name, tpos, "transaction length %d does not match redundant length %d at %d", t.Len, tl, pos-TrailerLen))
				return
			}
			if t.HeaderLen() > t.Len {
				yield(nil, formatErr(f.Name, tpos, "invalid transaction header: header length %d > transaction length %d", t.HeaderLen(), t.Len))
				return
			}
			if err := t.loadMeta(); err != nil {
				yield(nil, err)
				return
			}
			if !yield(t, nil) {
				return
			}
			pos = tpos
		}
	}
}

// LoadBack resolves a backpointer chain starting at back (Python's
// _loadBack_impl with fail=False): it returns the data of the first record
// in the chain that has data, that record's tid and position. A chain that
// ends in a zero backpointer gives ErrNoData (with the tid and position of
// the last record visited, zero if back itself is 0). Every record must
// belong to oid and lie before the one pointing at it.
// The returned data is valid until the next Load* call on f.
func (f *File) LoadBack(oid Oid, back int64) (data []byte, tid Tid, pos int64, err error) {
	data, _, tid, pos, err = f.LoadBackPrefix(oid, back, -1)
	return data, tid, pos, err
}

// LoadBackPrefix is LoadBack reading at most limit bytes of the data (all
// of it if limit < 0); dataLen is the full length. Tools that only need the
// size and the class (fsdump) stay bounded in memory whatever the record
// sizes.
func (f *File) LoadBackPrefix(oid Oid, back int64, limit int) (data []byte, dataLen int64, tid Tid, pos int64, err error) {
	from := f.size
	for {
		if back == 0 {
			return nil, 0, tid, pos, ErrNoData
		}
		if back < FileHeaderLen || back >= from {
			return nil, 0, 0, 0, formatErr(f.Name, back, "invalid backpointer for oid %s (must be before %d)", oid, from)
		}
		h, err := f.ReadDataHeaderAt(back)
		if err != nil {
			return nil, 0, 0, 0, err
		}
		if h.Oid != oid {
			return nil, 0, 0, 0, formatErr(f.Name, back, "backpointer for oid %s leads to a record of oid %s", oid, h.Oid)
		}
		if h.VersionLen != 0 {
			return nil, 0, 0, 0, formatErr(f.Name, back, "backpointer for oid %s leads to a version record", oid)
		}
		tid, pos = h.Tid, back
		if h.DataLen > 0 {
			if h.DataLen > f.size-back-DataHeaderLen {
				return nil, 0, 0, 0, formatErr(f.Name, back, "data length %d runs past end of file", h.DataLen)
			}
			n := h.DataLen
			if limit >= 0 && n > int64(limit) {
				n = int64(limit)
			}
			if int64(cap(f.back)) < n {
				f.back = make([]byte, n)
			}
			d := f.back[:n]
			if _, err := f.f.ReadAt(d, back+DataHeaderLen); err != nil {
				return nil, 0, 0, 0, fmt.Errorf("%s: data record at %d: %w", f.Name, back, err)
			}
			return d, h.DataLen, tid, pos, nil
		}
		bb := f.hdr[:8]
		if _, err := f.f.ReadAt(bb, back+DataHeaderLen); err != nil {
			return nil, 0, 0, 0, formatErr(f.Name, back, "cannot read backpointer")
		}
		from = back
		back = int64(binary.BigEndian.Uint64(bb))
	}
}

// LoadRecord loads the object state of the data record at pos (typically
// an index entry): the resolved data and the record's own tid (the tid of
// the current revision, as load() returns). ErrNoData for a deletion or
// undone creation.
func (f *File) LoadRecord(pos int64) (data []byte, h DataHeader, err error) {
	h, err = f.ReadDataHeaderAt(pos)
	if err != nil {
		return nil, h, err
	}
	if h.VersionLen != 0 {
		return nil, h, formatErr(f.Name, pos, "data record with non-zero version length %d (versions are not supported)", h.VersionLen)
	}
	if h.DataLen > 0 {
		if h.DataLen > f.size-pos-DataHeaderLen {
			return nil, h, formatErr(f.Name, pos, "data length %d runs past end of file", h.DataLen)
		}
		n := int(h.DataLen)
		if cap(f.back) < n {
			f.back = make([]byte, n)
		}
		d := f.back[:n]
		if _, err := f.f.ReadAt(d, pos+DataHeaderLen); err != nil {
			return nil, h, fmt.Errorf("%s: data record at %d: %w", f.Name, pos, err)
		}
		return d, h, nil
	}
	bb := f.hdr[:8]
	if _, err := f.f.ReadAt(bb, pos+DataHeaderLen); err != nil {
		return nil, h, formatErr(f.Name, pos, "cannot read backpointer")
	}
	back := int64(binary.BigEndian.Uint64(bb))
	if back != 0 && back >= pos {
		return nil, h, formatErr(f.Name, pos, "invalid back pointer %d", back)
	}
	data, _, _, err = f.LoadBack(h.Oid, back)
	return data, h, err
}

// LoadSerial loads the revision of the oid whose current record is at pos
// that was written by transaction serial, walking the prev chain.
func (f *File) LoadSerial(pos int64, serial Tid) (data []byte, err error) {
	for pos != 0 {
		h, err := f.ReadDataHeaderAt(pos)
		if err != nil {
			return nil, err
		}
		if h.Tid == serial {
			data, _, err := f.LoadRecord(pos)
			return data, err
		}
		if h.Tid < serial {
			break
		}
		if h.Prev >= pos {
			return nil, formatErr(f.Name, pos, "invalid previous pointer %d", h.Prev)
		}
		pos = h.Prev
	}
	return nil, ErrNoData
}

// LoadBefore loads the newest revision older than before of the oid whose
// current record is at pos (loadBefore): its data, its tid and the tid of
// the revision that replaced it (0 if current). ErrNoData if there is none.
func (f *File) LoadBefore(pos int64, before Tid) (data []byte, tid, end Tid, err error) {
	for pos != 0 {
		h, err := f.ReadDataHeaderAt(pos)
		if err != nil {
			return nil, 0, 0, err
		}
		if h.Tid < before {
			data, _, err := f.LoadRecord(pos)
			return data, h.Tid, end, err
		}
		end = h.Tid
		if h.Prev >= pos {
			return nil, 0, 0, formatErr(f.Name, pos, "invalid previous pointer %d", h.Prev)
		}
		pos = h.Prev
	}
	return nil, 0, 0, ErrNoData
}
