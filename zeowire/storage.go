package zeowire

import (
	"context"
	"errors"
)

// ErrNotSupported is returned by storages for an optional feature they lack;
// the client gets builtins.AttributeError as from the reference server.
var ErrNotSupported = errors.New("not supported by this storage")

// StorageInfo is what get_info reports.
type StorageInfo struct {
	Name                   string // FileStorage: its path; MappingStorage: "Mapping Storage"
	Length                 int64  // number of objects
	Size                   int64  // bytes
	SupportsUndo           bool
	SupportsRecordIternext bool
	// Interfaces are (module, name) pairs the client tests for features,
	// e.g. {"ZODB.interfaces", "IStorageIteration"}.
	Interfaces [][2]string
}

// Revision is one stored revision of an object.
type Revision struct {
	Data  []byte
	Start Tid // tid of this revision
	End   Tid // tid of the next revision; 0 if current
}

// TxnMeta is the metadata of a transaction, as given to tpc_begin and as
// found when iterating.
type TxnMeta struct {
	Tid         Tid
	Status      byte // ' ' normally, 'p' packed, 'u' undo...
	User        []byte
	Description []byte
	Extension   Dict // str keys; values as the application set them
	Size        int64
}

// DataRecord is one data record of a transaction when iterating.
type DataRecord struct {
	Oid     Oid
	Tid     Tid
	Data    []byte // nil for a deletion
	DataTxn Tid    // back pointer transaction, 0 if none
}

// HistoryEntry is one revision of history(oid).
type HistoryEntry struct {
	TxnMeta
	Size int64 // length of the data record
}

// Storage is what the server needs from a served storage.
//
// Concurrency: loads, history and iteration run concurrently with each other
// and with a commit in progress; the server runs at most one StorageTxn at a
// time per storage (under its commit lock), so conflict checks inside a
// StorageTxn see a stable committed state. A transaction's data must not be
// visible to loads before Finish returns, and LastTransaction must change
// only when Finish makes the transaction visible.
//
// Tids: the server chooses them (TimeStamp of its clock, later than both
// LastTransaction and every tid it handed out before, or the tid a
// tpc_begin asked for) and passes them to Begin; storages must use them.
//
// Errors the client must see as such are the typed ones of this package:
// *POSKeyError, *ConflictError, ErrReadOnly, ErrNotSupported (an optional
// feature the storage lacks), or *RemoteError for any other Python
// exception class. Anything else becomes builtins.Exception.
//
// Durability: Finish returns once the transaction is durable (FileStorage:
// written and fsynced); the server tells the client only after that.
// Optional features are separate interfaces: Iterable, RecordIterable,
// Undoable, Packable, RecentTransactions, BlobStorage.
type Storage interface {
	Info() StorageInfo
	// LastTransaction is the tid of the last committed transaction, Z64 if none.
	LastTransaction() Tid
	// LoadBefore returns the revision current just before tid. ok is false if
	// the object exists but has no revision older than tid; a *POSKeyError
	// means it does not exist (or its current record is a deletion).
	LoadBefore(ctx context.Context, oid Oid, before Tid) (rev Revision, ok bool, err error)
	// LoadSerial returns the record written by transaction serial for oid
	// (back pointers resolved), or a *POSKeyError.
	LoadSerial(ctx context.Context, oid Oid, serial Tid) ([]byte, error)
	// NewOids allocates n fresh oids; allocated oids are never handed out
	// again by this storage instance.
	NewOids(n int) ([]Oid, error)
	// History returns up to size revisions of oid, newest first.
	History(ctx context.Context, oid Oid, size int) ([]HistoryEntry, error)
	// Begin starts the storage transaction with the given tid (chosen by the
	// server) and metadata.
	Begin(ctx context.Context, meta TxnMeta) (StorageTxn, error)
	// Close releases the storage.
	Close() error
}

// StorageTxn is a transaction in progress in a storage: replayed from the
// client's operation log at vote time, then finished or aborted.
type StorageTxn interface {
	// Store writes data for oid; serial is the revision the client started
	// from (z64 for a new object). A mismatch with the current revision of an
	// existing object is a *ConflictError. Storing an oid twice: last wins.
	Store(oid Oid, serial Tid, data []byte) error
	// CheckCurrent fails with a read *ConflictError if oid is not at serial.
	CheckCurrent(oid Oid, serial Tid) error
	// Delete removes oid (external GC): *POSKeyError if missing,
	// *ConflictError if not at serial.
	Delete(oid Oid, serial Tid) error
	// Restore writes data (nil: a deletion) without conflict checks,
	// optionally as a back pointer to prevTxn (0: none).
	Restore(oid Oid, serial Tid, data []byte, prevTxn Tid) error
	// Undo undoes transaction id and returns the oids it changes.
	Undo(id Tid) ([]Oid, error)
	// Vote makes the transaction ready to commit (data written, not yet
	// visible).
	Vote() error
	// Finish commits; afterwards the data is durable and visible.
	Finish() error
	// Abort discards the transaction.
	Abort()
}

// Iterable storages support iterator_start (transaction iteration).
type Iterable interface {
	// Iterate returns the transactions with start <= tid <= stop (0 stop: no
	// limit) in tid order.
	Iterate(ctx context.Context, start, stop Tid) (TxnIterator, error)
}

// TxnIterator walks transactions; Next returns ok=false at the end.
type TxnIterator interface {
	Next() (meta TxnMeta, records []DataRecord, ok bool, err error)
	Close() error
}

// RecordIterable storages support record_iternext: the current record of
// every object in oid order.
type RecordIterable interface {
	// RecordIterNext returns the first current object with oid >= from
	// (from is ignored when first is true) and the oid of the next one.
	RecordIterNext(ctx context.Context, from Oid, first bool) (oid Oid, tid Tid, data []byte, next Oid, hasNext bool, err error)
}

// Undoable storages support undoLog/undoInfo and undoa.
type Undoable interface {
	// UndoLog returns transactions newest first, skipping the first
	// `first`, stopping before index last, keeping those filter accepts.
	UndoLog(ctx context.Context, first, last int, filter func(*TxnMeta) bool) ([]TxnMeta, error)
}

// Packable storages support pack.
type Packable interface {
	// Pack removes revisions not needed to read the database as of time t
	// (seconds since the epoch).
	Pack(ctx context.Context, t float64) error
}

// RecentTransactions lets a storage fill the invalidation queue at start-up.
type RecentTransactions interface {
	// Recent returns up to n of the newest transactions, newest first, with
	// the oids each one changed.
	Recent(ctx context.Context, n int) ([]Invalidation, error)
}

// Invalidation is one commit as clients are told about it.
type Invalidation struct {
	Tid  Tid
	Oids []Oid
}

// ReadOnlyReporter is implemented by storages that can be opened read-only
// (zeo.conf <filestorage> read-only true): the server then refuses
// writable registrations on them, as with Server.ReadOnlyStorages.
type ReadOnlyReporter interface {
	ReadOnly() bool
}
