// Package memstore is an in-memory zeowire.Storage: the `<mappingstorage>`
// of zeo.conf and the storage the server tests run against.
//
// It follows FileStorage's rules where clients can see them (conflict
// detection, loadBefore/loadSerial results, history, iteration, undo,
// record_iternext), so that recorded sessions of the reference server replay
// against it; by default it advertises the FileStorage interfaces for that
// reason. Sizes are estimated with FileStorage's record layout (header
// lengths plus data), not with its exact extension pickles. Pack keeps, for
// every object, the revisions after the pack time and the one current at it,
// then drops the objects the root no longer reaches (references found with
// fsformat/refs).
package memstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/zodbctl/zodbctl/fsformat/refs"
	"github.com/zodbctl/zodbctl/zeowire"
)

// FileStorageInterfaces are the get_info interfaces of a FileStorage
// without blob-dir.
var FileStorageInterfaces = [][2]string{
	{"ZODB.interfaces", "IStorageRestoreable"},
	{"ZODB.interfaces", "IStorageIteration"},
	{"ZODB.interfaces", "IStorageUndoable"},
	{"ZODB.interfaces", "IStorageCurrentRecordIteration"},
	{"ZODB.interfaces", "IExternalGC"},
	{"ZODB.interfaces", "IStorage"},
	{"zope.interface", "Interface"},
}

type revision struct {
	tid     zeowire.Tid
	data    []byte // nil: deletion (or undone creation)
	dataTxn zeowire.Tid
	txn     *txnRec
}

type txnRec struct {
	meta    zeowire.TxnMeta
	records []zeowire.DataRecord
}

// Store is the in-memory storage. Its zero value is not usable; call New.
type Store struct {
	name string

	mu      sync.RWMutex
	txns    []*txnRec // in tid order
	revs    map[zeowire.Oid][]revision
	last    zeowire.Tid
	nextOid zeowire.Oid
	size    int64
	blobDir string // "" without blobs
	mapping bool   // present as MappingStorage
}

// MappingStorageInterfaces are the get_info interfaces of ZODB's
// MappingStorage.
var MappingStorageInterfaces = [][2]string{
	{"ZODB.interfaces", "IStorage"},
	{"ZODB.interfaces", "IStorageIteration"},
	{"zope.interface", "Interface"},
}

// New returns an empty storage reporting name in get_info and the
// features of a FileStorage (undo, record_iternext, restore, external GC).
func New(name string) *Store {
	return &Store{name: name, revs: map[zeowire.Oid][]revision{}, size: 4}
}

// NewMapping returns an empty storage that presents itself as ZODB's
// MappingStorage does (zeo.conf <mappingstorage>): no undo, no
// record_iternext, its interface list, and loadSerial errors carrying
// (oid, serial). name is MappingStorage's name, "Mapping Storage" by default.
func NewMapping(name string) *Store {
	if name == "" {
		name = "Mapping Storage"
	}
	s := New(name)
	s.mapping = true
	return s
}

var _ zeowire.Storage = (*Store)(nil)

// Info implements zeowire.Storage.
func (s *Store) Info() zeowire.StorageInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ifaces := FileStorageInterfaces
	if s.blobDir != "" {
		ifaces = BlobStorageInterfaces
	}
	if s.mapping {
		ifaces = MappingStorageInterfaces
	}
	return zeowire.StorageInfo{
		Name:                   s.name,
		Length:                 int64(len(s.revs)),
		Size:                   s.size,
		SupportsUndo:           !s.mapping,
		SupportsRecordIternext: !s.mapping,
		Interfaces:             ifaces,
	}
}

// LastTransaction implements zeowire.Storage.
func (s *Store) LastTransaction() zeowire.Tid {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last
}

// Close implements zeowire.Storage.
func (s *Store) Close() error { return nil }

func (s *Store) current(oid zeowire.Oid) (revision, bool) {
	r := s.revs[oid]
	if len(r) == 0 {
		return revision{}, false
	}
	return r[len(r)-1], true
}

// LoadBefore implements zeowire.Storage.
func (s *Store) LoadBefore(_ context.Context, oid zeowire.Oid, before zeowire.Tid) (zeowire.Revision, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	revs := s.revs[oid]
	if len(revs) == 0 || revs[len(revs)-1].data == nil {
		return zeowire.Revision{}, false, &zeowire.POSKeyError{Oid: oid}
	}
	i := sort.Search(len(revs), func(i int) bool { return revs[i].tid >= before }) - 1
	if i < 0 || revs[i].data == nil {
		return zeowire.Revision{}, false, nil
	}
	rev := zeowire.Revision{Data: revs[i].data, Start: revs[i].tid}
	if i+1 < len(revs) {
		rev.End = revs[i+1].tid
	}
	return rev, true, nil
}

// LoadSerial implements zeowire.Storage.
func (s *Store) LoadSerial(_ context.Context, oid zeowire.Oid, serial zeowire.Tid) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, r := range s.revs[oid] {
		if r.tid == serial && r.data != nil {
			return r.data, nil
		}
	}
	if s.mapping {
		return nil, &zeowire.POSKeyError{Oid: oid, Args: zeowire.Tuple{oid.Bytes(), serial.Bytes()}}
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

// History implements zeowire.Storage.
func (s *Store) History(_ context.Context, oid zeowire.Oid, size int) ([]zeowire.HistoryEntry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	revs := s.revs[oid]
	if len(revs) == 0 {
		return nil, &zeowire.POSKeyError{Oid: oid}
	}
	var out []zeowire.HistoryEntry
	for i := len(revs) - 1; i >= 0 && len(out) < size; i-- {
		out = append(out, zeowire.HistoryEntry{TxnMeta: revs[i].txn.meta, Size: int64(len(revs[i].data))})
	}
	return out, nil
}

// Iterate implements zeowire.Iterable.
func (s *Store) Iterate(_ context.Context, start, stop zeowire.Tid) (zeowire.TxnIterator, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var sel []*txnRec
	for _, t := range s.txns {
		if t.meta.Tid >= start && (stop == 0 || t.meta.Tid <= stop) {
			sel = append(sel, t)
		}
	}
	return &iterator{txns: sel}, nil
}

type iterator struct{ txns []*txnRec }

func (it *iterator) Next() (zeowire.TxnMeta, []zeowire.DataRecord, bool, error) {
	if len(it.txns) == 0 {
		return zeowire.TxnMeta{}, nil, false, nil
	}
	t := it.txns[0]
	it.txns = it.txns[1:]
	return t.meta, t.records, true, nil
}

func (it *iterator) Close() error { it.txns = nil; return nil }

// RecordIterNext implements zeowire.RecordIterable.
func (s *Store) RecordIterNext(_ context.Context, from zeowire.Oid, first bool) (zeowire.Oid, zeowire.Tid, []byte, zeowire.Oid, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	oids := make([]zeowire.Oid, 0, len(s.revs))
	for o := range s.revs {
		oids = append(oids, o)
	}
	slices.Sort(oids)
	i := 0
	if !first {
		i, _ = slices.BinarySearch(oids, from)
	}
	if i >= len(oids) {
		return 0, 0, nil, 0, false, &zeowire.RemoteError{Class: zeowire.ClassValueError, Args: zeowire.Tuple{"empty tree"}}
	}
	cur, _ := s.current(oids[i])
	if i+1 < len(oids) {
		return oids[i], cur.tid, cur.data, oids[i+1], true, nil
	}
	return oids[i], cur.tid, cur.data, 0, false, nil
}

// UndoLog implements zeowire.Undoable.
func (s *Store) UndoLog(_ context.Context, first, last int, filter func(*zeowire.TxnMeta) bool) ([]zeowire.TxnMeta, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []zeowire.TxnMeta
	i := 0
	for j := len(s.txns) - 1; j >= 0 && i < last; j-- {
		m := s.txns[j].meta
		if m.Status == 'p' {
			break
		}
		if filter == nil || filter(&m) {
			if i >= first {
				out = append(out, m)
			}
			i++
		}
	}
	return out, nil
}

// Recent implements zeowire.RecentTransactions.
func (s *Store) Recent(_ context.Context, n int) ([]zeowire.Invalidation, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []zeowire.Invalidation
	for j := len(s.txns) - 1; j >= 0 && len(out) < n; j-- {
		inv := zeowire.Invalidation{Tid: s.txns[j].meta.Tid}
		for _, r := range s.txns[j].records {
			inv.Oids = append(inv.Oids, r.Oid)
		}
		out = append(out, inv)
	}
	return out, nil
}

// Pack implements zeowire.Packable.
func (s *Store) Pack(_ context.Context, t float64) error {
	packTid := zeowire.TidFromTime(timeFromSeconds(t))
	s.mu.Lock()
	defer s.mu.Unlock()
	drop := map[*txnRec]map[zeowire.Oid]bool{}
	for oid, revs := range s.revs {
		// Index of the revision current at packTid.
		i := sort.Search(len(revs), func(i int) bool { return revs[i].tid >= packTid }) - 1
		if i <= 0 {
			continue
		}
		for _, r := range revs[:i] {
			if drop[r.txn] == nil {
				drop[r.txn] = map[zeowire.Oid]bool{}
			}
			drop[r.txn][oid] = true
		}
		s.revs[oid] = append([]revision(nil), revs[i:]...)
	}
	// Garbage collection: objects not reachable from the root (oid 0)
	// through the revisions that remain go entirely.
	for _, oid := range s.unreachable() {
		for _, r := range s.revs[oid] {
			if drop[r.txn] == nil {
				drop[r.txn] = map[zeowire.Oid]bool{}
			}
			drop[r.txn][oid] = true
		}
		delete(s.revs, oid)
	}
	for t, oids := range drop {
		t.records = slices.DeleteFunc(t.records, func(r zeowire.DataRecord) bool { return oids[r.Oid] })
	}
	// Like FileStorage, drop the transactions before the pack time that
	// kept no record, and mark the others packed.
	s.txns = slices.DeleteFunc(s.txns, func(t *txnRec) bool {
		return t.meta.Tid < packTid && len(t.records) == 0
	})
	for _, t := range s.txns {
		if t.meta.Tid < packTid {
			t.meta.Status = 'p'
		}
	}
	s.recomputeSize()
	return nil
}

// unreachable lists the oids no remaining revision reachable from the root
// refers to (strong local references, as ZODB's referencesf sees them).
func (s *Store) unreachable() []zeowire.Oid {
	if _, ok := s.revs[0]; !ok {
		return nil // no root: nothing is known to be garbage
	}
	var sc refs.Scanner
	var buf []refs.Ref
	seen := map[zeowire.Oid]bool{0: true}
	todo := []zeowire.Oid{0}
	for len(todo) > 0 {
		oid := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		for _, r := range s.revs[oid] {
			if r.data == nil {
				continue
			}
			var err error
			buf, err = sc.Scan(r.data, buf[:0])
			if err != nil {
				// An unreadable record keeps everything: never collect
				// what we cannot prove to be garbage.
				return nil
			}
			for _, ref := range buf {
				t := zeowire.Oid(ref.Oid)
				if ref.CountsForReferencesf() && !ref.Cross() && !seen[t] {
					seen[t] = true
					todo = append(todo, t)
				}
			}
		}
	}
	var out []zeowire.Oid
	for oid := range s.revs {
		if !seen[oid] {
			out = append(out, oid)
		}
	}
	return out
}

func (s *Store) recomputeSize() {
	s.size = 4
	for _, t := range s.txns {
		s.size += txnSize(t)
	}
}

// txnSize estimates the FileStorage transaction record length.
func txnSize(t *txnRec) int64 {
	n := int64(23 + len(t.meta.User) + len(t.meta.Description) + 8)
	for _, r := range t.records {
		n += 42
		if r.DataTxn != 0 && r.Data == nil {
			n += 8
		} else {
			n += int64(len(r.Data))
		}
	}
	return n
}

// Begin implements zeowire.Storage.
func (s *Store) Begin(_ context.Context, meta zeowire.TxnMeta) (zeowire.StorageTxn, error) {
	return &txn{s: s, meta: meta, index: map[zeowire.Oid]int{}}, nil
}

type txn struct {
	s     *Store
	meta  zeowire.TxnMeta
	recs  []zeowire.DataRecord
	index map[zeowire.Oid]int
	voted bool
	blobs map[zeowire.Oid]string // oid -> blob file to move in at Finish
}

func (t *txn) put(r zeowire.DataRecord) {
	r.Tid = t.meta.Tid
	if i, ok := t.index[r.Oid]; ok {
		t.recs[i] = r
		return
	}
	t.index[r.Oid] = len(t.recs)
	t.recs = append(t.recs, r)
}

func (t *txn) Store(oid zeowire.Oid, serial zeowire.Tid, data []byte) error {
	t.s.mu.RLock()
	cur, ok := t.s.current(oid)
	t.s.mu.RUnlock()
	if ok && cur.tid != serial {
		return &zeowire.ConflictError{Oid: oid, Committed: cur.tid, Serial: serial}
	}
	t.put(zeowire.DataRecord{Oid: oid, Data: data})
	return nil
}

func (t *txn) CheckCurrent(oid zeowire.Oid, serial zeowire.Tid) error {
	t.s.mu.RLock()
	cur, ok := t.s.current(oid)
	t.s.mu.RUnlock()
	if !ok {
		return &zeowire.POSKeyError{Oid: oid}
	}
	if cur.tid != serial {
		return &zeowire.ConflictError{Oid: oid, Committed: cur.tid, Serial: serial, Read: true}
	}
	return nil
}

func (t *txn) Delete(oid zeowire.Oid, serial zeowire.Tid) error {
	t.s.mu.RLock()
	cur, ok := t.s.current(oid)
	t.s.mu.RUnlock()
	if !ok || cur.data == nil {
		return &zeowire.POSKeyError{Oid: oid}
	}
	if cur.tid != serial {
		return &zeowire.ConflictError{Oid: oid, Committed: cur.tid, Serial: serial}
	}
	t.put(zeowire.DataRecord{Oid: oid})
	return nil
}

func (t *txn) Restore(oid zeowire.Oid, serial zeowire.Tid, data []byte, prev zeowire.Tid) error {
	r := zeowire.DataRecord{Oid: oid, Data: data, DataTxn: prev}
	if data == nil && prev != 0 {
		t.s.mu.RLock()
		for _, rv := range t.s.revs[oid] {
			if rv.tid == prev {
				r.Data = rv.data
			}
		}
		t.s.mu.RUnlock()
	}
	t.put(r)
	return nil
}

// ErrUndo is the UndoError of the reference.
var ErrUndo = errors.New("undo error")

func (t *txn) Undo(id zeowire.Tid) ([]zeowire.Oid, error) {
	t.s.mu.RLock()
	defer t.s.mu.RUnlock()
	var undone *txnRec
	for _, tr := range t.s.txns {
		if tr.meta.Tid == id {
			undone = tr
		}
	}
	if undone == nil {
		return nil, &zeowire.RemoteError{Class: "ZODB.POSException.UndoError", Args: zeowire.Tuple{"Invalid undo transaction id"}}
	}
	var oids []zeowire.Oid
	for _, r := range undone.records {
		revs := t.s.revs[r.Oid]
		if len(revs) == 0 || revs[len(revs)-1].tid != id {
			return nil, &zeowire.RemoteError{Class: "ZODB.POSException.UndoError", Args: zeowire.Tuple{"Some data were modified by a later transaction", r.Oid.Bytes()}}
		}
		nr := zeowire.DataRecord{Oid: r.Oid}
		if len(revs) >= 2 {
			prev := revs[len(revs)-2]
			nr.Data, nr.DataTxn = prev.data, prev.tid
		}
		t.put(nr)
		oids = append(oids, r.Oid)
	}
	return oids, nil
}

func (t *txn) Vote() error { t.voted = true; return nil }

func (t *txn) Finish() error {
	if !t.voted {
		return fmt.Errorf("memstore: finish of a transaction that was not voted")
	}
	if err := t.commitBlobs(); err != nil {
		return fmt.Errorf("memstore: committing blobs: %w", err)
	}
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	tr := &txnRec{meta: t.meta, records: t.recs}
	s.txns = append(s.txns, tr)
	for _, r := range t.recs {
		s.revs[r.Oid] = append(s.revs[r.Oid], revision{tid: r.Tid, data: r.Data, dataTxn: r.DataTxn, txn: tr})
		s.nextOid = max(s.nextOid, r.Oid)
	}
	tr.meta.Size = txnSize(tr)
	s.size += tr.meta.Size
	s.last = t.meta.Tid
	return nil
}

func (t *txn) Abort() { t.recs, t.blobs = nil, nil }
