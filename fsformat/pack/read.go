package pack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/zodbctl/zodbctl/fsformat"
)

// CorruptedError is FileStorage's CorruptedError raised by the packer:
// "<file>:<pos>:<message>".
type CorruptedError struct {
	File string
	Pos  int64
	Msg  string
}

func (e *CorruptedError) Error() string { return fmt.Sprintf("%s:%d:%s", e.File, e.Pos, e.Msg) }

// window is a sequential read-ahead buffer over the input. A slice returned
// by at is valid until the next call.
type window struct {
	r    io.ReaderAt
	size int64
	buf  []byte
	off  int64
	n    int
	big  []byte
}

const windowSize = 4 << 20

func newWindow(r io.ReaderAt, size int64) *window {
	return &window{r: r, size: size, buf: make([]byte, windowSize)}
}

func (w *window) at(pos int64, n int) ([]byte, error) {
	if pos >= w.off && pos+int64(n) <= w.off+int64(w.n) {
		return w.buf[pos-w.off : pos-w.off+int64(n)], nil
	}
	if pos < 0 || n < 0 || pos+int64(n) > w.size {
		return nil, io.ErrUnexpectedEOF
	}
	if n > len(w.buf) {
		// A record larger than the window: read it on its own.
		if cap(w.big) < n {
			w.big = make([]byte, n)
		}
		b := w.big[:n]
		if _, err := w.r.ReadAt(b, pos); err != nil {
			return nil, err
		}
		return b, nil
	}
	m := int64(len(w.buf))
	if w.size-pos < m {
		m = w.size - pos
	}
	if _, err := w.r.ReadAt(w.buf[:m], pos); err != nil && err != io.EOF {
		return nil, err
	}
	w.off, w.n = pos, int(m)
	return w.buf[:n], nil
}

// record is a data record header as the packer reads it.
type record struct {
	fsformat.DataHeader
	back int64 // when DataLen == 0
}

func (r *record) len() int64 {
	if r.DataLen == 0 {
		return fsformat.DataHeaderLen + 8
	}
	return fsformat.DataHeaderLen + r.DataLen
}

// scanner walks transactions with the packer's checks (checkTxn, checkData:
// pack.md §2.1), sharing the running last tid between passes as fspack's GC
// does.
type scanner struct {
	name string
	w    *window
	end  int64 // end of the committed data (the file size until a tail is cut)
	tail string
	ltid fsformat.Tid
}

var errTail = errors.New("incomplete tail")

func (s *scanner) cut(pos int64, why string) error {
	s.end, s.tail = pos, fmt.Sprintf("%s: ignored an incomplete tail of %d bytes: %s", s.name, s.w.size-pos, why)
	return errTail
}

func (s *scanner) fail(pos int64, format string, args ...any) error {
	return &CorruptedError{File: s.name, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// txn reads and checks the transaction header at pos.
//
// An incomplete tail — a partial header, an interrupted commit (status
// 'c'), a transaction running past the end of the file — is where a
// writable FileStorage open would cut the file: txn then sets s.end to pos,
// records why in s.tail and returns errTail.
func (s *scanner) txn(pos int64) (fsformat.TxnHeader, error) {
	if s.w.size-pos < fsformat.TxnHeaderLen {
		return fsformat.TxnHeader{}, s.cut(pos, fmt.Sprintf("partial transaction header (%d bytes) at %d", s.w.size-pos, pos))
	}
	b, err := s.w.at(pos, fsformat.TxnHeaderLen)
	if err != nil {
		return fsformat.TxnHeader{}, fmt.Errorf("%s: transaction at %d: %w", s.name, pos, err)
	}
	th := fsformat.ParseTxnHeader(b)
	if th.Status == fsformat.StatusCheckpoint {
		return th, s.cut(pos, fmt.Sprintf("interrupted commit (status 'c') at %d", pos))
	}
	if th.Len < 0 || th.Len > s.w.size-pos-fsformat.TrailerLen {
		return th, s.cut(pos, fmt.Sprintf("transaction at %d runs past the end of the file", pos))
	}
	if th.Tid <= s.ltid {
		return th, s.fail(pos, "time-stamp reduction: %s <= %s", th.Tid.Hexify(), s.ltid.Hexify())
	}
	s.ltid = th.Tid
	switch th.Status {
	case fsformat.StatusNormal, fsformat.StatusPacked, fsformat.StatusUndone:
	default:
		return th, s.fail(pos, "invalid transaction status: %q", th.Status)
	}
	if th.Len < th.HeaderLen() {
		return th, s.fail(pos, "invalid transaction header: txnlen (%d) < headerlen(%d)", th.Len, th.HeaderLen())
	}
	return th, nil
}

// data reads and checks the data record header at pos of the transaction
// at tpos.
func (s *scanner) data(tpos int64, th *fsformat.TxnHeader, pos int64, r *record) error {
	b, err := s.w.at(pos, fsformat.DataHeaderLen)
	if err != nil {
		return fmt.Errorf("%s: data record at %d: %w", s.name, pos, err)
	}
	r.DataHeader = fsformat.ParseDataHeader(b)
	r.back = 0
	if r.VersionLen != 0 {
		return s.fail(pos, "data record with a version (not supported)")
	}
	if r.DataLen < 0 {
		return s.fail(pos, "data record size exceeds transaction size")
	}
	if r.DataLen == 0 {
		if pos+fsformat.DataHeaderLen+8 > tpos+th.Len {
			return s.fail(pos, "data record size exceeds transaction size: %d > %d", pos+r.len(), tpos+th.Len)
		}
		bb, err := s.w.at(pos+fsformat.DataHeaderLen, 8)
		if err != nil {
			return fmt.Errorf("%s: data record at %d: %w", s.name, pos, err)
		}
		r.back = int64(binary.BigEndian.Uint64(bb))
	}
	if r.TxnPos != tpos {
		return s.fail(pos, "data record does not point to transaction header: %d != %d", r.TxnPos, tpos)
	}
	if r.DataLen > tpos+th.Len-pos-fsformat.DataHeaderLen {
		return s.fail(pos, "data record size exceeds transaction size: %d > %d", pos+r.len(), tpos+th.Len)
	}
	if r.Prev < 0 || r.Prev >= pos {
		return s.fail(pos, "invalid previous pointer: %d", uint64(r.Prev))
	}
	if r.back < 0 || r.back >= pos && r.back != 0 {
		return s.fail(pos, "invalid back pointer: %d", uint64(r.Prev))
	}
	return nil
}

// trailer checks the redundant length at the end of a transaction.
func (s *scanner) trailer(pos int64, th *fsformat.TxnHeader) error {
	b, err := s.w.at(pos, 8)
	if err != nil {
		return fmt.Errorf("%s: transaction trailer at %d: %w", s.name, pos, err)
	}
	if tl := int64(binary.BigEndian.Uint64(b)); tl != th.Len {
		return s.fail(pos, "redundant transaction length does not match initial transaction length: %d != %d", tl, th.Len)
	}
	return nil
}
