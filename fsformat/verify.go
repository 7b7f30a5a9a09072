package fsformat

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"os"
	"strconv"

	"github.com/zodbctl/zodbctl/fsformat/pyrepr"
)

// VerifyError is a problem found by Verify. Msg is fstest.py's exact text
// (e.g. "Data.fs truncated at 166"); Offset is where it was found.
type VerifyError struct {
	Offset int64
	Msg    string
}

func (e *VerifyError) Error() string { return e.Msg }

// VerifyOptions receives progress, in fstest's order: each data record as
// it is checked, then its transaction once fully checked (trailer included).
type VerifyOptions struct {
	Record      func(pos int64, h *DataHeader, i int)
	Transaction func(pos int64, h *TxnHeader, i int)
	// Deep adds checks fstest does not make (filestorage.md §15.21): every
	// non-zero prev pointer must be the position of the oid's previous
	// record (as FileStorage's index scan expects; prev 0 is accepted, as
	// pack writes it), and every backpointer must point before its record to
	// a record of the same oid. It keeps an oid → position map in memory.
	Deep bool
}

// Verify checks a Data.fs sequentially like fstest.py: magic, every
// transaction header (tid order, status, lengths, redundant length) and every
// data record header (tloc, extent). It does not check prev pointers,
// backpointers or pickles. path is used verbatim in messages. The first
// problem is returned as a *VerifyError; I/O failures as other errors.
func Verify(path string, opt VerifyOptions) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s: is a directory", path)
	}
	return VerifyReader(f, st.Size(), path, opt)
}

// VerifyReader is Verify on any io.ReaderAt of the given size.
func VerifyReader(f io.ReaderAt, size int64, path string, opt VerifyOptions) error {
	if size == 0 {
		return &VerifyError{0, "empty file"}
	}
	var magic [4]byte
	if n, _ := f.ReadAt(magic[:], 0); n < 4 || magic != MagicFS30 {
		return &VerifyError{0, "invalid file header"}
	}
	var r reader
	r.init(f, size)
	pos := int64(FileHeaderLen)
	var ltid Tid
	var h TxnHeader // reused: the callbacks get pointers to these
	var dh DataHeader
	var index map[Oid]int64 // Deep: committed position of each oid
	var pending []oidPos    // Deep: this transaction's records
	var scratch [DataHeaderLen]byte
	if opt.Deep {
		index = map[Oid]int64{}
	}
	for i := 0; ; i++ {
		b, err := r.at(pos, TxnHeaderLen)
		if err != nil {
			return fmt.Errorf("%s: transaction at %d: %w", path, pos, err)
		}
		if len(b) == 0 {
			return nil
		}
		if len(b) < TxnHeaderLen {
			return &VerifyError{pos, fmt.Sprintf("%s truncated at %d", path, pos)}
		}
		h = ParseTxnHeader(b)
		tl := binary.BigEndian.Uint64(b[8:16])
		if h.Tid <= ltid {
			return &VerifyError{pos, fmt.Sprintf("%s time-stamp reduction at %d: %s <= %s", path, pos, h.Tid.Hexify(), ltid.Hexify())}
		}
		ltid = h.Tid
		if tl > uint64(size) || pos+int64(tl)+TrailerLen > size {
			return &VerifyError{pos, fmt.Sprintf("%s truncated possibly because of damaged records at %d", path, pos)}
		}
		if h.Status == StatusCheckpoint {
			return &VerifyError{pos, fmt.Sprintf("%s checkpoint flag was not cleared at %d", path, pos)}
		}
		if h.Status != StatusNormal && h.Status != StatusUndone && h.Status != StatusPacked {
			return &VerifyError{pos, fmt.Sprintf("%s has invalid status '%s' at %d", path, pyrepr.Bytes([]byte{h.Status}), pos)}
		}
		if h.HeaderLen() > h.Len {
			return &VerifyError{pos, fmt.Sprintf("%s has an invalid transaction header at %d", path, pos)}
		}
		tpos := pos
		tend := tpos + h.Len
		if h.Status != StatusUndone {
			pos = tpos + h.HeaderLen()
			for j := 0; pos < tend; j++ {
				b, err := r.at(pos, DataHeaderLen)
				if err != nil {
					return fmt.Errorf("%s: data record at %d: %w", path, pos, err)
				}
				if len(b) < DataHeaderLen {
					return &VerifyError{pos, fmt.Sprintf("%s truncated at %d", path, pos)}
				}
				dh = ParseDataHeader(b)
				plen := binary.BigEndian.Uint64(b[34:42])
				if dh.TxnPos != tpos || binary.BigEndian.Uint64(b[24:32]) > 1<<63-1 {
					return &VerifyError{pos, fmt.Sprintf("%s data record exceeds transaction record at %d: tloc %d != tpos %d",
						path, pos, binary.BigEndian.Uint64(b[24:32]), tpos)}
				}
				// dlen = 42 + (plen or 8) [+ 16 + vlen]; may exceed int64.
				extra := uint64(BackPtrLen)
				if plen != 0 {
					extra = plen
				}
				fixed := uint64(DataHeaderLen)
				if dh.VersionLen > 0 {
					fixed += 16 + uint64(dh.VersionLen)
				}
				if extra > uint64(tend-pos) || uint64(pos)+fixed+extra > uint64(tend) {
					end := new(big.Int).SetUint64(uint64(pos) + fixed)
					end.Add(end, new(big.Int).SetUint64(extra))
					return &VerifyError{pos, fmt.Sprintf("%s has data records that extend beyond the transaction record; end at %s", path, end.String())}
				}
				if opt.Deep && dh.VersionLen == 0 {
					if err := verifyPointers(f, path, pos, &dh, plen, index, scratch[:]); err != nil {
						return err
					}
					pending = append(pending, oidPos{dh.Oid, pos})
				}
				if opt.Record != nil {
					opt.Record(pos, &dh, j)
				}
				pos += int64(fixed + extra)
			}
		}
		rtl, ok, err := r.peek8(tend)
		if err != nil {
			return fmt.Errorf("%s: transaction at %d: %w", path, tpos, err)
		}
		if !ok || rtl != tl {
			return &VerifyError{pos, fmt.Sprintf("%s has inconsistent transaction length for undone transaction at %d", path, pos)}
		}
		for _, p := range pending {
			index[p.oid] = p.pos
		}
		pending = pending[:0]
		if opt.Transaction != nil {
			opt.Transaction(tpos, &h, i)
		}
		pos = tend + TrailerLen
	}
}

// AppendVerifyTxnLine renders fstest's -v/-vv lines (for callers that print them).
func AppendVerifyTxnLine(dst []byte, pos int64, tid Tid, i int) []byte {
	dst = appendPadded(dst, pos, 10)
	dst = append(dst, ": transaction tid 0x"...)
	dst = appendHex16(dst, uint64(tid))
	dst = append(dst, " #"...)
	dst = strconv.AppendInt(dst, int64(i), 10)
	return append(dst, " \n"...)
}

// AppendVerifyRecordLine renders fstest's -vv record line.
func AppendVerifyRecordLine(dst []byte, pos int64, oid Oid, i int) []byte {
	dst = appendPadded(dst, pos, 10)
	dst = append(dst, ": object oid 0x"...)
	dst = appendHex16(dst, uint64(oid))
	dst = append(dst, " #"...)
	dst = strconv.AppendInt(dst, int64(i), 10)
	return append(dst, '\n')
}

func appendPadded(dst []byte, v int64, width int) []byte {
	var b [24]byte
	s := strconv.AppendInt(b[:0], v, 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, ' ')
	}
	return append(dst, s...)
}

// verifyPointers makes the Deep checks for the data record at pos.
func verifyPointers(f io.ReaderAt, path string, pos int64, dh *DataHeader, plen uint64, index map[Oid]int64, scratch []byte) error {
	if dh.Prev != 0 {
		if want := index[dh.Oid]; dh.Prev != want {
			return &VerifyError{pos, fmt.Sprintf("%s incorrect previous pointer at %d: %d, the previous record of oid %s is at %d",
				path, pos, uint64(dh.Prev), dh.Oid.Hexify(), want)}
		}
	}
	if plen != 0 {
		return nil
	}
	if _, err := f.ReadAt(scratch[:8], pos+DataHeaderLen); err != nil {
		return fmt.Errorf("%s: data record at %d: %w", path, pos, err)
	}
	back := binary.BigEndian.Uint64(scratch[:8])
	if back == 0 {
		return nil
	}
	if back >= uint64(pos) || back < FileHeaderLen {
		return &VerifyError{pos, fmt.Sprintf("%s invalid back pointer at %d: %d does not point before the record", path, pos, back)}
	}
	if n, _ := f.ReadAt(scratch[:DataHeaderLen], int64(back)); n < DataHeaderLen {
		return &VerifyError{pos, fmt.Sprintf("%s invalid back pointer at %d: %d is not a data record", path, pos, back)}
	}
	bh := ParseDataHeader(scratch[:DataHeaderLen])
	if bh.Oid != dh.Oid || bh.VersionLen != 0 || bh.Tid >= dh.Tid {
		return &VerifyError{pos, fmt.Sprintf("%s invalid back pointer at %d: %d is not an earlier record of oid %s", path, pos, back, dh.Oid.Hexify())}
	}
	return nil
}
