package zeowire

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"time"
)

type txnState uint8

const (
	txnOpen    txnState = iota // collecting operations
	txnWaiting                 // vote waiting for the commit lock
	txnVoting                  // vote holds the lock, replaying
	txnVoted                   // voted: lock held until finish/abort
)

type opKind uint8

const (
	opStore opKind = iota
	opCheckCurrent
	opDelete
	opRestore
	opUndo
	opStoreBlob
)

// op is one queued operation of the transaction log.
type op struct {
	kind   opKind
	oid    Oid
	serial Tid
	data   []byte
	prev   Tid // restore: back pointer transaction
	// blobPath is the uploaded (or shared) blob file of opStoreBlob.
	blobPath string
	// A large transaction's data goes to its spill file: data is then nil
	// and the record is at spillOff (spillLen bytes; -1 when not spilled).
	spillOff int64
	spillLen int
}

// zeoTxn is a connection's transaction between tpc_begin and finish/abort.
type zeoTxn struct {
	id       any // the client's opaque transaction id
	meta     TxnMeta
	explicit bool // tpc_begin asked for a tid
	ops      []op
	state    txnState
	aborted  chan struct{}
	stxn     StorageTxn
	tid      Tid
	changed  []Oid // oids to invalidate at finish
	votedAt  time.Time
	resolved []Oid // vote result

	memBytes int64    // data held in memory by ops
	spill    *os.File // data beyond Server.SpillThreshold
	spillEnd int64
}

// DefaultSpillThreshold is how much record data one transaction keeps in
// memory before the rest goes to a temporary file (the reference keeps its
// whole operation log in a temporary file).
const DefaultSpillThreshold = 16 << 20

// keep stores the op's data in memory or in the spill file.
func (t *zeoTxn) keep(s *Server, o *op) error {
	o.spillOff = -1
	threshold := s.SpillThreshold
	if threshold == 0 {
		threshold = DefaultSpillThreshold
	}
	if o.data == nil || threshold < 0 || t.memBytes+int64(len(o.data)) <= threshold {
		t.memBytes += int64(len(o.data))
		return nil
	}
	if t.spill == nil {
		f, err := os.CreateTemp(s.TempDir, "zeo-txn-*.tmp")
		if err != nil {
			return fmt.Errorf("spilling a large transaction: %w", err)
		}
		os.Remove(f.Name()) // anonymous: gone when closed, even after a crash
		t.spill = f
	}
	if _, err := t.spill.WriteAt(o.data, t.spillEnd); err != nil {
		return fmt.Errorf("spilling a large transaction: %w", err)
	}
	o.spillOff, o.spillLen = t.spillEnd, len(o.data)
	t.spillEnd += int64(len(o.data))
	o.data = nil
	return nil
}

// dataOf returns the op's record data, reading it back if spilled.
func (t *zeoTxn) dataOf(o *op) ([]byte, error) {
	if o.spillOff < 0 {
		return o.data, nil
	}
	b := make([]byte, o.spillLen)
	if _, err := t.spill.ReadAt(b, o.spillOff); err != nil {
		return nil, fmt.Errorf("reading back a spilled record: %w", err)
	}
	return b, nil
}

// dataLen is the op's record length.
func (o *op) dataLen() int {
	if o.spillOff >= 0 {
		return o.spillLen
	}
	return len(o.data)
}

func (c *serverConn) checkWritable() error {
	if c.readOnly {
		return ErrReadOnly
	}
	return nil
}

// activeTxn returns the transaction the async call names, or the
// StorageTransactionError the reference raises.
func (c *serverConn) activeTxnLocked(id any) (*zeoTxn, error) {
	if c.txn == nil {
		return nil, &StorageTransactionError{Args: Tuple{nil, id}}
	}
	if !txnIDEqual(c.txn.id, id) {
		return nil, &StorageTransactionError{Args: Tuple{c.txn.id, id}}
	}
	return c.txn, nil
}

func (c *serverConn) tpcBegin(_ context.Context, _ *Message, a []any) (any, error) {
	if err := c.checkWritable(); err != nil {
		return nil, err
	}
	user, err := argBytesOrNone("tpc_begin", "user", a[1])
	if err != nil {
		return nil, err
	}
	desc, err := argBytesOrNone("tpc_begin", "description", a[2])
	if err != nil {
		return nil, err
	}
	var ext Dict
	switch x := a[3].(type) {
	case Dict:
		ext = x
	case nil:
	default:
		return nil, &ArgError{Method: "tpc_begin", Msg: "ext must be a dict, got " + describe(a[3])}
	}
	tid, explicit, err := optTid("tpc_begin", a[4])
	if err != nil {
		return nil, err
	}
	status := byte(' ')
	switch x := a[5].(type) {
	case missingArg, nil:
	case string:
		if len(x) != 1 {
			return nil, &ArgError{Method: "tpc_begin", Msg: fmt.Sprintf("status must be one character, got %q", x)}
		}
		status = x[0]
	case []byte:
		if len(x) != 1 {
			return nil, &ArgError{Method: "tpc_begin", Msg: "status must be one character"}
		}
		status = x[0]
	default:
		return nil, &ArgError{Method: "tpc_begin", Msg: "status must be a str, got " + describe(a[5])}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.txn != nil {
		if txnIDEqual(c.txn.id, a[0]) {
			c.logger().Warn("duplicate tpc_begin", "txn", Repr(a[0]))
			return nil, nil
		}
		return nil, &StorageTransactionError{Args: Tuple{"Multiple simultaneous tpc_begin requests from the same client."}}
	}
	c.txn = &zeoTxn{
		id:       a[0],
		meta:     TxnMeta{Tid: tid, Status: status, User: user, Description: desc, Extension: ext},
		explicit: explicit,
		aborted:  make(chan struct{}),
	}
	c.st.mu.Lock()
	c.st.stats.activeTxns++
	c.st.mu.Unlock()
	return nil, nil
}

// queue appends an operation to the open transaction named id.
func (c *serverConn) queue(id any, o op) error {
	if err := c.checkWritable(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, err := c.activeTxnLocked(id)
	if err != nil {
		return err
	}
	if t.state != txnOpen {
		return &StorageTransactionError{Args: Tuple{"operation after vote"}}
	}
	if err := t.keep(c.s, &o); err != nil {
		return err
	}
	t.ops = append(t.ops, o)
	if o.kind == opStore || o.kind == opRestore || o.kind == opDelete {
		// (blob stores are not counted: their storea was)
		c.st.mu.Lock()
		c.st.stats.stores++
		c.st.mu.Unlock()
	}
	return nil
}

func (c *serverConn) storea(_ context.Context, _ *Message, a []any) (any, error) {
	// Read-only first, before the arguments, as the reference's _check_tid.
	if err := c.checkWritable(); err != nil {
		return nil, err
	}
	oid, err := argOid("storea", a[0])
	if err != nil {
		return nil, err
	}
	serial, err := argTid("storea", a[1])
	if err != nil {
		return nil, err
	}
	data, ok := a[2].([]byte)
	if !ok {
		return nil, &ArgError{Method: "storea", Msg: "data must be bytes, got " + describe(a[2])}
	}
	return nil, c.queue(a[3], op{kind: opStore, oid: oid, serial: serial, data: data})
}

func (c *serverConn) checkCurrent(_ context.Context, _ *Message, a []any) (any, error) {
	// Read-only first, before the arguments, as the reference's _check_tid.
	if err := c.checkWritable(); err != nil {
		return nil, err
	}
	oid, err := argOid("checkCurrentSerialInTransaction", a[0])
	if err != nil {
		return nil, err
	}
	serial, err := argTid("checkCurrentSerialInTransaction", a[1])
	if err != nil {
		return nil, err
	}
	return nil, c.queue(a[2], op{kind: opCheckCurrent, oid: oid, serial: serial})
}

func (c *serverConn) deleteObject(_ context.Context, _ *Message, a []any) (any, error) {
	// Read-only first, before the arguments, as the reference's _check_tid.
	if err := c.checkWritable(); err != nil {
		return nil, err
	}
	oid, err := argOid("deleteObject", a[0])
	if err != nil {
		return nil, err
	}
	serial, err := argTid("deleteObject", a[1])
	if err != nil {
		return nil, err
	}
	return nil, c.queue(a[2], op{kind: opDelete, oid: oid, serial: serial})
}

func (c *serverConn) restorea(_ context.Context, _ *Message, a []any) (any, error) {
	// Read-only first, before the arguments, as the reference's _check_tid.
	if err := c.checkWritable(); err != nil {
		return nil, err
	}
	oid, err := argOid("restorea", a[0])
	if err != nil {
		return nil, err
	}
	serial, err := argTid("restorea", a[1])
	if err != nil {
		return nil, err
	}
	data, err := argBytesOrNone("restorea", "data", a[2])
	if err != nil {
		return nil, err
	}
	prev, _, err := optTid("restorea", a[3])
	if err != nil {
		return nil, err
	}
	return nil, c.queue(a[4], op{kind: opRestore, oid: oid, serial: serial, data: data, prev: prev})
}

func (c *serverConn) undoa(_ context.Context, _ *Message, a []any) (any, error) {
	// Read-only first, before the arguments, as the reference's _check_tid.
	if err := c.checkWritable(); err != nil {
		return nil, err
	}
	raw, ok := a[0].([]byte)
	if !ok {
		return nil, &ArgError{Method: "undoa", Msg: "transaction id must be bytes, got " + describe(a[0])}
	}
	dec, err := base64.StdEncoding.DecodeString(string(raw))
	if err != nil || len(dec) != 8 {
		return nil, &RemoteError{Class: "ZODB.POSException.UndoError", Args: Tuple{"Invalid undo transaction id"}}
	}
	tid, _ := AsTid(dec)
	return nil, c.queue(a[1], op{kind: opUndo, serial: tid})
}

// vote takes the commit lock (possibly waiting), then replays the log into
// the storage. The reply is sent from a goroutine so that the connection
// keeps serving other calls while waiting.
func (c *serverConn) vote(ctx context.Context, m *Message, a []any) (any, error) {
	if m.Kind == KindAsync {
		// The reference runs it and closes; nothing can be answered.
		c.mu.Lock()
		_, err := c.activeTxnLocked(a[0])
		c.mu.Unlock()
		if err == nil {
			err = errors.New("vote sent as an async message")
		}
		return nil, err
	}
	if err := c.checkWritable(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	t, err := c.activeTxnLocked(a[0])
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	switch t.state {
	case txnWaiting:
		c.mu.Unlock()
		return nil, &StorageTransactionError{Args: Tuple{"Already voting (waiting)"}}
	case txnVoting, txnVoted:
		c.mu.Unlock()
		return nil, &StorageTransactionError{Args: Tuple{"Already voting (locked)"}}
	}
	t.state = txnWaiting
	st := c.st
	w := st.lock.acquire(c, c.s.now())
	c.mu.Unlock()

	select {
	case <-w.ready:
		// Uncontended: answer in order, on this goroutine.
		result, err := c.voteLocked(ctx, t)
		if err == errCloseConn {
			return nil, err
		}
		return result, err
	default:
	}
	c.logger().Debug("vote waiting for the commit lock")
	if !c.goDeferred(ctx, func() {
		select {
		case <-w.ready:
		case <-t.aborted:
			return
		}
		result, err := c.voteLocked(ctx, t)
		if err == errCloseConn {
			return
		}
		c.reply(m.ID, result, err)
	}) {
		return nil, errCloseConn
	}
	return nil, errDeferred
}

// voteLocked runs with the commit lock granted to c for transaction t.
func (c *serverConn) voteLocked(ctx context.Context, t *zeoTxn) (any, error) {
	st := c.st
	now := c.s.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.txn != t || c.closed {
		// Aborted or disconnected while we were being granted the lock.
		st.lock.release(c, now)
		return nil, errCloseConn
	}
	t.state = txnVoting
	fail := func(err error) (any, error) {
		if t.stxn != nil {
			t.stxn.Abort()
			t.stxn = nil
		}
		var ce *ConflictError
		if errors.As(err, &ce) {
			st.mu.Lock()
			st.stats.conflicts++
			st.mu.Unlock()
			c.logger().Info("conflict", "oid", ce.Oid, "read", ce.Read)
		}
		c.endTxnLocked(false)
		return nil, err
	}
	var tid Tid
	if t.explicit {
		if err := st.useTid(t.meta.Tid); err != nil {
			return fail(err)
		}
		tid = t.meta.Tid
	} else {
		tid = st.nextTid()
	}
	meta := t.meta
	meta.Tid = tid
	stxn, err := st.storage.Begin(ctx, meta)
	if err != nil {
		return fail(err)
	}
	t.stxn, t.tid = stxn, tid
	t.changed = t.changed[:0]
	t.resolved = t.resolved[:0]
	var pending []*ConflictError // client-resolution conflicts, by store order
	// store handles a store's outcome: conflicts are collected in
	// client-resolution mode; a later successful store of the oid wins.
	store := func(o *op, data []byte, err error) error {
		var ce *ConflictError
		if err != nil && errors.As(err, &ce) && !ce.Read {
			ce.Data = data
			if ce.ClassName == "" {
				ce.ClassName = recordClassName(data)
			}
			if c.s.ClientConflictResolution {
				pending = removeConflict(pending, o.oid)
				pending = append(pending, ce)
				return nil
			}
			if o.kind == opStore {
				if resolved, rerr := resolveLength(ctx, st.storage, ce, data); rerr == nil {
					if err2 := stxn.Store(o.oid, ce.Committed, resolved); err2 == nil {
						c.logger().Info("conflict resolved", "oid", o.oid, "class", lengthClass)
						t.changed = append(t.changed, o.oid)
						t.resolved = append(t.resolved, o.oid)
						return nil
					}
				}
			}
			return err
		}
		if err == nil {
			pending = removeConflict(pending, o.oid)
			t.changed = append(t.changed, o.oid)
		}
		return err
	}
	// Ordinary operations in order, then the blob stores in reverse upload
	// order, as the reference replays them.
	var blobs []*op
	for i := range t.ops {
		o := &t.ops[i]
		data, err := t.dataOf(o)
		if err != nil {
			return fail(err)
		}
		switch o.kind {
		case opStore:
			err = store(o, data, stxn.Store(o.oid, o.serial, data))
		case opStoreBlob:
			blobs = append(blobs, o)
		case opCheckCurrent:
			err = stxn.CheckCurrent(o.oid, o.serial)
		case opDelete:
			err = stxn.Delete(o.oid, o.serial)
			t.changed = append(t.changed, o.oid)
		case opRestore:
			err = stxn.Restore(o.oid, o.serial, data, o.prev)
			t.changed = append(t.changed, o.oid)
		case opUndo:
			var oids []Oid
			oids, err = stxn.Undo(o.serial)
			t.changed = append(t.changed, oids...)
			t.resolved = append(t.resolved, oids...)
		}
		if err != nil {
			return fail(err)
		}
	}
	for i := len(blobs) - 1; i >= 0; i-- {
		o := blobs[i]
		bt, ok := stxn.(BlobTxn)
		if !ok {
			return fail(errors.New("this storage does not store blobs"))
		}
		data, err := t.dataOf(o)
		if err != nil {
			return fail(err)
		}
		if err := store(o, data, bt.StoreBlob(o.oid, o.serial, data, o.blobPath)); err != nil {
			return fail(err)
		}
	}
	if len(pending) > 0 {
		// Client-side resolution: nothing written, the ZEO transaction and its
		// whole log stay; the client appends resolved stores and votes again.
		stxn.Abort()
		t.stxn = nil
		t.state = txnOpen
		st.lock.release(c, c.s.now())
		out := make(List, len(pending))
		for i, ce := range pending {
			out[i] = Dict{
				{Key: "oid", Value: ce.Oid.Bytes()},
				{Key: "serials", Value: Tuple{ce.Committed.Bytes(), ce.Serial.Bytes()}},
				{Key: "data", Value: ce.Data},
			}
		}
		c.logger().Info("conflicts returned to the client for resolution", "count", len(pending))
		return out, nil
	}
	if err := stxn.Vote(); err != nil {
		return fail(err)
	}
	t.state = txnVoted
	t.votedAt = c.s.now()
	out := make(List, len(t.resolved))
	for i, o := range t.resolved {
		out[i] = o.Bytes()
	}
	return out, nil
}

func removeConflict(l []*ConflictError, oid Oid) []*ConflictError {
	for i, ce := range l {
		if ce.Oid == oid {
			return append(l[:i], l[i+1:]...)
		}
	}
	return l
}

func (c *serverConn) tpcFinish(_ context.Context, _ *Message, a []any) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.txn
	if t == nil || !txnIDEqual(t.id, a[0]) {
		return nil, nil
	}
	if t.state != txnVoted {
		return nil, &RemoteError{Class: ClassAssertionError, Args: Tuple{"finished called wo lock"}}
	}
	st := c.st
	start := t.votedAt
	st.mu.Lock()
	if err := t.stxn.Finish(); err != nil {
		st.mu.Unlock()
		c.logger().Error("tpc_finish failed; transaction aborted", "tid", t.tid, "error", err)
		t.stxn.Abort()
		t.stxn = nil
		c.endTxnLocked(false)
		return nil, err
	}
	t.stxn = nil
	oids := make(List, len(t.changed))
	for i, o := range t.changed {
		oids[i] = o.Bytes()
	}
	// Queue invalidations to the others before the lock is released, so
	// every connection sees commits in tid order.
	st.invq = append([]Invalidation{{Tid: t.tid, Oids: append([]Oid(nil), t.changed...)}}, st.invq...)
	if len(st.invq) > st.qsize {
		st.invq = st.invq[:st.qsize]
	}
	st.stats.commits++
	st.broadcastLocked(c, "invalidateTransaction", Tuple{t.tid.Bytes(), oids})
	st.mu.Unlock()
	var size int
	for i := range t.ops {
		size += t.ops[i].dataLen()
	}
	c.logger().Info("committed", "tid", t.tid, "objects", len(t.changed), "bytes", size, "duration", c.s.now().Sub(start))
	info := st.storage.Info()
	// info precedes the reply; both go out in one write.
	infoFrame, infoErr := c.encode(&Message{ID: int64(0), Kind: KindAsync, Name: "info", Args: Tuple{Dict{{Key: "length", Value: info.Length}, {Key: "size", Value: info.Size}}}})
	tid := t.tid
	c.endTxnLocked(true)
	if infoErr != nil {
		return tid.Bytes(), nil
	}
	return replyAfter{frame: infoFrame, result: tid.Bytes()}, nil
}

func (c *serverConn) tpcAbort(_ context.Context, _ *Message, a []any) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.txn == nil || !txnIDEqual(c.txn.id, a[0]) {
		return nil, nil
	}
	c.abortTxnLocked()
	return nil, nil
}

// abortTxnLocked aborts the current transaction whatever its state.
func (c *serverConn) abortTxnLocked() {
	t := c.txn
	if t.stxn != nil {
		t.stxn.Abort()
		t.stxn = nil
	}
	c.st.mu.Lock()
	c.st.stats.aborts++
	c.st.mu.Unlock()
	c.endTxnLocked(false)
}

// endTxnLocked forgets the transaction and releases (or leaves the queue
// of) the commit lock.
func (c *serverConn) endTxnLocked(committed bool) {
	t := c.txn
	if t == nil {
		return
	}
	c.txn = nil
	close(t.aborted)
	if t.spill != nil {
		t.spill.Close()
	}
	// Uploaded blob files not moved into the blob tree by a commit.
	for i := range t.ops {
		if t.ops[i].blobPath != "" {
			os.Remove(t.ops[i].blobPath)
		}
	}
	st := c.st
	st.mu.Lock()
	st.stats.activeTxns--
	st.mu.Unlock()
	if t.state != txnOpen {
		st.lock.release(c, c.s.now())
	}
}

// recordClassName returns "module.name" of a data record's class pickle
// (`\x80\x03cmodule\nname\n...`), or "" if it is in another form.
func recordClassName(data []byte) string {
	p := data
	if len(p) >= 2 && p[0] == 0x80 {
		p = p[2:]
	}
	if len(p) > 0 && p[0] == '(' {
		p = p[1:]
	}
	if len(p) == 0 || p[0] != 'c' {
		return ""
	}
	p = p[1:]
	var parts [2]string
	for i := range parts {
		j := indexByte(p, '\n')
		if j < 0 {
			return ""
		}
		parts[i] = string(p[:j])
		p = p[j+1:]
	}
	return parts[0] + "." + parts[1]
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
