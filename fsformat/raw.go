package fsformat

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// RawVisitor receives what RawScan reads. Any callback may be nil.
type RawVisitor struct {
	// Magic gets the first (up to) 4 bytes of the file, whatever they are.
	Magic func(b []byte)
	// Txn gets each transaction header and its user, description and
	// extension bytes (shorter than declared if the file ends early).
	Txn func(pos int64, h *TxnHeader, user, desc, ext []byte)
	// Record gets each data record header; back is the backpointer when
	// h.DataLen == 0, or -1 when the walk stops at this record (a version
	// record, or a backpointer cut off by the end of the file): the Dumper
	// prints the fields it had read before failing there.
	Record func(pos int64, h *DataHeader, back int64)
	// TxnEnd gets the redundant length read after the records.
	TxnEnd func(rtl uint64)
}

// RawScan walks a file the way the verbose fsdump Dumper does: no magic
// check, no validation, no backpointer resolution; records are read while
// the position is below tpos+tlen, then the 8 bytes that follow are taken as
// the redundant length. Where the Dumper would crash (a partial header, a
// version record, a trailer cut short) RawScan stops with a *FormatError.
// name is used in errors.
func RawScan(r io.ReaderAt, size int64, name string, v RawVisitor) error {
	fp := int64(0)
	var small [DataHeaderLen]byte
	read := func(n int64, buf []byte) ([]byte, error) {
		if n > size-fp {
			n = size - fp
		}
		if n < 0 {
			n = 0
		}
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		b := buf[:n]
		m, err := r.ReadAt(b, fp)
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("%s: reading at %d: %w", name, fp, err)
		}
		fp += int64(m)
		return b[:m], nil
	}
	skip := func(n int64) {
		if n > size-fp {
			fp = size
		} else {
			fp += n
		}
	}
	m, err := read(4, small[:0])
	if err != nil {
		return err
	}
	if v.Magic != nil {
		v.Magic(m)
	}
	var meta []byte
	for {
		pos := fp
		hb, err := read(TxnHeaderLen, small[:0])
		if err != nil {
			return err
		}
		if len(hb) == 0 {
			return nil
		}
		if len(hb) < TxnHeaderLen {
			return formatErr(name, pos, "truncated transaction header: %d bytes, expected %d", len(hb), TxnHeaderLen)
		}
		h := ParseTxnHeader(hb)
		rawLen := binary.BigEndian.Uint64(hb[8:16]) // hb is reused below
		// Like the Dumper, walk records up to tpos+tlen even when that is
		// past the end of the file: the records that are there get printed.
		end := pos + h.Len
		if h.Len < 0 || end < pos {
			end = math.MaxInt64
		}
		metaLen := int64(h.UserLen) + int64(h.DescLen) + int64(h.ExtLen)
		meta, err = read(metaLen, meta)
		if err != nil {
			return err
		}
		cut := func(n int) []byte {
			if n > len(meta) {
				n = len(meta)
			}
			b := meta[:n]
			meta = meta[n:]
			return b
		}
		all := meta
		u := cut(int(h.UserLen))
		d := cut(int(h.DescLen))
		e := cut(int(h.ExtLen))
		meta = all
		if v.Txn != nil {
			v.Txn(pos, &h, u, d, e)
		}
		for fp < end {
			if fp >= size {
				return formatErr(name, pos, "transaction length %d runs past the end of the file (%d bytes)", rawLen, size)
			}
			dpos := fp
			db, err := read(DataHeaderLen, small[:0])
			if err != nil {
				return err
			}
			if len(db) < DataHeaderLen {
				return formatErr(name, dpos, "truncated data record header: %d bytes, expected %d", len(db), DataHeaderLen)
			}
			dh := ParseDataHeader(db)
			if dh.VersionLen != 0 {
				if v.Record != nil {
					v.Record(dpos, &dh, -1)
				}
				return formatErr(name, dpos, "data record with non-zero version length %d (versions are not supported)", dh.VersionLen)
			}
			var back int64
			if dh.DataLen != 0 {
				skip(int64(binary.BigEndian.Uint64(db[34:42]) & (1<<63 - 1)))
				if dh.DataLen < 0 {
					fp = size
				}
			} else {
				bb, err := read(8, small[:0])
				if err != nil {
					return err
				}
				if len(bb) < 8 {
					if v.Record != nil {
						v.Record(dpos, &dh, -1)
					}
					return formatErr(name, dpos+DataHeaderLen, "truncated backpointer")
				}
				back = int64(binary.BigEndian.Uint64(bb))
			}
			if v.Record != nil {
				v.Record(dpos, &dh, back)
			}
		}
		tb, err := read(8, small[:0])
		if err != nil {
			return err
		}
		if len(tb) < 8 {
			return formatErr(name, fp-int64(len(tb)), "truncated redundant transaction length")
		}
		if v.TxnEnd != nil {
			v.TxnEnd(binary.BigEndian.Uint64(tb))
		}
	}
}
