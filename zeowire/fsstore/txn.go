package fsstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strings"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/zeowire"
)

// txnIter adapts fsformat's transaction iterator to zeowire.TxnIterator.
type txnIter struct {
	f           *fsformat.File
	own         *os.File // the iterator's own descriptor
	start, stop zeowire.Tid
	next        func() (*fsformat.Txn, error, bool)
	done        func()
}

func iterPull(f *fsformat.File, from int64) (func() (*fsformat.Txn, error, bool), func()) {
	return iter.Pull2(f.Transactions(fsformat.IterOptions{Start: from}))
}

func (it *txnIter) Next() (zeowire.TxnMeta, []zeowire.DataRecord, bool, error) {
	for {
		t, err, ok := it.next()
		if !ok {
			return zeowire.TxnMeta{}, nil, false, nil
		}
		if err != nil {
			return zeowire.TxnMeta{}, nil, false, err
		}
		tid := zeowire.Tid(t.Tid)
		if tid < it.start {
			continue
		}
		if it.stop != 0 && tid > it.stop {
			return zeowire.TxnMeta{}, nil, false, nil
		}
		meta := zeowire.TxnMeta{Tid: tid, Status: t.Status, User: clone(t.User), Description: clone(t.Description),
			Extension: decodeExt(t.Extension), Size: t.Len}
		var recs []zeowire.DataRecord
		for r, err := range t.Records() {
			if err != nil {
				return zeowire.TxnMeta{}, nil, false, err
			}
			dr := zeowire.DataRecord{Oid: zeowire.Oid(r.Oid), Tid: zeowire.Tid(r.Tid)}
			if r.IsBackpointer() {
				if r.Back != 0 {
					data, _, _, err := it.f.LoadBack(r.Oid, r.Back)
					if err != nil && !errors.Is(err, fsformat.ErrNoData) {
						return zeowire.TxnMeta{}, nil, false, err
					}
					dr.Data = clone(data)
					if len(data) == 0 {
						dr.Data = nil
					}
					h, err := it.f.ReadDataHeaderAt(r.Back)
					if err != nil {
						return zeowire.TxnMeta{}, nil, false, err
					}
					dr.DataTxn = zeowire.Tid(h.Tid)
				}
			} else {
				dr.Data = clone(r.Data)
			}
			recs = append(recs, dr)
		}
		return meta, recs, true, nil
	}
}

func (it *txnIter) Close() error {
	if it.own == nil {
		return nil
	}
	it.done()
	err := it.own.Close()
	it.own = nil
	return err
}

// Begin implements zeowire.Storage. The server calls it at vote time under
// its commit lock; the storage's own commit mutex is held until Finish or
// Abort (pack's catch-up waits on it).
func (s *Store) Begin(_ context.Context, meta zeowire.TxnMeta) (zeowire.StorageTxn, error) {
	if s.opt.ReadOnly {
		return nil, zeowire.ErrReadOnly
	}
	ext, err := encodeExt(meta.Extension)
	if err != nil {
		return nil, fmt.Errorf("%s: pickling the transaction extension: %w", s.path, err)
	}
	s.commitMu.Lock()
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		s.commitMu.Unlock()
		return nil, errClosed
	}
	status := meta.Status
	if status == ' ' {
		status = 0
	}
	if _, err := s.app.Begin(fsformat.TxnMeta{Tid: fsformat.Tid(meta.Tid), Status: status,
		User: meta.User, Description: meta.Description, Extension: ext}); err != nil {
		s.commitMu.Unlock()
		return nil, err
	}
	return &txn{s: s, meta: meta, written: map[zeowire.Oid]bool{}}, nil
}

type txn struct {
	s       *Store
	meta    zeowire.TxnMeta
	written map[zeowire.Oid]bool
	// undoBacks: for an oid whose last record in this transaction was
	// written by an undo, the backpointer it holds (undoing several
	// transactions in one, as Zope's undo form does, checks against it).
	undoBacks map[zeowire.Oid]int64
	blobs     []blobMove
	ended     bool
	voted     bool
}

type blobMove struct {
	oid  zeowire.Oid
	src  string // upload in tmp, or the committed file to copy
	dst  string
	copy bool // src is a committed blob (undo): link or copy, never move
	done bool
}

// committedTid is the tid of oid's current committed record, ok=false if
// the oid has none; exists is false for a deletion record.
func (s *Store) committedTid(oid zeowire.Oid) (tid zeowire.Tid, exists, ok bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	pos, ok := s.current(oid)
	if !ok {
		return 0, false, false, nil
	}
	h, err := s.oidHeader(oid, pos)
	if err != nil {
		return 0, false, true, err
	}
	exists = true
	if h.DataLen == 0 {
		back, err := s.backOf(pos)
		if err != nil {
			return 0, false, true, err
		}
		exists = back != 0
	}
	return zeowire.Tid(h.Tid), exists, true, nil
}

func (t *txn) Store(oid zeowire.Oid, serial zeowire.Tid, data []byte) error {
	cur, _, ok, err := t.s.committedTid(oid)
	if err != nil {
		return err
	}
	if ok && cur != serial {
		return &zeowire.ConflictError{Oid: oid, Committed: cur, Serial: serial, Data: data}
	}
	if len(data) == 0 {
		return fmt.Errorf("%s: store of oid %s with empty data", t.s.path, oid)
	}
	pos, err := t.s.app.Store(fsformat.Oid(oid), data)
	if err != nil {
		return err
	}
	if q := t.s.opt.Quota; q > 0 && pos > q {
		// Written into the uncommitted transaction only: the failed
		// vote aborts it.
		return &zeowire.RemoteError{Class: "ZODB.FileStorage.FileStorage.FileStorageQuotaError",
			Args: zeowire.Tuple{"The storage quota has been exceeded."}}
	}
	t.written[oid] = true
	delete(t.undoBacks, oid)
	return nil
}

func (t *txn) CheckCurrent(oid zeowire.Oid, serial zeowire.Tid) error {
	cur, exists, ok, err := t.s.committedTid(oid)
	if err != nil {
		return err
	}
	if !ok || !exists {
		// FileStorage's getTid raises POSKeyError for a deletion too.
		return &zeowire.POSKeyError{Oid: oid}
	}
	if cur != serial {
		return &zeowire.ConflictError{Oid: oid, Committed: cur, Serial: serial, Read: true}
	}
	return nil
}

func (t *txn) Delete(oid zeowire.Oid, serial zeowire.Tid) error {
	cur, exists, ok, err := t.s.committedTid(oid)
	if err != nil {
		return err
	}
	if !ok || !exists {
		return &zeowire.POSKeyError{Oid: oid}
	}
	if cur != serial {
		return &zeowire.ConflictError{Oid: oid, Committed: cur, Serial: serial}
	}
	if _, err := t.s.app.Delete(fsformat.Oid(oid)); err != nil {
		return err
	}
	t.written[oid] = true
	delete(t.undoBacks, oid)
	return nil
}

// Restore writes a record without conflict checks (restorea), as
// FileStorage.restore: nil data records that the object does not exist
// (backpointer 0); with prevTxn, when oid has a record in that transaction
// holding the same data (or a backpointer, trusted), a backpointer to that
// record is written instead of the data.
func (t *txn) Restore(oid zeowire.Oid, serial zeowire.Tid, data []byte, prevTxn zeowire.Tid) error {
	s := t.s
	var back int64
	if prevTxn != 0 && len(data) > 0 {
		back = s.dataFind(oid, prevTxn, data)
	}
	var err error
	switch {
	case len(data) == 0:
		_, err = s.app.Delete(fsformat.Oid(oid))
	case back != 0:
		_, err = s.app.StoreBackpointer(fsformat.Oid(oid), back)
	default:
		_, err = s.app.Store(fsformat.Oid(oid), data)
	}
	if err == nil {
		t.written[oid] = true
		delete(t.undoBacks, oid)
	}
	return err
}

// dataFind is FileStorage's _data_find: the position a restored record of
// oid may point back to for the record written by transaction tid, or 0.
func (s *Store) dataFind(oid zeowire.Oid, tid zeowire.Tid, data []byte) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	pos, ok := s.current(oid)
	for ok && pos != 0 {
		h, err := s.oidHeader(oid, pos)
		if err != nil {
			return 0
		}
		if zeowire.Tid(h.Tid) == tid {
			if h.DataLen == 0 {
				return pos // a backpointer too: trusted, as FileStorage does
			}
			if d, err := s.recData(pos, h); err == nil && string(d) == string(data) {
				return pos
			}
			return 0
		}
		if zeowire.Tid(h.Tid) < tid || h.Prev >= pos {
			return 0
		}
		pos = h.Prev
	}
	return 0
}

// dataPos follows the backpointers from the record at pos to the record
// holding the data (0: the chain ends in "no data").
func (s *Store) dataPos(pos int64) (int64, error) {
	for hops := 0; pos != 0; hops++ {
		h, err := s.recHeader(pos)
		if err != nil {
			return 0, err
		}
		if h.DataLen != 0 {
			return pos, nil
		}
		back, err := s.backOf(pos)
		if err != nil {
			return 0, err
		}
		if back >= pos || hops > 1<<16 {
			return 0, fmt.Errorf("%s: data record at %d: backpointer %d does not point back", s.path, pos, back)
		}
		pos = back
	}
	return 0, nil
}

func undoError(args ...any) error {
	return &zeowire.RemoteError{Class: "ZODB.POSException.UndoError", Args: zeowire.Tuple(args)}
}

// Undo implements undo of the transaction id: for each of its records that
// is still current, a backpointer to the state before it (0 for a
// creation). A record changed by a later transaction makes the undo fail
// (FileStorage would try conflict resolution, which needs Python).
func (t *txn) Undo(id zeowire.Tid) ([]zeowire.Oid, error) {
	s := t.s
	s.mu.RLock()
	tpos, err := s.findTxn(id)
	if err != nil {
		s.mu.RUnlock()
		return nil, err
	}
	f, err := fsformat.NewFile(io.NewSectionReader(s.f, 0, s.end), s.end, s.path)
	if err != nil {
		s.mu.RUnlock()
		return nil, err
	}
	type undoRec struct {
		oid  zeowire.Oid
		back int64
	}
	var todo []undoRec
	for tx, err := range f.Transactions(fsformat.IterOptions{Start: tpos}) {
		if err != nil {
			s.mu.RUnlock()
			return nil, err
		}
		if tx.Status != fsformat.StatusNormal {
			s.mu.RUnlock()
			return nil, undoError("non-undoable transaction")
		}
		for r, err := range tx.Records() {
			if err != nil {
				s.mu.RUnlock()
				return nil, err
			}
			oid := zeowire.Oid(r.Oid)
			cur, _ := s.current(oid)
			if back, ok := t.undoBacks[oid]; ok {
				// Changed earlier in this transaction by an undo: that
				// record's state must be the one being undone.
				var a, b int64
				var err1, err2 error
				if back != 0 {
					a, err1 = s.dataPos(back)
					b, err2 = s.dataPos(r.Pos)
				}
				if back == 0 || err1 != nil || err2 != nil || a == 0 || a != b {
					s.mu.RUnlock()
					return nil, undoError("no previous record", oid.Bytes())
				}
			} else if t.written[oid] {
				s.mu.RUnlock()
				return nil, undoError("Some data were modified by a later transaction", oid.Bytes())
			} else if cur != r.Pos {
				// A later record may still hold the very state being
				// undone (an undo of an undo, a restore): then the undo
				// applies; otherwise FileStorage would need Python's
				// conflict resolution.
				a, err1 := s.dataPos(cur)
				b, err2 := s.dataPos(r.Pos)
				if err1 != nil || err2 != nil || a == 0 || a != b || a == cur {
					s.mu.RUnlock()
					if r.Prev == 0 {
						return nil, undoError("no previous record", oid.Bytes())
					}
					return nil, undoError("Some data were modified by a later transaction", oid.Bytes())
				}
			}
			todo = append(todo, undoRec{oid, r.Prev})
		}
		break
	}
	// A blob revision brought back by the undo needs its file under the
	// undo's tid too (ZODB copies it); a hard link when possible.
	if s.opt.BlobDir != "" {
		for _, u := range todo {
			if u.back == 0 {
				continue
			}
			h, err := s.recHeader(u.back)
			if err != nil {
				s.mu.RUnlock()
				return nil, err
			}
			src := zeowire.BushyBlobPath(s.opt.BlobDir, u.oid, zeowire.Tid(h.Tid))
			if _, err := os.Stat(src); err == nil {
				t.blobs = append(t.blobs, blobMove{oid: u.oid, src: src, dst: zeowire.BushyBlobPath(s.opt.BlobDir, u.oid, t.meta.Tid), copy: true})
			}
		}
	}
	s.mu.RUnlock()
	var oids []zeowire.Oid
	for _, u := range todo {
		if _, err := s.app.StoreBackpointer(fsformat.Oid(u.oid), u.back); err != nil {
			return nil, err
		}
		t.written[u.oid] = true
		if t.undoBacks == nil {
			t.undoBacks = map[zeowire.Oid]int64{}
		}
		t.undoBacks[u.oid] = u.back
		oids = append(oids, u.oid)
	}
	return oids, nil
}

// findTxn finds the position of transaction id, walking back from the end
// (tids need not be in order: FileStorage tolerates time-stamp reductions).
func (s *Store) findTxn(id zeowire.Tid) (int64, error) {
	f, err := fsformat.NewFile(io.NewSectionReader(s.f, 0, s.end), s.end, s.path)
	if err != nil {
		return 0, err
	}
	for tx, err := range f.TransactionsBackward(s.end) {
		if err != nil {
			return 0, err
		}
		if zeowire.Tid(tx.Tid) == id {
			return tx.Pos, nil
		}
		// As FileStorage's _txn_find: the search ends at the first
		// packed transaction (nothing before a pack can be undone).
		if tx.Status == fsformat.StatusPacked {
			break
		}
	}
	return 0, undoError("Invalid undo transaction id")
}

// StoreBlob implements zeowire.BlobTxn.
func (t *txn) StoreBlob(oid zeowire.Oid, serial zeowire.Tid, data []byte, path string) error {
	if t.s.opt.BlobDir == "" {
		return errors.New("fsstore: no blob directory")
	}
	if err := t.Store(oid, serial, data); err != nil {
		return err
	}
	t.blobs = append(t.blobs, blobMove{oid: oid, src: path, dst: zeowire.BushyBlobPath(t.s.opt.BlobDir, oid, t.meta.Tid)})
	return nil
}

// Vote moves the blob files into the tree (as ZODB does at store time):
// once the transaction is committed its blobs are already in place.
func (t *txn) Vote() error {
	for i := range t.blobs {
		b := &t.blobs[i]
		if err := os.MkdirAll(filepath.Dir(b.dst), 0o700); err != nil {
			return err
		}
		if b.copy {
			if err := linkOrCopy(b.src, b.dst); err != nil {
				return err
			}
		} else if err := os.Rename(b.src, b.dst); err != nil {
			return err
		}
		b.done = true
		os.Chmod(b.dst, 0o444)
		// The file must be on disk before the transaction naming it.
		if err := syncPath(b.dst); err != nil {
			return err
		}
		if err := syncPath(filepath.Dir(b.dst)); err != nil {
			return err
		}
	}
	// The records reach the file and disk now, as FileStorage writes them
	// in tpc_vote: a full disk refuses the vote, never tpc_finish (which a
	// client cannot take back once other storages of its transaction
	// finished).
	if err := t.s.app.Prepare(); err != nil {
		return fmt.Errorf("%s: vote: %w", t.s.path, err)
	}
	t.voted = true
	return nil
}

// Finish commits: the status byte written and synced, then visible.
func (t *txn) Finish() error {
	if t.ended {
		return errors.New("fsstore: transaction already ended")
	}
	if !t.voted {
		return errors.New("fsstore: finish of a transaction that was not voted")
	}
	s := t.s
	t.ended = true
	defer s.commitMu.Unlock()
	if _, err := s.app.Finish(); err != nil {
		s.li.pending = s.li.pending[:0]
		return fmt.Errorf("%s: commit: %w", s.path, err)
	}
	s.mu.Lock()
	s.li.apply()
	s.end = s.app.Pos()
	s.remap(s.end)
	s.last = t.meta.Tid
	for oid := range t.written {
		s.nextOid = max(s.nextOid, oid)
	}
	s.mu.Unlock()
	return nil
}

func (t *txn) Abort() {
	if t.ended {
		return
	}
	t.ended = true
	t.s.app.Abort()
	for _, b := range t.blobs {
		if b.done {
			os.Remove(b.dst)
		} else if !b.copy {
			os.Remove(b.src)
		}
	}
	t.s.commitMu.Unlock()
}

// prepareBlobDir checks or creates the bushy layout marker and tmp folder.
// A directory without .layout that already holds blob entries is, by ZODB's
// rule, in the deprecated "lawn" layout, which fsstore does not serve: it
// is refused rather than marked bushy.
func prepareBlobDir(dir string, readOnly bool) error {
	layout := filepath.Join(dir, ".layout")
	b, err := os.ReadFile(layout)
	if err == nil {
		if l := strings.TrimSpace(string(b)); l != "bushy" {
			return fmt.Errorf("%s: layout %q is not supported (only bushy)", dir, l)
		}
	} else {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") && e.Name() != "tmp" {
				return fmt.Errorf("%s: no .layout and not empty: a \"lawn\" blob directory, which is not supported (only bushy)", dir)
			}
		}
	}
	if readOnly {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return err
	}
	if b == nil {
		return os.WriteFile(layout, []byte("bushy"), 0o644)
	}
	return nil
}

// BlobDir implements zeowire.BlobStorage.
func (s *Store) BlobDir() string { return s.opt.BlobDir }

// BlobTempDir implements zeowire.BlobStorage.
func (s *Store) BlobTempDir() string { return filepath.Join(s.opt.BlobDir, "tmp") }

// BlobOidDir implements zeowire.BlobStorage.
func (s *Store) BlobOidDir(oid zeowire.Oid) string { return zeowire.BushyOidDir(s.opt.BlobDir, oid) }

// OpenBlob implements zeowire.BlobStorage.
func (s *Store) OpenBlob(_ context.Context, oid zeowire.Oid, serial zeowire.Tid) (io.ReadCloser, error) {
	if s.opt.BlobDir == "" {
		return nil, zeowire.ErrNotSupported
	}
	path := zeowire.BushyBlobPath(s.opt.BlobDir, oid, serial)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &zeowire.POSKeyError{Oid: oid, Args: zeowire.Tuple{"No blob file at " + path, oid.Bytes(), serial.Bytes()}}
	}
	return f, err
}

// linkOrCopy makes dst hold the same bytes as the committed blob src.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	return out.Close()
}

// syncPath fsyncs a file or directory.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
