// Package fsformat reads and writes ZODB FileStorage files (Data.fs), as
// specified in spec/filestorage.md: the 4-byte file header, transaction
// records, data records, backpointers and the TimeStamp encoding of tids.
//
// # Reading
//
//	f, err := fsformat.Open("Data.fs")      // checks the magic (FS30, or FS21 read-only)
//	defer f.Close()
//	for txn, err := range f.Transactions(fsformat.IterOptions{Warn: logf}) {
//		if err != nil { ... }                // damaged file: a *FormatError
//		for rec, err := range txn.Records() {
//			... rec.Oid, rec.Pos, rec.Data (inline pickle), rec.Back ...
//		}
//	}
//
// Transactions follows ZODB's FileIterator exactly (fsdump and the storage
// iterator are built on it): it stops at a checkpoint ('c') transaction, at
// a transaction that runs past the end of the file, at a redundant-length
// mismatch and at a header longer than its transaction; those, and tid
// reductions and invalid statuses, are reported through IterOptions.Warn with
// Python's message text, and are not errors. Status 'u' transactions are
// skipped. A partial header (1–22 bytes) at the end is an error.
//
// Buffers are reused: a *Txn and its User/Description/Extension are valid
// until the next transaction; a *DataRecord and its Data until the next
// record. Copy what you keep. Iteration reads through one large window
// buffer, so memory is bounded by the largest single record, never by a
// length field that points past the end of the file (lengths are checked
// against the file size first).
//
// A File is not safe for concurrent use (it owns its read buffers); open
// one per goroutine.
//
// TransactionsBackward walks from the end with the redundant lengths (what
// undoLog and fstail do). LoadRecord, LoadBack, LoadBefore and LoadSerial
// load object states by position, following backpointer chains; they check
// that every record in a chain belongs to the same oid and lies before the
// record pointing at it, so corrupt files cannot make them loop.
//
// # Writing
//
// Appender (append.go) is the only code that writes records: it appends
// transactions exactly as FileStorage's tpc_vote/tpc_finish do. Create makes
// a new file; OpenAppender scans an existing one (ScanIndex, FileStorage's
// read_index) and repairs an interrupted commit at its end as a writable
// FileStorage open does. LockStorage takes FileStorage's flock on
// Data.fs.lock, for writers that may run beside ZODB.
//
// # Verifying
//
// Verify (verify.go) is fstest.py: a sequential check with fstest's messages;
// VerifyOptions.Deep adds prev-pointer and backpointer checks fstest lacks.
// RawScan is the verbose Dumper's unvalidated walk. ScanIndex is
// FileStorage's index-building scan, with its warnings and fatal errors.
//
// Choices a newcomer may question: Oid and Tid are uint64 (not [8]byte)
// because they are compared and printed far more than they are sliced, and
// the byte order of the file makes the two orders agree. Positions are int64.
// The class name shown by fsdump is extracted here (ClassName) rather than by
// the full pickle machinery in fsformat/pickle, to keep the hot loop
// allocation-free and this package free of dependencies.
package fsformat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Magic numbers of the file header.
var (
	MagicFS30 = [4]byte{'F', 'S', '3', '0'}
	MagicFS21 = [4]byte{'F', 'S', '2', '1'}
)

// Fixed sizes of the on-disk structures.
const (
	FileHeaderLen = 4
	TxnHeaderLen  = 23 // >8sQcHHH
	DataHeaderLen = 42 // >8s8sQQHQ
	BackPtrLen    = 8
	TrailerLen    = 8 // the redundant tlen after each transaction
)

// Transaction status bytes.
const (
	StatusNormal     byte = ' '
	StatusPacked     byte = 'p'
	StatusCheckpoint byte = 'c'
	StatusUndone     byte = 'u'
)

// FormatError reports bad bytes in a file: which file, where, and what was
// expected.
type FormatError struct {
	File   string
	Offset int64
	Msg    string
}

func (e *FormatError) Error() string {
	if strings.HasPrefix(e.Msg, e.File+" ") {
		// FileStorage's own wording, which names file and offset itself
		// ("Data.fs has invalid transaction header at 34991").
		return e.Msg
	}
	return fmt.Sprintf("%s: at %d: %s", e.File, e.Offset, e.Msg)
}

// RecordError is a failure to read or decode the data record at Pos of
// File (a backpointer chain that breaks, a pickle that does not parse). The
// message names the file once even when Err names it too.
type RecordError struct {
	File string
	Pos  int64
	Oid  string // the oid as the reporting tool prints it; "" if unknown
	Err  error
}

func (e *RecordError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Oid != "" {
		b.WriteString(": oid ")
		b.WriteString(e.Oid)
	}
	fmt.Fprintf(&b, ": data record at %d: ", e.Pos)
	b.WriteString(strings.TrimPrefix(e.Err.Error(), e.File+": "))
	return b.String()
}

func (e *RecordError) Unwrap() error { return e.Err }

func formatErr(file string, off int64, format string, a ...any) *FormatError {
	return &FormatError{File: file, Offset: off, Msg: fmt.Sprintf(format, a...)}
}

// ErrNoData is returned when a backpointer chain ends in a zero backpointer:
// the object does not exist as of that revision (POSKeyError in Python).
var ErrNoData = errors.New("object has no data (creation undone or deleted)")

// TxnHeader mirrors the 23-byte transaction header.
type TxnHeader struct {
	Tid     Tid
	Len     int64 // tlen: from the start of the header up to, not including, the redundant length
	Status  byte
	UserLen uint16
	DescLen uint16
	ExtLen  uint16
}

// HeaderLen is 23 + the lengths of user, description and extension.
func (h *TxnHeader) HeaderLen() int64 {
	return TxnHeaderLen + int64(h.UserLen) + int64(h.DescLen) + int64(h.ExtLen)
}

// ParseTxnHeader decodes a transaction header from b (at least 23 bytes).
// tlen values ≥ 2^63 are reported as -1 so that callers' range checks fail.
func ParseTxnHeader(b []byte) TxnHeader {
	tl := binary.BigEndian.Uint64(b[8:16])
	l := int64(tl)
	if l < 0 {
		l = -1
	}
	return TxnHeader{
		Tid:     TidFromBytes(b[0:8]),
		Len:     l,
		Status:  b[16],
		UserLen: binary.BigEndian.Uint16(b[17:19]),
		DescLen: binary.BigEndian.Uint16(b[19:21]),
		ExtLen:  binary.BigEndian.Uint16(b[21:23]),
	}
}

// AppendTo appends the 23-byte encoding.
func (h *TxnHeader) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.Tid))
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.Len))
	dst = append(dst, h.Status)
	dst = binary.BigEndian.AppendUint16(dst, h.UserLen)
	dst = binary.BigEndian.AppendUint16(dst, h.DescLen)
	return binary.BigEndian.AppendUint16(dst, h.ExtLen)
}

// DataHeader mirrors the 42-byte data record header.
type DataHeader struct {
	Oid        Oid
	Tid        Tid
	Prev       int64 // position of the previous record of this oid, 0 if none
	TxnPos     int64 // tloc: position of the enclosing transaction
	VersionLen uint16
	DataLen    int64 // plen; -1 if the u64 does not fit an int64
}

// ParseDataHeader decodes a data record header from b (at least 42 bytes).
func ParseDataHeader(b []byte) DataHeader {
	h := DataHeader{
		Oid:        OidFromBytes(b[0:8]),
		Tid:        TidFromBytes(b[8:16]),
		Prev:       int64(binary.BigEndian.Uint64(b[16:24])),
		TxnPos:     int64(binary.BigEndian.Uint64(b[24:32])),
		VersionLen: binary.BigEndian.Uint16(b[32:34]),
		DataLen:    int64(binary.BigEndian.Uint64(b[34:42])),
	}
	if h.DataLen < 0 {
		h.DataLen = -1
	}
	return h
}

// AppendTo appends the 42-byte encoding.
func (h *DataHeader) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.Oid))
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.Tid))
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.Prev))
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.TxnPos))
	dst = binary.BigEndian.AppendUint16(dst, h.VersionLen)
	return binary.BigEndian.AppendUint64(dst, uint64(h.DataLen))
}

// RecordLen is the full record length: 42 + plen, or 42 + 8 for a
// backpointer record, plus the legacy version fields when VersionLen > 0.
// It is -1 when plen is absurd (does not fit an int64).
func (h *DataHeader) RecordLen() int64 {
	if h.DataLen < 0 || h.DataLen > 1<<62 {
		return -1
	}
	n := int64(DataHeaderLen) + h.DataLen
	if h.DataLen == 0 {
		n += BackPtrLen
	}
	if h.VersionLen > 0 {
		n += 16 + int64(h.VersionLen)
	}
	return n
}

// File is an open Data.fs, read-only.
type File struct {
	Name  string // the name it was opened with; used in messages
	Magic [4]byte
	f     io.ReaderAt
	osf   *os.File // nil when made by NewFile
	size  int64
	r     reader              // sequential window for iteration
	back  []byte              // scratch for LoadBack
	hdr   [DataHeaderLen]byte // scratch for header reads (avoids per-call allocation)
}

// Open opens a Data.fs for reading and checks its header: the file must
// hold at least the 4-byte magic, FS30 or FS21.
func Open(path string) (*File, error) {
	osf, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := osf.Stat()
	if err != nil {
		osf.Close()
		return nil, err
	}
	if st.IsDir() {
		osf.Close()
		return nil, fmt.Errorf("%s: is a directory", path)
	}
	f, err := NewFile(osf, st.Size(), path)
	if err != nil {
		osf.Close()
		return nil, err
	}
	f.osf = osf
	return f, nil
}

// NewFile reads a FileStorage from any io.ReaderAt of the given size (an
// *os.File, a bytes.Reader in tests); name is used in messages.
func NewFile(r io.ReaderAt, size int64, name string) (*File, error) {
	f := &File{Name: name, f: r, size: size}
	f.r.init(r, size)
	if size == 0 {
		return nil, formatErr(name, 0, "empty file (no FileStorage header)")
	}
	if size < FileHeaderLen {
		return nil, formatErr(name, 0, "file header truncated: %d bytes", size)
	}
	if _, err := r.ReadAt(f.Magic[:], 0); err != nil {
		return nil, fmt.Errorf("%s: reading header: %w", name, err)
	}
	if f.Magic != MagicFS30 && f.Magic != MagicFS21 {
		return nil, formatErr(name, 0, "invalid file header %q: not a FileStorage (expected FS30 or FS21)", f.Magic[:])
	}
	return f, nil
}

// Close closes the file (if Open opened it).
func (f *File) Close() error {
	if f.osf == nil {
		return nil
	}
	return f.osf.Close()
}

// Size is the file size measured at Open.
func (f *File) Size() int64 { return f.size }

// ReaderAt gives access to the underlying bytes (for other packages' reads).
func (f *File) ReaderAt() io.ReaderAt { return f.f }

// ReadTxnHeaderAt reads the transaction header at pos.
func (f *File) ReadTxnHeaderAt(pos int64) (TxnHeader, error) {
	b := f.hdr[:TxnHeaderLen]
	if pos < FileHeaderLen || pos+TxnHeaderLen > f.size {
		return TxnHeader{}, formatErr(f.Name, pos, "transaction header out of file bounds (size %d)", f.size)
	}
	if _, err := f.f.ReadAt(b[:], pos); err != nil {
		return TxnHeader{}, fmt.Errorf("%s: transaction at %d: %w", f.Name, pos, err)
	}
	return ParseTxnHeader(b[:]), nil
}

// ReadDataHeaderAt reads the data record header at pos.
func (f *File) ReadDataHeaderAt(pos int64) (DataHeader, error) {
	b := f.hdr[:]
	if pos < FileHeaderLen || pos+DataHeaderLen > f.size {
		return DataHeader{}, formatErr(f.Name, pos, "data record header out of file bounds (size %d)", f.size)
	}
	if _, err := f.f.ReadAt(b[:], pos); err != nil {
		return DataHeader{}, fmt.Errorf("%s: data record at %d: %w", f.Name, pos, err)
	}
	return ParseDataHeader(b[:]), nil
}

// ReadDataHeaderSeq is ReadDataHeaderAt (same checks and errors) reading
// through the File's sequential window instead of one pread per call: for
// walks over record positions in ascending order (the current records of an
// index, sorted), where consecutive records share the window. It must not
// be interleaved with an iteration of the same File.
func (f *File) ReadDataHeaderSeq(pos int64) (DataHeader, error) {
	if pos < FileHeaderLen || pos+DataHeaderLen > f.size {
		return DataHeader{}, formatErr(f.Name, pos, "data record header out of file bounds (size %d)", f.size)
	}
	b, err := f.r.at(pos, DataHeaderLen)
	if err == nil && len(b) < DataHeaderLen {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return DataHeader{}, fmt.Errorf("%s: data record at %d: %w", f.Name, pos, err)
	}
	return ParseDataHeader(b), nil
}

// InlineDataSeq returns the data the record at pos, whose header is h
// (from ReadDataHeaderSeq), holds inline, with LoadRecord's checks and
// errors: nil for a backpointer record (resolve it with LoadRecord). The
// slice points into the read window: valid until the next read through it.
func (f *File) InlineDataSeq(pos int64, h *DataHeader) ([]byte, error) {
	if h.VersionLen != 0 {
		return nil, formatErr(f.Name, pos, "data record with non-zero version length %d (versions are not supported)", h.VersionLen)
	}
	if h.DataLen == 0 {
		return nil, nil
	}
	if h.DataLen > f.size-pos-DataHeaderLen {
		return nil, formatErr(f.Name, pos, "data length %d runs past end of file", h.DataLen)
	}
	d, err := f.r.at(pos+DataHeaderLen, int(h.DataLen))
	if err == nil && int64(len(d)) < h.DataLen {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, fmt.Errorf("%s: data record at %d: %w", f.Name, pos, err)
	}
	return d, nil
}

// reader is a read window over the file for mostly-sequential access.
type reader struct {
	f    io.ReaderAt
	size int64
	buf  []byte
	off  int64 // file offset of buf[0]
	n    int   // valid bytes in buf
	big  []byte
	tiny [16]byte
}

const windowSize = 1 << 20

func (r *reader) init(f io.ReaderAt, size int64) {
	r.f, r.size = f, size
}

// at returns the bytes [pos, pos+n) of the file, fewer at EOF. The slice is
// valid until the next call. n must already be bounded by the file size.
func (r *reader) at(pos int64, n int) ([]byte, error) {
	if pos >= r.off && pos+int64(n) <= r.off+int64(r.n) {
		s := int(pos - r.off)
		return r.buf[s : s+n], nil
	}
	if pos >= r.size {
		return nil, nil
	}
	if rem := r.size - pos; int64(n) > rem {
		n = int(rem)
	}
	if r.buf == nil {
		r.buf = make([]byte, min(windowSize, max(r.size, 64)))
	}
	if n > len(r.buf) {
		if cap(r.big) < n {
			r.big = make([]byte, n)
		}
		b := r.big[:n]
		m, err := r.f.ReadAt(b, pos)
		if err != nil && err != io.EOF {
			return nil, err
		}
		return b[:m], nil
	}
	m, err := r.f.ReadAt(r.buf, pos)
	if err != nil && err != io.EOF {
		r.n = 0
		return nil, err
	}
	r.off, r.n = pos, m
	if n > m {
		n = m
	}
	return r.buf[:n], nil
}

// peek8 reads 8 bytes at pos without moving the window (one pread when
// outside it). ok is false when fewer than 8 bytes exist there.
func (r *reader) peek8(pos int64) (uint64, bool, error) {
	if pos >= r.off && pos+8 <= r.off+int64(r.n) {
		s := int(pos - r.off)
		return binary.BigEndian.Uint64(r.buf[s : s+8]), true, nil
	}
	if pos < 0 || pos+8 > r.size {
		return 0, false, nil
	}
	m, err := r.f.ReadAt(r.tiny[:8], pos)
	if m < 8 {
		if err == io.EOF {
			err = nil
		}
		return 0, false, err
	}
	return binary.BigEndian.Uint64(r.tiny[:8]), true, nil
}
