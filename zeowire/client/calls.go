package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"sync/atomic"
	"time"

	"github.com/zodbctl/zodbctl/zeowire"
)

// Info is the get_info reply plus what registration told.
type Info struct {
	Name                   string
	Size                   int64
	Length                 int64
	SupportsUndo           bool
	SupportsRecordIternext bool
	Interfaces             [][2]string  // (module, name) pairs
	ReadOnly               bool         // the registration is read-only (asked for, or the fallback)
	LastTid                zeowire.Tid  // as of the registration
	Raw                    zeowire.Dict // the whole reply, in the server's order
}

// Supports reports whether the storage announces ZODB.interfaces.<name>.
func (i *Info) Supports(name string) bool {
	for _, p := range i.Interfaces {
		if p[0] == "ZODB.interfaces" && p[1] == name {
			return true
		}
	}
	return false
}

// Info calls get_info; LastTid is KnownTid, as the Python client has it
// (LastTransaction asks the server).
func (c *Client) Info(ctx context.Context) (*Info, error) {
	var info *Info
	err := c.do(ctx, "get_info", func(ctx context.Context, conn *zeowire.ClientConn) error {
		d, err := conn.GetInfo(ctx)
		if err != nil {
			return err
		}
		info = parseInfo(d)
		return nil
	})
	if info != nil {
		info.ReadOnly = c.ReadOnly()
		info.LastTid = c.KnownTid()
	}
	return info, err
}

func parseInfo(d zeowire.Dict) *Info {
	info := &Info{Raw: d}
	for _, kv := range d {
		k, _ := kv.Key.(string)
		switch k {
		case "name":
			info.Name, _ = kv.Value.(string)
		case "size":
			info.Size, _ = zeowire.AsInt(kv.Value)
		case "length":
			info.Length, _ = zeowire.AsInt(kv.Value)
		case "supportsUndo":
			info.SupportsUndo = zeowire.Truthy(kv.Value)
		case "supports_record_iternext":
			info.SupportsRecordIternext = zeowire.Truthy(kv.Value)
		case "interfaces":
			for _, p := range seq(kv.Value) {
				pair := seq(p)
				if len(pair) != 2 {
					continue
				}
				m, _ := pair[0].(string)
				n, _ := pair[1].(string)
				info.Interfaces = append(info.Interfaces, [2]string{m, n})
			}
		}
	}
	return info
}

// seq returns the items of a tuple or list (msgpack gives tuples for both).
func seq(v any) []any {
	switch x := v.(type) {
	case zeowire.Tuple:
		return x
	case zeowire.List:
		return x
	}
	return nil
}

// LastTransaction returns the storage's last committed tid.
func (c *Client) LastTransaction(ctx context.Context) (zeowire.Tid, error) {
	var tid zeowire.Tid
	err := c.do(ctx, "lastTransaction", func(ctx context.Context, conn *zeowire.ClientConn) (err error) {
		tid, err = conn.LastTransaction(ctx)
		return err
	})
	return tid, err
}

// Ping makes a round trip.
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, "ping", func(ctx context.Context, conn *zeowire.ClientConn) error {
		_, err := conn.Call(ctx, "ping")
		return err
	})
}

// ServerStatus returns server_status() of the registered storage.
func (c *Client) ServerStatus(ctx context.Context) (zeowire.Dict, error) {
	var d zeowire.Dict
	err := c.do(ctx, "server_status", func(ctx context.Context, conn *zeowire.ClientConn) (err error) {
		d, err = conn.ServerStatus(ctx)
		return err
	})
	return d, err
}

// LoadBefore loads the revision of oid current before tid (use
// zeowire.MaxTid for the current one); ok is false when the object has no
// revision before tid. A missing object is a *zeowire.POSKeyError.
func (c *Client) LoadBefore(ctx context.Context, oid zeowire.Oid, before zeowire.Tid) (rev zeowire.Revision, ok bool, err error) {
	err = c.do(ctx, "loadBefore", func(ctx context.Context, conn *zeowire.ClientConn) (err error) {
		rev, ok, err = conn.LoadBefore(ctx, oid, before)
		return err
	})
	return rev, ok, err
}

// LoadSerial loads the record of oid written by transaction serial.
func (c *Client) LoadSerial(ctx context.Context, oid zeowire.Oid, serial zeowire.Tid) ([]byte, error) {
	var data []byte
	err := c.do(ctx, "loadSerial", func(ctx context.Context, conn *zeowire.ClientConn) error {
		r, err := conn.Call(ctx, "loadSerial", oid.Bytes(), serial.Bytes())
		if err != nil {
			return err
		}
		b, ok := r.([]byte)
		if !ok {
			return fmt.Errorf("malformed reply %s", zeowire.Repr(r))
		}
		data = b
		return nil
	})
	return data, err
}

// HistoryEntry is one revision from history(oid, size).
type HistoryEntry struct {
	Tid         zeowire.Tid
	Time        float64
	User        []byte
	Description []byte
	Size        int64
	Extension   zeowire.Dict // the other keys (the transaction's extension)
}

// History returns up to n revisions of oid, newest first.
func (c *Client) History(ctx context.Context, oid zeowire.Oid, n int) ([]HistoryEntry, error) {
	var out []HistoryEntry
	err := c.do(ctx, "history", func(ctx context.Context, conn *zeowire.ClientConn) error {
		r, err := conn.Call(ctx, "history", oid.Bytes(), int64(n))
		if err != nil {
			return err
		}
		out = out[:0]
		for _, e := range seq(r) {
			d, ok := e.(zeowire.Dict)
			if !ok {
				return fmt.Errorf("malformed reply entry %s", zeowire.Repr(e))
			}
			var h HistoryEntry
			for _, kv := range d {
				k, _ := kv.Key.(string)
				switch k {
				case "tid":
					if h.Tid, err = zeowire.AsTid(kv.Value); err != nil {
						return fmt.Errorf("malformed tid in reply: %w", err)
					}
				case "time":
					h.Time = asFloat(kv.Value)
				case "user_name":
					h.User = asBytes(kv.Value)
				case "description":
					h.Description = asBytes(kv.Value)
				case "size":
					h.Size, _ = zeowire.AsInt(kv.Value)
				default:
					h.Extension = append(h.Extension, kv)
				}
			}
			out = append(out, h)
		}
		if r != nil && seq(r) == nil {
			return fmt.Errorf("malformed reply %s", zeowire.Repr(r))
		}
		return nil
	})
	return out, err
}

func asFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	}
	return 0
}

func asBytes(v any) []byte {
	switch x := v.(type) {
	case []byte:
		return x
	case string:
		return []byte(x)
	}
	return nil
}

// Pack packs the storage to t (seconds since the epoch) and waits for the
// end of the pack (pack(t, True)).
func (c *Client) Pack(ctx context.Context, t float64) error {
	return c.do(ctx, "pack", func(ctx context.Context, conn *zeowire.ClientConn) error {
		_, err := conn.Call(ctx, "pack", t, true)
		return err
	})
}

// GetInvalidations asks which oids changed after tid (nil, false when the
// server cannot tell: the client must consider everything changed).
func (c *Client) GetInvalidations(ctx context.Context, tid zeowire.Tid) (Invalidation, bool, error) {
	var inv Invalidation
	var ok bool
	err := c.do(ctx, "getInvalidations", func(ctx context.Context, conn *zeowire.ClientConn) error {
		r, err := conn.Call(ctx, "getInvalidations", tid.Bytes())
		if err != nil || r == nil {
			return err
		}
		t := seq(r)
		if len(t) != 2 {
			return fmt.Errorf("malformed reply %s", zeowire.Repr(r))
		}
		if inv.Tid, err = zeowire.AsTid(t[0]); err != nil {
			return fmt.Errorf("malformed reply %s", zeowire.Repr(r))
		}
		inv.Oids = inv.Oids[:0]
		for _, o := range seq(t[1]) {
			oid, err := zeowire.AsOid(o)
			if err != nil {
				return fmt.Errorf("malformed oid in reply %s", zeowire.Repr(o))
			}
			inv.Oids = append(inv.Oids, oid)
		}
		ok = true
		return nil
	})
	return inv, ok, err
}

// Txn is one transaction from the server's iterator, with its records.
type Txn struct {
	Tid         zeowire.Tid
	Status      string
	User        []byte
	Description []byte
	Extension   zeowire.Dict
	Records     []Record
}

// Record is one data record from iterator_record_next.
type Record struct {
	Oid     zeowire.Oid
	Tid     zeowire.Tid
	Data    []byte      // nil: the object was deleted (or its creation undone)
	DataTxn zeowire.Tid // back pointer's transaction, 0 if none
}

// Transactions iterates the transactions with start ≤ tid ≤ stop (stop 0:
// to the end) with their records. After a lost connection it reconnects
// and resumes after the last transaction delivered. Breaking out of the
// loop releases the server's iterator.
func (c *Client) Transactions(ctx context.Context, start, stop zeowire.Tid) iter.Seq2[*Txn, error] {
	return func(yield func(*Txn, error) bool) {
		next := start
		reconnects := 0
		for {
			done, err := c.iterate(ctx, &next, stop, yield)
			if done {
				return
			}
			c.mu.Lock()
			conn, addr := c.conn, c.addr
			c.mu.Unlock()
			if !lost(conn, err) || ctx.Err() != nil {
				yield(nil, &OpError{Addr: addr, Op: "iterator", Err: err})
				return
			}
			if reconnects++; reconnects > maxReconnects {
				yield(nil, &ConnectionLostError{Addr: addr, Op: "iterator", Err: err})
				return
			}
			if rerr := c.reconnect(ctx, conn); rerr != nil {
				yield(nil, &ConnectionLostError{Addr: addr, Op: "iterator", Err: fmt.Errorf("%v; reconnecting: %w", err, rerr)})
				return
			}
		}
	}
}

// iterate runs one server-side iterator from *next; done is true when the
// iteration ended (exhausted or stopped by yield), else err says why not.
func (c *Client) iterate(ctx context.Context, next *zeowire.Tid, stop zeowire.Tid, yield func(*Txn, error) bool) (done bool, err error) {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return false, zeowire.ErrClosed
	}
	var stopArg any
	if stop != 0 {
		stopArg = stop.Bytes()
	}
	var startArg any
	if *next != 0 {
		startArg = next.Bytes()
	}
	r, err := c.call(ctx, conn, "iterator_start", startArg, stopArg)
	if err != nil {
		return false, err
	}
	iid, ok := zeowire.AsInt(r)
	if !ok {
		return false, fmt.Errorf("iterator_start: malformed reply %s", zeowire.Repr(r))
	}
	finished := false
	defer func() {
		if !finished && conn.Err() == nil {
			conn.Async("iterator_gc", zeowire.List{iid})
		}
	}()
	for {
		r, err := c.call(ctx, conn, "iterator_next", iid)
		if err != nil {
			return false, err
		}
		if r == nil {
			finished = true
			return true, nil
		}
		t, err := parseTxn(r)
		if err != nil {
			return false, fmt.Errorf("iterator_next: %w", err)
		}
		if err := c.records(ctx, conn, iid, t); err != nil {
			return false, err
		}
		if !yield(t, nil) {
			return true, nil
		}
		*next = t.Tid + 1
	}
}

func (c *Client) records(ctx context.Context, conn *zeowire.ClientConn, iid int64, t *Txn) error {
	r, err := c.call(ctx, conn, "iterator_record_start", iid, t.Tid.Bytes())
	if err != nil {
		return err
	}
	riid, ok := zeowire.AsInt(r)
	if !ok {
		return fmt.Errorf("iterator_record_start: malformed reply %s", zeowire.Repr(r))
	}
	for {
		r, err := c.call(ctx, conn, "iterator_record_next", riid)
		if err != nil {
			return err
		}
		if r == nil {
			return nil
		}
		f := seq(r)
		if len(f) != 4 {
			return fmt.Errorf("iterator_record_next: malformed reply %s", zeowire.Repr(r))
		}
		var rec Record
		var err1, err2 error
		rec.Oid, err1 = zeowire.AsOid(f[0])
		rec.Tid, err2 = zeowire.AsTid(f[1])
		if err1 != nil || err2 != nil {
			return fmt.Errorf("iterator_record_next: malformed reply %s", zeowire.Repr(r))
		}
		if f[2] != nil {
			b, ok := f[2].([]byte)
			if !ok {
				return fmt.Errorf("iterator_record_next: malformed data in reply %s", zeowire.Repr(r))
			}
			rec.Data = b
		}
		if f[3] != nil {
			if rec.DataTxn, err = zeowire.AsTid(f[3]); err != nil {
				return fmt.Errorf("iterator_record_next: malformed data_txn in reply %s", zeowire.Repr(r))
			}
		}
		t.Records = append(t.Records, rec)
	}
}

func parseTxn(r any) (*Txn, error) {
	f := seq(r)
	if len(f) != 5 {
		return nil, fmt.Errorf("malformed reply %s", zeowire.Repr(r))
	}
	tid, err := zeowire.AsTid(f[0])
	if err != nil {
		return nil, fmt.Errorf("malformed tid in reply %s", zeowire.Repr(r))
	}
	t := &Txn{Tid: tid, User: asBytes(f[2]), Description: asBytes(f[3])}
	t.Status, _ = f[1].(string)
	if f[4] != nil {
		d, ok := f[4].(zeowire.Dict)
		if !ok {
			return nil, fmt.Errorf("malformed extension in reply %s", zeowire.Repr(r))
		}
		t.Extension = d
	}
	return t, nil
}

// Store is one object record of a Commit.
type Store struct {
	Oid    zeowire.Oid
	Serial zeowire.Tid // the revision the change is based on (Z64 for a new object)
	Data   []byte
}

var txnCounter atomic.Int64

// Commit runs a two-phase commit of stores (tpc_begin, storea…, vote,
// tpc_finish) and returns the new tid. It is never repeated after a lost
// connection: the error is then a *ConnectionLostError and the outcome is
// unknown.
func (c *Client) Commit(ctx context.Context, user, description []byte, ext zeowire.Dict, stores []Store) (zeowire.Tid, error) {
	c.mu.Lock()
	conn, addr := c.conn, c.addr
	c.mu.Unlock()
	if conn == nil {
		return 0, fmt.Errorf("%s: commit: %w", addr, zeowire.ErrClosed)
	}
	fail := func(op string, err error) (zeowire.Tid, error) {
		if conn.Err() != nil && !isRemote(err) {
			return 0, &ConnectionLostError{Addr: addr, Op: op, Err: err}
		}
		return 0, &OpError{Addr: addr, Op: op, Err: err}
	}
	// A positive id unique in this process, like Python's id(transaction).
	txn := time.Now().UnixNano()&0xffffffffffff + txnCounter.Add(1)
	if ext == nil {
		ext = zeowire.Dict{}
	}
	if err := conn.Async("tpc_begin", txn, user, description, ext, nil, " "); err != nil {
		return fail("tpc_begin", err)
	}
	for _, s := range stores {
		if err := conn.Async("storea", s.Oid.Bytes(), s.Serial.Bytes(), s.Data, txn); err != nil {
			return fail("storea", err)
		}
	}
	r, err := c.call(ctx, conn, "vote", txn)
	if err == nil {
		// Conflicts returned for client-side resolution: this client does
		// not resolve, so they are a ConflictError.
		for _, e := range seq(r) {
			if d, ok := e.(zeowire.Dict); ok {
				ce := &zeowire.ConflictError{}
				if v, ok := d.Get("oid"); ok {
					ce.Oid, _ = zeowire.AsOid(v)
				}
				if v, ok := d.Get("serials"); ok {
					if s := seq(v); len(s) == 2 {
						ce.Committed, _ = zeowire.AsTid(s[0])
						ce.Serial, _ = zeowire.AsTid(s[1])
					}
				}
				err = ce
				break
			}
		}
	}
	if err != nil {
		if conn.Err() == nil {
			c.call(ctx, conn, "tpc_abort", txn)
		}
		return fail("vote", err)
	}
	r, err = c.call(ctx, conn, "tpc_finish", txn)
	if err != nil {
		return fail("tpc_finish", err)
	}
	tid, err := zeowire.AsTid(r)
	if err != nil {
		return fail("tpc_finish", errors.New("malformed reply "+zeowire.Repr(r)))
	}
	c.observe(tid)
	return tid, nil
}

// NewOids allocates new object ids (new_oids(); the server hands out up
// to 100, in ascending order).
func (c *Client) NewOids(ctx context.Context) ([]zeowire.Oid, error) {
	var oids []zeowire.Oid
	err := c.do(ctx, "new_oids", func(ctx context.Context, conn *zeowire.ClientConn) error {
		r, err := conn.Call(ctx, "new_oids")
		if err != nil {
			return err
		}
		oids = oids[:0]
		for _, v := range seq(r) {
			oid, err := zeowire.AsOid(v)
			if err != nil {
				return fmt.Errorf("malformed reply %s", zeowire.Repr(r))
			}
			oids = append(oids, oid)
		}
		if len(oids) == 0 {
			return fmt.Errorf("malformed reply %s", zeowire.Repr(r))
		}
		return nil
	})
	return oids, err
}

// blobSink is where the chunks of one sendBlob go.
type blobSink struct {
	w   io.Writer
	err error // the first write error
}

// FetchBlob writes the committed blob of oid at serial to the file path
// (created or truncated; sendBlob streams it in chunks before its reply).
// A missing blob is a *zeowire.POSKeyError.
func (c *Client) FetchBlob(ctx context.Context, oid zeowire.Oid, serial zeowire.Tid, path string) error {
	key := [2]uint64{uint64(oid), uint64(serial)}
	return c.do(ctx, "sendBlob", func(ctx context.Context, conn *zeowire.ClientConn) error {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		bw := bufio.NewWriterSize(f, 64<<10)
		sink := &blobSink{w: bw}
		c.blobMu.Lock()
		if c.blobs == nil {
			c.blobs = map[[2]uint64]*blobSink{}
		}
		c.blobs[key] = sink
		c.blobMu.Unlock()
		_, err = conn.Call(ctx, "sendBlob", oid.Bytes(), serial.Bytes())
		c.blobMu.Lock()
		delete(c.blobs, key)
		c.blobMu.Unlock()
		if err != nil {
			return err
		}
		// The chunks came before the reply on the same reader goroutine.
		if sink.err != nil {
			return fmt.Errorf("writing %s: %w", path, sink.err)
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		return f.Close()
	})
}
