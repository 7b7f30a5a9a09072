// Package fsstore is the FileStorage-backed zeowire.Storage that
// `zodbctl serve` uses for a zeo.conf <filestorage> section: the Data.fs
// written and read exactly as ZODB's FileStorage does (spec filestorage.md
// §10–13), so that Python tools and a Python ZEO server can take the file
// over at any time.
//
// Open takes FileStorage's lock (Data.fs.lock) and loads the oid index as
// FileStorage does (spec fsindex.md §5, filestorage.md §10): a saved
// Data.fs.index that passes FileStorage's sanity check is trusted up to its
// saved position and only the rest of the file is scanned
// (fsformat.OpenAppenderAt), which also covers a kill -9 after more commits
// (the index is older than the file); otherwise the whole file is scanned
// (fsformat.OpenAppender) and the index saved at once. Either way an
// incomplete trailing transaction is cut into Data.fs.trN as a writable
// FileStorage open does. One check is added to FileStorage's: every
// position of the saved index must lie below its saved position, so a
// corrupt index cannot send a load past the data it covers. The index is
// saved again on a clean Close; after a pack, the index pack built is used.
//
// Commits go through fsformat.Appender with Durable set: the records, the
// length and an fsync, then the status byte and another fsync, so a
// transaction is on disk before the server replies to tpc_finish, and a
// crash at any moment leaves either the whole transaction or an
// interrupted one that the next open removes. Blob files are moved into
// the blob directory (and fsynced) at vote, before the data record that
// names them is committed.
//
// Why loads do not use fsformat.File: its read window reads a MiB per miss,
// which suits scans, not random loads of small objects. Loads copy the
// record out of a read-only mapping of the file (mmap.go; pread where the
// mapping is unavailable). Only committed bytes are ever read: positions
// come from the index, and the entries of a commit are published together
// with the new end of data, after the fsyncs.
//
// Why one RWMutex guards the index: fsindex.Index is not safe for
// concurrent use; the commit path writes it once per transaction (Finish)
// while loads read it; the critical sections are a map lookup each.
//
// Pack runs fsformat/pack on the live file: loads and commits go on during
// the copy; the storage's commit mutex is taken only for pack's final
// catch-up and swap; the packed file is then scanned while loads still use
// the old one, and swapped in under the write lock.
package fsstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/fsindex"
	"github.com/zodbctl/zodbctl/fsformat/pack"
	"github.com/zodbctl/zodbctl/fsformat/pickle"
	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/memstore"
)

// Options configure Open.
type Options struct {
	// ReadOnly opens without lock, never creates or modifies a file, and
	// refuses commits (zeo.conf <filestorage> read-only).
	ReadOnly bool
	// BlobDir is the blob directory ("" for none), bushy layout.
	BlobDir string
	// PackGC is FileStorage's pack-gc (default true in zeo.conf; the zero
	// value here means no GC, so callers pass the config's value).
	PackGC bool
	// PackKeepOld keeps Data.fs.old after a pack (FileStorage's default).
	PackKeepOld bool
	// Quota, if positive, is FileStorage's quota: a store whose record
	// would start past this many bytes fails with FileStorageQuotaError.
	Quota int64
	// Warn receives FileStorage's open-time messages (truncation, tid
	// reduction...). Nil drops them.
	Warn func(string)
}

// Store is a FileStorage served through zeowire.
type Store struct {
	path string
	opt  Options

	lock *fsformat.StorageLock // nil when read-only

	// commitMu is held from Begin to Finish/Abort, and by pack during its
	// final catch-up and swap.
	commitMu sync.Mutex

	mu      sync.RWMutex // guards everything below
	f       *os.File     // read handle (the Appender's file when writable)
	mm      []byte       // read-only mapping of f (see mmap.go); nil: pread
	app     *fsformat.Appender
	li      *lockedIndex // the Appender's view of idx (nil when read-only)
	idx     *fsindex.Index
	end     int64 // end of the committed data
	last    zeowire.Tid
	nextOid zeowire.Oid
	closed  bool
	// scanFrom is where the open scan started: 4, or the position of the
	// saved index it trusted.
	scanFrom int64

	packing atomic.Bool

	snapMu sync.Mutex
	snap   []uint64 // sorted oids for record_iternext (see RecordIterNext)
}

var (
	_ zeowire.Storage            = (*Store)(nil)
	_ zeowire.Iterable           = (*Store)(nil)
	_ zeowire.RecordIterable     = (*Store)(nil)
	_ zeowire.Undoable           = (*Store)(nil)
	_ zeowire.Packable           = (*Store)(nil)
	_ zeowire.RecentTransactions = (*Store)(nil)
	_ zeowire.BlobStorage        = (*Store)(nil)
)

// lockedIndex is the fsformat.Index the Appender fills and updates. After
// the open scan, the positions the Appender sets at Commit are held back
// in pending and applied by Finish together with the new end of data, under
// the write lock: a reader never sees an index entry past the end it
// checks positions against. Get reads the committed map (what the Appender
// needs for prev pointers, too).
type lockedIndex struct {
	mu *sync.RWMutex
	x  *fsindex.Index
	// scanning: set while Open fills the index (no readers yet).
	scanning bool
	pending  []indexEntry // only touched under the storage's commitMu
}

type indexEntry struct {
	oid fsformat.Oid
	pos int64
}

func (l *lockedIndex) Get(oid fsformat.Oid) (int64, bool) {
	if !l.scanning {
		l.mu.RLock()
		defer l.mu.RUnlock()
	}
	p, ok := l.x.Get(uint64(oid))
	return int64(p), ok
}

func (l *lockedIndex) Set(oid fsformat.Oid, pos int64) {
	if l.scanning {
		l.x.Set(uint64(oid), uint64(pos))
		return
	}
	l.pending = append(l.pending, indexEntry{oid, pos})
}

// apply moves the pending entries into the map; the caller holds mu.
func (l *lockedIndex) apply() {
	for _, e := range l.pending {
		l.x.Set(uint64(e.oid), uint64(e.pos))
	}
	l.pending = l.pending[:0]
}

// Open opens (writable: creating if missing) the FileStorage at path.
func Open(path string, opt Options) (*Store, error) {
	s := &Store{path: path, opt: opt}
	if opt.BlobDir != "" {
		if err := prepareBlobDir(opt.BlobDir, opt.ReadOnly); err != nil {
			return nil, fmt.Errorf("%s: blob directory: %w", path, err)
		}
	}
	if err := s.open(); err != nil {
		if s.lock != nil {
			s.lock.Unlock()
		}
		return nil, plainFormatError(err)
	}
	return s, nil
}

// fsMessageError is a *fsformat.FormatError shown with FileStorage's own
// message alone when that message already names the file and position
// ("Data.fs has invalid transaction header at 34991").
type fsMessageError struct{ fe *fsformat.FormatError }

func (e *fsMessageError) Error() string { return e.fe.Msg }
func (e *fsMessageError) Unwrap() error { return e.fe }

func plainFormatError(err error) error {
	var fe *fsformat.FormatError
	if errors.As(err, &fe) && fe.File != "" && strings.Contains(fe.Msg, fe.File) {
		return &fsMessageError{fe}
	}
	return err
}

func (s *Store) warn(msg string) {
	if s.opt.Warn != nil {
		s.opt.Warn(msg)
	}
}

// open takes the lock (writable) and loads the file; called by Open and
// after a pack swapped the file (lock already held).
func (s *Store) open() error {
	if s.opt.ReadOnly {
		return s.openReadOnly()
	}
	if s.lock == nil {
		if dir := filepath.Dir(s.path); dir != "" {
			if _, err := os.Stat(dir); err != nil {
				return err
			}
		}
		l, err := fsformat.LockStorage(s.path)
		if err != nil {
			return err
		}
		s.lock = l
	}
	fs, err := s.loadWritable(s.readSavedIndex())
	if err != nil {
		return err
	}
	s.install(fs)
	return nil
}

// fileState is an opened writable Data.fs, ready to be installed.
type fileState struct {
	app     *fsformat.Appender
	li      *lockedIndex
	idx     *fsindex.Index
	last    zeowire.Tid
	nextOid zeowire.Oid
	// scanFrom: see Store.scanFrom.
	scanFrom int64
}

// loadWritable opens the Appender without touching the store's state, so
// that after a pack the file is loaded while loads go on from the old one.
// A saved index that passes FileStorage's sanity check is used, and only
// the transactions after its position are scanned; otherwise (none, or
// "Ignoring index for") the whole file is scanned and, as FileStorage does,
// the index is saved at once, so that a crash before the clean close does
// not cost the next open a full scan again. Either way an incomplete
// trailing transaction is cut off (Data.fs.trN).
func (s *Store) loadWritable(saved *savedIndex) (*fileState, error) {
	if st, serr := os.Stat(s.path); errors.Is(serr, os.ErrNotExist) || (serr == nil && st.Size() == 0) {
		idx := fsindex.New()
		li := &lockedIndex{mu: &s.mu, x: idx, scanning: true}
		if serr == nil {
			os.Remove(s.path) // an empty file is an empty storage: start it over
		}
		app, err := fsformat.Create(s.path, li)
		if err != nil {
			return nil, err
		}
		// The new file's name must survive a crash as much as the
		// transactions fsynced into it.
		if err := syncPath(filepath.Dir(s.path)); err != nil {
			app.Close()
			return nil, err
		}
		if saved != nil {
			s.ignoringIndex() // FileStorage: pos ≥ 100 > size
		}
		return s.fileState(app, li), nil
	}
	if saved != nil {
		li := &lockedIndex{mu: &s.mu, x: saved.idx, scanning: true}
		app, err := fsformat.OpenAppenderAt(s.path, li, saved.pos, s.warn)
		if err == nil {
			fs := s.fileState(app, li)
			fs.scanFrom = saved.pos
			return fs, nil
		}
		if !errors.Is(err, fsformat.ErrIndexUnusable) {
			return nil, err
		}
		s.ignoringIndex()
	}
	idx := fsindex.New()
	li := &lockedIndex{mu: &s.mu, x: idx, scanning: true}
	app, err := fsformat.OpenAppender(s.path, li, s.warn)
	if err != nil {
		return nil, err
	}
	if err := fsindex.Write(s.path+".index", idx, uint64(app.Pos())); err != nil && !errors.Is(err, fsindex.ErrPosTooLarge) {
		// Only the next open's speed depends on it.
		s.warn(fmt.Sprintf("%s: saving the index: %v", s.path, err))
	}
	return s.fileState(app, li), nil
}

// fileState wraps a freshly opened Appender and its index.
func (s *Store) fileState(app *fsformat.Appender, li *lockedIndex) *fileState {
	li.scanning = false
	app.Durable = true
	maxOid, _ := li.x.MaxOid()
	return &fileState{app: app, li: li, idx: li.x, last: zeowire.Tid(app.LastTid()), nextOid: zeowire.Oid(maxOid),
		scanFrom: fsformat.FileHeaderLen}
}

// install makes fs the store's file; the caller holds mu for writing (or
// the store is not shared yet).
func (s *Store) install(fs *fileState) {
	s.app, s.li, s.idx, s.f = fs.app, fs.li, fs.idx, fs.app.File()
	s.end = fs.app.Pos()
	s.scanFrom = fs.scanFrom
	s.last, s.nextOid = max(s.last, fs.last), max(s.nextOid, fs.nextOid)
	s.remap(s.end)
}

// Path is the Data.fs path.
func (s *Store) Path() string { return s.path }

// Info implements zeowire.Storage.
func (s *Store) Info() zeowire.StorageInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ifaces := memstore.FileStorageInterfaces
	if s.opt.BlobDir != "" {
		ifaces = memstore.BlobStorageInterfaces
	}
	return zeowire.StorageInfo{
		Name:                   s.path,
		Length:                 int64(s.idx.Len()),
		Size:                   s.end,
		SupportsUndo:           true,
		SupportsRecordIternext: true,
		Interfaces:             ifaces,
	}
}

// LastTransaction implements zeowire.Storage.
func (s *Store) LastTransaction() zeowire.Tid {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last
}

// Close implements zeowire.Storage: saves Data.fs.index (writable) and
// releases the lock.
func (s *Store) Close() error {
	// A transaction still between Begin and Finish (a client that never
	// finished, past the server's shutdown grace) keeps the commit mutex:
	// wait a while, then give up rather than hang the process's exit; the
	// interrupted transaction is cut off at the next open.
	deadline := time.Now().Add(closeWait)
	for !s.commitMu.TryLock() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: a transaction is still in progress; closed without saving the index", s.path)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer s.commitMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	s.unmap()
	if s.app != nil {
		if e := fsindex.Write(s.path+".index", s.idx, uint64(s.end)); e != nil && !errors.Is(e, fsindex.ErrPosTooLarge) {
			err = fmt.Errorf("%s: saving the index: %w", s.path, e)
		}
		if e := s.app.Close(); e != nil && err == nil {
			err = e
		}
	} else if s.f != nil {
		s.f.Close()
	}
	if s.lock != nil {
		if e := s.lock.Unlock(); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// closeWait is how long Close waits for a transaction in progress (a
// variable for tests).
var closeWait = 5 * time.Second

// errClosed is returned by calls on a closed store.
var errClosed = errors.New("fsstore: storage closed")

// recHeader reads the data record header at pos, checking it lies in the
// committed data.
func (s *Store) recHeader(pos int64) (fsformat.DataHeader, error) {
	var b [fsformat.DataHeaderLen]byte
	if pos < fsformat.FileHeaderLen || pos+fsformat.DataHeaderLen > s.end {
		return fsformat.DataHeader{}, fmt.Errorf("%s: data record at %d out of bounds (end %d)", s.path, pos, s.end)
	}
	if err := s.readAt(b[:], pos); err != nil {
		return fsformat.DataHeader{}, fmt.Errorf("%s: data record at %d: %w", s.path, pos, err)
	}
	h := fsformat.ParseDataHeader(b[:])
	if h.VersionLen != 0 {
		return h, fmt.Errorf("%s: data record at %d: version records are not supported", s.path, pos)
	}
	return h, nil
}

// oidHeader is recHeader for a record that must be one of oid's (the
// current one the index names, or one of its prev chain).
func (s *Store) oidHeader(oid zeowire.Oid, pos int64) (fsformat.DataHeader, error) {
	h, err := s.recHeader(pos)
	if err == nil {
		err = s.checkOid(oid, pos, h)
	}
	return h, err
}

// checkOid refuses a record of another object than the one asked for: an
// index entry or prev pointer that is wrong (a saved index FileStorage's
// sanity check let through, a damaged file) gives an error, never another
// object's state.
func (s *Store) checkOid(oid zeowire.Oid, pos int64, h fsformat.DataHeader) error {
	if zeowire.Oid(h.Oid) != oid {
		return fmt.Errorf("%s: the record at %d for oid %s is one of oid %s (index or prev pointer out of date)", s.path, pos, oid, zeowire.Oid(h.Oid))
	}
	return nil
}

// recData returns the state of the record at pos with header h, following
// backpointers; nil data means the chain ends in 0 (no state).
func (s *Store) recData(pos int64, h fsformat.DataHeader) ([]byte, error) {
	for hops := 0; ; hops++ {
		if h.DataLen > 0 {
			if h.DataLen > s.end-pos-fsformat.DataHeaderLen {
				return nil, fmt.Errorf("%s: data record at %d: length %d runs past the data", s.path, pos, h.DataLen)
			}
			data := make([]byte, h.DataLen)
			if err := s.readAt(data, pos+fsformat.DataHeaderLen); err != nil {
				return nil, fmt.Errorf("%s: data record at %d: %w", s.path, pos, err)
			}
			return data, nil
		}
		if h.DataLen < 0 {
			return nil, fmt.Errorf("%s: data record at %d: bad length", s.path, pos)
		}
		var b [8]byte
		if err := s.readAt(b[:], pos+fsformat.DataHeaderLen); err != nil {
			return nil, fmt.Errorf("%s: data record at %d: backpointer: %w", s.path, pos, err)
		}
		back := int64(binary.BigEndian.Uint64(b[:]))
		if back == 0 {
			return nil, nil
		}
		if back >= pos || hops > 1<<16 {
			return nil, fmt.Errorf("%s: data record at %d: backpointer %d does not point back", s.path, pos, back)
		}
		nh, err := s.recHeader(back)
		if err != nil {
			return nil, err
		}
		if nh.Oid != h.Oid {
			return nil, fmt.Errorf("%s: backpointer at %d leads to a record of oid %s", s.path, pos, nh.Oid)
		}
		pos, h = back, nh
	}
}

// backOf reads the backpointer of a record with no data of its own.
func (s *Store) backOf(pos int64) (int64, error) {
	var b [8]byte
	if err := s.readAt(b[:], pos+fsformat.DataHeaderLen); err != nil {
		return 0, fmt.Errorf("%s: data record at %d: backpointer: %w", s.path, pos, err)
	}
	return int64(binary.BigEndian.Uint64(b[:])), nil
}

func (s *Store) current(oid zeowire.Oid) (int64, bool) {
	p, ok := s.idx.Get(uint64(oid))
	return int64(p), ok
}

// prefetch is how much of a record loadAt reads with its header: small
// objects (the common case) then cost one pread.
const prefetch = 512

var recBufs = sync.Pool{New: func() any { return new([fsformat.DataHeaderLen + prefetch]byte) }}

// loadAt reads the record at pos with one pread when it is small: its
// header and its state (backpointers followed; nil for no state).
func (s *Store) loadAt(pos int64) (fsformat.DataHeader, []byte, error) {
	if pos < fsformat.FileHeaderLen || pos+fsformat.DataHeaderLen > s.end {
		return fsformat.DataHeader{}, nil, fmt.Errorf("%s: data record at %d out of bounds (end %d)", s.path, pos, s.end)
	}
	n := int(min(fsformat.DataHeaderLen+prefetch, s.end-pos))
	buf, mapped := s.committed(pos, int64(n))
	if !mapped {
		pb := recBufs.Get().(*[fsformat.DataHeaderLen + prefetch]byte)
		defer recBufs.Put(pb)
		buf = pb[:n]
		if err := s.readAt(buf, pos); err != nil {
			return fsformat.DataHeader{}, nil, fmt.Errorf("%s: data record at %d: %w", s.path, pos, err)
		}
	}
	h := fsformat.ParseDataHeader(buf)
	if h.VersionLen != 0 {
		return h, nil, fmt.Errorf("%s: data record at %d: version records are not supported", s.path, pos)
	}
	if h.DataLen > 0 && int64(n) >= fsformat.DataHeaderLen+h.DataLen {
		return h, append([]byte(nil), buf[fsformat.DataHeaderLen:fsformat.DataHeaderLen+h.DataLen]...), nil
	}
	if h.DataLen == 0 && n >= fsformat.DataHeaderLen+8 {
		if binary.BigEndian.Uint64(buf[fsformat.DataHeaderLen:]) == 0 {
			return h, nil, nil
		}
	}
	data, err := s.recData(pos, h)
	return h, data, err
}

// LoadBefore implements zeowire.Storage.
func (s *Store) LoadBefore(_ context.Context, oid zeowire.Oid, before zeowire.Tid) (zeowire.Revision, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return zeowire.Revision{}, false, errClosed
	}
	pos, ok := s.current(oid)
	if !ok {
		return zeowire.Revision{}, false, &zeowire.POSKeyError{Oid: oid}
	}
	h, data, err := s.loadAt(pos)
	if err == nil {
		err = s.checkOid(oid, pos, h)
	}
	if err != nil {
		return zeowire.Revision{}, false, err
	}
	if zeowire.Tid(h.Tid) < before {
		if data == nil {
			// A deletion or undone creation: the object does not
			// exist (FileStorage raises POSKeyError).
			return zeowire.Revision{}, false, &zeowire.POSKeyError{Oid: oid}
		}
		return zeowire.Revision{Data: data, Start: zeowire.Tid(h.Tid)}, true, nil
	}
	var end zeowire.Tid
	for zeowire.Tid(h.Tid) >= before {
		end = zeowire.Tid(h.Tid)
		if h.Prev == 0 {
			return zeowire.Revision{}, false, nil
		}
		if h.Prev >= pos {
			return zeowire.Revision{}, false, fmt.Errorf("%s: data record at %d: prev %d does not point back", s.path, pos, h.Prev)
		}
		pos = h.Prev
		if h, err = s.oidHeader(oid, pos); err != nil {
			return zeowire.Revision{}, false, err
		}
	}
	if data, err = s.recData(pos, h); err != nil {
		return zeowire.Revision{}, false, err
	}
	if data == nil {
		return zeowire.Revision{}, false, &zeowire.POSKeyError{Oid: oid}
	}
	return zeowire.Revision{Data: data, Start: zeowire.Tid(h.Tid), End: end}, true, nil
}

// LoadSerial implements zeowire.Storage.
func (s *Store) LoadSerial(_ context.Context, oid zeowire.Oid, serial zeowire.Tid) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	pos, ok := s.current(oid)
	for ok && pos != 0 {
		h, err := s.oidHeader(oid, pos)
		if err != nil {
			return nil, err
		}
		t := zeowire.Tid(h.Tid)
		if t == serial {
			data, err := s.recData(pos, h)
			if err != nil {
				return nil, err
			}
			if data == nil {
				break
			}
			return data, nil
		}
		if t < serial || h.Prev >= pos {
			break
		}
		pos = h.Prev
	}
	return nil, &zeowire.POSKeyError{Oid: oid}
}

// NewOids implements zeowire.Storage.
func (s *Store) NewOids(n int) ([]zeowire.Oid, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]zeowire.Oid, n)
	for i := range out {
		s.nextOid++
		out[i] = s.nextOid
	}
	return out, nil
}

// txnMetaAt reads the metadata of the transaction at tpos.
func (s *Store) txnMetaAt(tpos int64) (zeowire.TxnMeta, error) {
	var b [fsformat.TxnHeaderLen]byte
	if tpos < fsformat.FileHeaderLen || tpos+fsformat.TxnHeaderLen > s.end {
		return zeowire.TxnMeta{}, fmt.Errorf("%s: transaction at %d out of bounds", s.path, tpos)
	}
	if err := s.readAt(b[:], tpos); err != nil {
		return zeowire.TxnMeta{}, fmt.Errorf("%s: transaction at %d: %w", s.path, tpos, err)
	}
	h := fsformat.ParseTxnHeader(b[:])
	n := int(h.UserLen) + int(h.DescLen) + int(h.ExtLen)
	buf := make([]byte, n)
	if err := s.readAt(buf, tpos+fsformat.TxnHeaderLen); err != nil {
		return zeowire.TxnMeta{}, fmt.Errorf("%s: transaction at %d: %w", s.path, tpos, err)
	}
	u, d, e := buf[:h.UserLen], buf[h.UserLen:int(h.UserLen)+int(h.DescLen)], buf[int(h.UserLen)+int(h.DescLen):]
	return zeowire.TxnMeta{Tid: zeowire.Tid(h.Tid), Status: h.Status, User: u, Description: d,
		Extension: decodeExt(e), Size: h.Len}, nil
}

// decodeExt unpickles a transaction extension; like undoLog, anything that
// is not a readable dict counts as empty.
func decodeExt(b []byte) zeowire.Dict {
	if len(b) == 0 {
		return nil
	}
	v, err := zeowire.DecodePickleValue(b)
	if err != nil {
		return nil
	}
	d, _ := v.(zeowire.Dict)
	return d
}

// encodeExt pickles an extension as FileStorage does: empty for an empty
// dict, else protocol 3 with memo.
func encodeExt(d zeowire.Dict) ([]byte, error) {
	if len(d) == 0 {
		return nil, nil
	}
	return pickle.Marshal(d, 3)
}

// History implements zeowire.Storage.
func (s *Store) History(_ context.Context, oid zeowire.Oid, size int) ([]zeowire.HistoryEntry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	pos, ok := s.current(oid)
	if !ok {
		return nil, &zeowire.POSKeyError{Oid: oid}
	}
	var out []zeowire.HistoryEntry
	for pos != 0 && len(out) < size {
		h, err := s.oidHeader(oid, pos)
		if err != nil {
			return nil, err
		}
		meta, err := s.txnMetaAt(h.TxnPos)
		if err != nil {
			return nil, err
		}
		out = append(out, zeowire.HistoryEntry{TxnMeta: meta, Size: h.DataLen})
		if h.Prev >= pos {
			break
		}
		pos = h.Prev
	}
	return out, nil
}

// RecordIterNext implements zeowire.RecordIterable (FileStorage's
// record_iternext over its index; a deleted object is a POSKeyError, as
// there).
//
// fsindex has no "smallest key >= oid" lookup, so the walk uses a sorted
// snapshot of the oids (8 bytes per object, made at the first call) and
// rebuilds it when objects were created since; without it every call
// would scan the index from the start.
func (s *Store) RecordIterNext(_ context.Context, from zeowire.Oid, first bool) (zeowire.Oid, zeowire.Tid, []byte, zeowire.Oid, bool, error) {
	oids := s.oidSnapshot(first)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, 0, nil, 0, false, errClosed
	}
	i := 0
	if !first {
		i, _ = slices.BinarySearch(oids, uint64(from))
	}
	if i >= len(oids) {
		return 0, 0, nil, 0, false, &zeowire.RemoteError{Class: zeowire.ClassValueError, Args: zeowire.Tuple{"empty tree"}}
	}
	oid := zeowire.Oid(oids[i])
	pos, ok := s.current(oid)
	if !ok {
		return 0, 0, nil, 0, false, fmt.Errorf("%s: oid %s left the index", s.path, oid)
	}
	h, err := s.oidHeader(oid, pos)
	if err != nil {
		return 0, 0, nil, 0, false, err
	}
	data, err := s.recData(pos, h)
	if err != nil {
		return 0, 0, nil, 0, false, err
	}
	if data == nil {
		// FileStorage loads the current record (load_current): a
		// deleted object raises POSKeyError there too.
		return 0, 0, nil, 0, false, &zeowire.POSKeyError{Oid: oid}
	}
	if i+1 < len(oids) {
		return oid, zeowire.Tid(h.Tid), data, zeowire.Oid(oids[i+1]), true, nil
	}
	return oid, zeowire.Tid(h.Tid), data, 0, false, nil
}

// oidSnapshot returns the sorted oids of the index, rebuilt when asked
// (a new walk) or when the index grew since.
func (s *Store) oidSnapshot(fresh bool) []uint64 {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !fresh && s.snap != nil && len(s.snap) == s.idx.Len() {
		return s.snap
	}
	oids := make([]uint64, 0, s.idx.Len())
	for o := range s.idx.All() {
		oids = append(oids, o)
	}
	s.snap = oids
	return oids
}

// Iterate implements zeowire.Iterable. The iterator reads the file as it
// was when Iterate was called (committed data only).
func (s *Store) Iterate(_ context.Context, start, stop zeowire.Tid) (zeowire.TxnIterator, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	// The iterator outlives this call (and maybe a pack, which closes the
	// file it replaces): it reads through its own descriptor of the file.
	fd, err := syscall.Dup(int(s.f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	own := os.NewFile(uintptr(fd), s.path)
	f, err := fsformat.NewFile(io.NewSectionReader(own, 0, s.end), s.end, s.path)
	if err != nil {
		own.Close()
		return nil, err
	}
	from, err := s.startPos(f, start)
	if err != nil {
		own.Close()
		return nil, err
	}
	it := &txnIter{f: f, own: own, start: start, stop: stop}
	it.next, it.done = iterPull(f, from)
	return it, nil
}

// startPos is where an iteration from tid start begins reading: like
// FileStorage's FileIterator, when start is closer (in tid) to the end of
// the file than to its beginning, the transactions are walked backwards
// from the end to the first one at or after start, so that iterating the
// recent past of a large file (a reconnecting client's invalidations)
// does not read the whole file. 0 means from the first transaction.
func (s *Store) startPos(f *fsformat.File, start zeowire.Tid) (int64, error) {
	if start == 0 || s.end <= fsformat.FileHeaderLen {
		return 0, nil
	}
	first, err := f.ReadTxnHeaderAt(fsformat.FileHeaderLen)
	if err != nil {
		return 0, nil // let the forward iteration report it
	}
	firstTid, last := zeowire.Tid(first.Tid), s.last
	if firstTid >= start || last < start || start-firstTid < last-start {
		return 0, nil // forward from the beginning, skipping what is before start
	}
	pos := s.end // nothing at or after start unless found below
	for tx, err := range f.TransactionsBackward(s.end) {
		if err != nil {
			return 0, nil // forward iteration it is
		}
		if zeowire.Tid(tx.Tid) < start {
			break
		}
		pos = tx.Pos
	}
	return pos, nil
}

// Recent implements zeowire.RecentTransactions.
func (s *Store) Recent(_ context.Context, n int) ([]zeowire.Invalidation, error) {
	// Held throughout: a pack's reopen closes the old file.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	end := s.end
	f, err := fsformat.NewFile(io.NewSectionReader(s.f, 0, end), end, s.path)
	if err != nil {
		return nil, err
	}
	var out []zeowire.Invalidation
	for t, err := range f.TransactionsBackward(end) {
		if err != nil {
			return out, nil // what could be read is enough for the queue
		}
		if len(out) >= n {
			break
		}
		inv := zeowire.Invalidation{Tid: zeowire.Tid(t.Tid)}
		for r, err := range t.Records() {
			if err != nil {
				break
			}
			inv.Oids = append(inv.Oids, zeowire.Oid(r.Oid))
		}
		out = append(out, inv)
	}
	return out, nil
}

// UndoLog implements zeowire.Undoable: newest first, only ' ' transactions,
// stopping at the first packed one, as FileStorage.undoLog.
func (s *Store) UndoLog(_ context.Context, first, last int, filter func(*zeowire.TxnMeta) bool) ([]zeowire.TxnMeta, error) {
	// Held throughout: a pack's reopen closes the old file.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	end := s.end
	f, err := fsformat.NewFile(io.NewSectionReader(s.f, 0, end), end, s.path)
	if err != nil {
		return nil, err
	}
	var out []zeowire.TxnMeta
	i := 0
	for t, err := range f.TransactionsBackward(end) {
		if err != nil {
			return nil, err
		}
		if i >= last || t.Status == fsformat.StatusPacked {
			break
		}
		if t.Status != fsformat.StatusNormal {
			continue
		}
		m := zeowire.TxnMeta{Tid: zeowire.Tid(t.Tid), Status: t.Status, User: clone(t.User),
			Description: clone(t.Description), Extension: decodeExt(t.Extension), Size: t.Len}
		if filter == nil || filter(&m) {
			if i >= first {
				out = append(out, m)
			}
			i++
		}
	}
	return out, nil
}

func clone(b []byte) []byte { return append([]byte{}, b...) }

// Pack implements zeowire.Packable with fsformat/pack on the live file.
func (s *Store) Pack(ctx context.Context, t float64) error {
	if s.opt.ReadOnly {
		return zeowire.ErrReadOnly
	}
	if !s.packing.CompareAndSwap(false, true) {
		return &zeowire.RemoteError{Class: "ZODB.FileStorage.FileStorage.FileStorageError", Args: zeowire.Tuple{"Already packing"}}
	}
	defer s.packing.Store(false)
	opt := pack.Options{
		Stop:       fsformat.TidFromUnix(t),
		GC:         s.opt.PackGC,
		DiscardOld: !s.opt.PackKeepOld,
		Warn:       s.warn,
		CommitLock: func() func() {
			s.commitMu.Lock()
			return s.commitMu.Unlock
		},
		Swapped: func(r *pack.Result) error { return s.reopen(r) },
	}
	_, err := pack.Pack(ctx, s.path, s.opt.BlobDir, opt)
	return err
}

// reopen switches to the packed file; called under commitMu. The index
// pack built for the file (and saved as Data.fs.index) spares a scan of it.
func (s *Store) reopen(r *pack.Result) error {
	var saved *savedIndex
	if r != nil && r.Index != nil && r.SizeAfter >= 100 {
		// (Below 100 bytes FileStorage's check refuses any index; the
		// scan of so small a file costs nothing.)
		saved = &savedIndex{idx: r.Index, pos: r.SizeAfter}
	}
	fs, err := s.loadWritable(saved)
	if err != nil {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		return fmt.Errorf("%s: reopening after pack: %w", s.path, err)
	}
	s.mu.Lock()
	s.unmap()
	old := s.app
	s.install(fs)
	s.mu.Unlock()
	s.snapMu.Lock()
	s.snap = nil
	s.snapMu.Unlock()
	return old.Close()
}

// ReadOnly reports a storage opened read-only (zeowire.ReadOnlyReporter):
// the server then refuses writable registrations, as ZEO does for a
// storage whose isReadOnly() is true.
func (s *Store) ReadOnly() bool { return s.opt.ReadOnly }
