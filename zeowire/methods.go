package zeowire

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/zodbctl/zodbctl/fsformat/pickle"
)

// method is one exported server method: its Python parameter names (for
// the reference's TypeError messages) and its handler.
type method struct {
	params   []string // without self
	required int
	fn       func(c *serverConn, ctx context.Context, m *Message, args []any) (any, error)
}

// bind checks the argument count as Python does and pads optional
// arguments with missingArg.
func (meth *method) bind(name string, raw any) ([]any, error) {
	var args []any
	switch a := raw.(type) {
	case Tuple:
		args = a
	case List:
		args = a
	default:
		return nil, &RemoteError{Class: ClassTypeError, Args: Tuple{fmt.Sprintf("ZEOStorage.%s() argument after * must be an iterable, not %s", name, describe(raw))}}
	}
	n := len(args)
	if n < meth.required {
		missing := meth.params[n:meth.required]
		quoted := make([]string, len(missing))
		for i, p := range missing {
			quoted[i] = "'" + p + "'"
		}
		var list string
		switch len(quoted) {
		case 1:
			list = quoted[0]
		case 2:
			list = quoted[0] + " and " + quoted[1]
		default:
			list = strings.Join(quoted[:len(quoted)-1], ", ") + ", and " + quoted[len(quoted)-1]
		}
		plural := "s"
		if len(missing) == 1 {
			plural = ""
		}
		return nil, &RemoteError{Class: ClassTypeError, Args: Tuple{fmt.Sprintf("ZEOStorage.%s() missing %d required positional argument%s: %s", name, len(missing), plural, list)}}
	}
	if n > len(meth.params) {
		// Python counts self.
		var takes string
		if meth.required == len(meth.params) {
			plural := "s"
			if len(meth.params)+1 == 1 {
				plural = ""
			}
			takes = fmt.Sprintf("%d positional argument%s", len(meth.params)+1, plural)
		} else {
			takes = fmt.Sprintf("from %d to %d positional arguments", meth.required+1, len(meth.params)+1)
		}
		was := "were"
		if n+1 == 1 {
			was = "was"
		}
		return nil, &RemoteError{Class: ClassTypeError, Args: Tuple{fmt.Sprintf("ZEOStorage.%s() takes %s but %d %s given", name, takes, n+1, was)}}
	}
	if n < len(meth.params) {
		padded := make([]any, len(meth.params))
		copy(padded, args)
		for i := n; i < len(padded); i++ {
			padded[i] = missingArg{}
		}
		args = padded
	}
	return args, nil
}

// missingArg marks an optional argument the client did not send.
type missingArg struct{}

func m(required int, fn func(*serverConn, context.Context, *Message, []any) (any, error), params ...string) *method {
	return &method{params: params, required: required, fn: fn}
}

var registerMethod = method{params: []string{"storage_id", "read_only"}, required: 2, fn: (*serverConn).register}

// methods is the set the reference accepts after register (spec 2.5).
var methods map[string]*method

func init() {
	methods = map[string]*method{
		"get_info":                        m(0, (*serverConn).getInfo),
		"lastTransaction":                 m(0, (*serverConn).lastTransaction),
		"getInvalidations":                m(1, (*serverConn).getInvalidations, "tid"),
		"new_oids":                        m(0, (*serverConn).newOids, "n"),
		"new_oid":                         m(0, noAttribute("new_oid")),
		"pack":                            m(1, (*serverConn).pack, "time", "wait"),
		"loadBefore":                      m(2, (*serverConn).loadBefore, "oid", "tid"),
		"loadSerial":                      m(2, (*serverConn).loadSerial, "oid", "serial"),
		"getTid":                          m(1, (*serverConn).getTid, "oid"),
		"history":                         m(1, (*serverConn).history, "tid", "size"),
		"record_iternext":                 m(0, (*serverConn).recordIternext, "next"),
		"sendBlob":                        m(2, (*serverConn).sendBlob, "oid", "serial"),
		"storea":                          m(4, (*serverConn).storea, "oid", "serial", "data", "id"),
		"checkCurrentSerialInTransaction": m(3, (*serverConn).checkCurrent, "oid", "serial", "id"),
		"restorea":                        m(5, (*serverConn).restorea, "oid", "serial", "data", "prev_txn", "transaction_id"),
		"deleteObject":                    m(3, (*serverConn).deleteObject, "oid", "serial", "id"),
		"undoa":                           m(2, (*serverConn).undoa, "trans_id", "transaction_id"),
		"storeBlobStart":                  m(0, (*serverConn).storeBlobStart),
		"storeBlobChunk":                  m(1, (*serverConn).storeBlobChunk, "chunk"),
		"storeBlobEnd":                    m(4, (*serverConn).storeBlobEnd, "oid", "serial", "data", "id"),
		"storeBlobShared":                 m(5, (*serverConn).storeBlobShared, "oid", "serial", "data", "filename", "id"),
		"tpc_begin":                       m(4, (*serverConn).tpcBegin, "id", "user", "description", "ext", "tid", "status"),
		"vote":                            m(1, (*serverConn).vote, "tid"),
		"tpc_finish":                      m(1, (*serverConn).tpcFinish, "id"),
		"tpc_abort":                       m(1, (*serverConn).tpcAbort, "tid"),
		"undoLog":                         m(2, (*serverConn).undoLog, "first", "last"),
		"undoInfo":                        m(3, (*serverConn).undoInfo, "first", "last", "spec"),
		"iterator_start":                  m(0, (*serverConn).iteratorStart, "start", "stop"),
		"iterator_next":                   m(1, (*serverConn).iteratorNext, "iid"),
		"iterator_record_start":           m(2, (*serverConn).iteratorRecordStart, "txn_iid", "tid"),
		"iterator_record_next":            m(1, (*serverConn).iteratorRecordNext, "iid"),
		"iterator_gc":                     m(1, (*serverConn).iteratorGC, "iids"),
		"server_status":                   m(0, (*serverConn).serverStatus),
		"set_client_label":                m(1, (*serverConn).setClientLabel, "label"),
		"ping":                            m(0, func(*serverConn, context.Context, *Message, []any) (any, error) { return nil, nil }),
	}
}

func noAttribute(name string) func(*serverConn, context.Context, *Message, []any) (any, error) {
	return func(*serverConn, context.Context, *Message, []any) (any, error) {
		return nil, attributeError(name)
	}
}

func attributeError(name string) error {
	return &RemoteError{Class: ClassAttributeError, Args: Tuple{fmt.Sprintf("'ZEOStorage' object has no attribute '%s'", name)}}
}

func notSupported(name string, err error) error {
	if errors.Is(err, ErrNotSupported) {
		return attributeError(name)
	}
	return err
}

func argOid(method string, v any) (Oid, error) {
	o, err := AsOid(v)
	if err != nil {
		return 0, &ArgError{Method: method, Msg: err.Error()}
	}
	return o, nil
}

func argTid(method string, v any) (Tid, error) {
	t, err := AsTid(v)
	if err != nil {
		return 0, &ArgError{Method: method, Msg: err.Error()}
	}
	return t, nil
}

func argBytesOrNone(method, what string, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		return x, nil
	}
	return nil, &ArgError{Method: method, Msg: fmt.Sprintf("%s must be bytes, got %s", what, describe(v))}
}

func argInt(method, what string, v any, def int64) (int64, error) {
	if _, ok := v.(missingArg); ok {
		return def, nil
	}
	n, ok := AsInt(v)
	if !ok {
		return 0, &ArgError{Method: method, Msg: fmt.Sprintf("%s must be an int, got %s", what, describe(v))}
	}
	return n, nil
}

func optTid(method string, v any) (Tid, bool, error) {
	switch v.(type) {
	case nil, missingArg:
		return 0, false, nil
	}
	t, err := argTid(method, v)
	return t, err == nil, err
}

// ---- session ----

func (c *serverConn) register(ctx context.Context, _ *Message, a []any) (any, error) {
	name, isStr := a[0].(string)
	st := c.s.storages[name]
	if !isStr || st == nil {
		// Python formats the name with %s: a str without quotes, anything
		// else as its repr.
		shown := name
		if !isStr {
			shown = Repr(a[0])
		}
		return nil, &RemoteError{Class: ClassValueError, Args: Tuple{"unknown storage: " + shown}}
	}
	readOnly := Truthy(a[1])
	if !readOnly && st.readOnly {
		return nil, ErrReadOnly
	}
	c.readOnly = readOnly || st.readOnly
	c.st = st
	st.mu.Lock()
	st.conns[c] = struct{}{}
	last := st.storage.LastTransaction()
	st.mu.Unlock()
	c.setLogger(c.logger().With("storage", name))
	c.logger().Info("registered", "read_only", c.readOnly)
	return last.Bytes(), nil
}

func (c *serverConn) getInfo(ctx context.Context, _ *Message, _ []any) (any, error) {
	return infoDict(c.st.storage.Info()), nil
}

func infoDict(info StorageInfo) Dict {
	ifaces := make(Tuple, len(info.Interfaces))
	for i, p := range info.Interfaces {
		ifaces[i] = Tuple{p[0], p[1]}
	}
	return Dict{
		{Key: "length", Value: info.Length},
		{Key: "size", Value: info.Size},
		{Key: "name", Value: info.Name},
		{Key: "supportsUndo", Value: info.SupportsUndo},
		{Key: "supports_record_iternext", Value: info.SupportsRecordIternext},
		{Key: "interfaces", Value: ifaces},
	}
}

func (c *serverConn) lastTransaction(context.Context, *Message, []any) (any, error) {
	return c.st.storage.LastTransaction().Bytes(), nil
}

func (c *serverConn) setClientLabel(_ context.Context, _ *Message, a []any) (any, error) {
	c.label = fmt.Sprint(a[0])
	if s, ok := a[0].(string); ok {
		c.label = s
	}
	c.setLogger(c.logger().With("label", c.label))
	return nil, nil
}

func (c *serverConn) getInvalidations(ctx context.Context, _ *Message, a []any) (any, error) {
	tid, err := argTid("getInvalidations", a[0])
	if err != nil {
		return nil, err
	}
	st := c.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.invq) == 0 || st.invq[len(st.invq)-1].Tid > tid {
		if age := c.s.InvalidationAge; age > 0 && c.s.now().Sub(tid.Time()) < age {
			if it, ok := st.storage.(Iterable); ok {
				return invalidationsSince(ctx, it, tid)
			}
		}
		c.logger().Info("getInvalidations: cannot answer from the queue", "tid", tid)
		return nil, nil
	}
	seen := map[Oid]bool{}
	oids := List{}
	for _, e := range st.invq {
		if e.Tid <= tid {
			break
		}
		for _, o := range e.Oids {
			if !seen[o] {
				seen[o] = true
				oids = append(oids, o.Bytes())
			}
		}
	}
	return Tuple{st.invq[0].Tid.Bytes(), oids}, nil
}

// invalidationsSince scans the transactions after tid (the
// invalidation-age fallback); None if there are none.
func invalidationsSince(ctx context.Context, st Iterable, tid Tid) (any, error) {
	it, err := st.Iterate(ctx, tid+1, 0)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var last Tid
	seen := map[Oid]bool{}
	oids := List{}
	for {
		meta, recs, ok, err := it.Next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		last = meta.Tid
		for _, r := range recs {
			if !seen[r.Oid] {
				seen[r.Oid] = true
				oids = append(oids, r.Oid.Bytes())
			}
		}
	}
	if last == 0 {
		return nil, nil
	}
	return Tuple{last.Bytes(), oids}, nil
}

func (c *serverConn) newOids(_ context.Context, _ *Message, a []any) (any, error) {
	n, err := argInt("new_oids", "n", a[0], 100)
	if err != nil {
		return nil, err
	}
	if c.readOnly {
		return nil, ErrReadOnly
	}
	n = min(max(n, 1), 100)
	oids, err := c.st.storage.NewOids(int(n))
	if err != nil {
		return nil, err
	}
	out := make(List, len(oids))
	for i, o := range oids {
		out[i] = o.Bytes()
	}
	return out, nil
}

// ---- reading ----

func (c *serverConn) loadBefore(ctx context.Context, _ *Message, a []any) (any, error) {
	oid, err := argOid("loadBefore", a[0])
	if err != nil {
		return nil, err
	}
	tid, err := argTid("loadBefore", a[1])
	if err != nil {
		return nil, err
	}
	c.st.loads.Add(1)
	rev, ok, err := c.st.storage.LoadBefore(ctx, oid, tid)
	if err != nil || !ok {
		return nil, err
	}
	var end any
	if rev.End != 0 {
		end = rev.End.Bytes()
	}
	return Tuple{rev.Data, rev.Start.Bytes(), end}, nil
}

func (c *serverConn) loadSerial(ctx context.Context, _ *Message, a []any) (any, error) {
	oid, err := argOid("loadSerial", a[0])
	if err != nil {
		return nil, err
	}
	serial, err := argTid("loadSerial", a[1])
	if err != nil {
		return nil, err
	}
	return c.st.storage.LoadSerial(ctx, oid, serial)
}

func (c *serverConn) getTid(ctx context.Context, _ *Message, a []any) (any, error) {
	oid, err := argOid("getTid", a[0])
	if err != nil {
		return nil, err
	}
	rev, ok, err := c.st.storage.LoadBefore(ctx, oid, MaxTid)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &POSKeyError{Oid: oid}
	}
	return rev.Start.Bytes(), nil
}

func (c *serverConn) history(ctx context.Context, _ *Message, a []any) (any, error) {
	oid, err := argOid("history", a[0])
	if err != nil {
		return nil, err
	}
	size, err := argInt("history", "size", a[1], 1)
	if err != nil {
		return nil, err
	}
	hist, err := c.st.storage.History(ctx, oid, int(max(size, 1)))
	if err != nil {
		return nil, err
	}
	out := make(List, len(hist))
	for i, h := range hist {
		d := append(Dict(nil), h.Extension...)
		d = dictSet(d, "time", h.Tid.Seconds())
		d = dictSet(d, "user_name", nonNil(h.User))
		d = dictSet(d, "description", nonNil(h.Description))
		d = dictSet(d, "tid", h.Tid.Bytes())
		d = dictSet(d, "size", h.Size)
		out[i] = d
	}
	return out, nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// dictSet sets key as Python's d[key] = v does: in place if present.
func dictSet(d Dict, key string, v any) Dict {
	for i := range d {
		if k, ok := d[i].Key.(string); ok && k == key {
			d[i].Value = v
			return d
		}
	}
	return append(d, KV{Key: key, Value: v})
}

func (c *serverConn) recordIternext(ctx context.Context, _ *Message, a []any) (any, error) {
	ri, ok := c.st.storage.(RecordIterable)
	if !ok || !c.st.storage.Info().SupportsRecordIternext {
		return nil, attributeError("record_iternext")
	}
	var from Oid
	first := true
	switch a[0].(type) {
	case nil, missingArg:
	default:
		o, err := argOid("record_iternext", a[0])
		if err != nil {
			return nil, err
		}
		from, first = o, false
	}
	oid, tid, data, next, hasNext, err := ri.RecordIterNext(ctx, from, first)
	if err != nil {
		return nil, err
	}
	var nx any
	if hasNext {
		nx = next.Bytes()
	}
	return Tuple{oid.Bytes(), tid.Bytes(), data, nx}, nil
}

func (c *serverConn) serverStatus(context.Context, *Message, []any) (any, error) {
	return c.st.status(), nil
}

// status is the server_status dict, keys in the reference's order.
func (st *storageState) status() Dict {
	since, held, waiting := st.lock.status()
	st.mu.Lock()
	conns := int64(len(st.conns))
	stats := st.stats
	st.mu.Unlock()
	var lockTime any
	if held {
		lockTime = float64(since.UnixNano()) / 1e9
	}
	var timeoutAlive any = "stub"
	if st.s.TransactionTimeout > 0 {
		timeoutAlive = true
	}
	return Dict{
		{Key: "connections", Value: conns},
		{Key: "loads", Value: st.loads.Load()},
		{Key: "stores", Value: stats.stores},
		{Key: "commits", Value: stats.commits},
		{Key: "aborts", Value: stats.aborts},
		{Key: "active_txns", Value: stats.activeTxns},
		{Key: "lock_time", Value: lockTime},
		{Key: "conflicts", Value: stats.conflicts},
		{Key: "conflicts_resolved", Value: int64(0)},
		{Key: "start", Value: ctime(st.s.startTime)},
		{Key: "waiting", Value: int64(waiting)},
		{Key: "timeout-thread-is-alive", Value: timeoutAlive},
		{Key: "last-transaction", Value: st.storage.LastTransaction().String()},
	}
}

// ---- undo ----

func (c *serverConn) undoLog(ctx context.Context, m *Message, a []any) (any, error) {
	return c.undoCommon(ctx, m, "undoLog", a[0], a[1], nil)
}

func (c *serverConn) undoInfo(ctx context.Context, m *Message, a []any) (any, error) {
	var spec Dict
	switch s := a[2].(type) {
	case nil:
	case Dict:
		spec = s
	default:
		return nil, &ArgError{Method: "undoInfo", Msg: "specification must be a dict or None, got " + describe(a[2])}
	}
	return c.undoCommon(ctx, m, "undoInfo", a[0], a[1], spec)
}

func (c *serverConn) undoCommon(ctx context.Context, m *Message, name string, firstV, lastV any, spec Dict) (any, error) {
	first, err := argInt(name, "first", firstV, 0)
	if err != nil {
		return nil, err
	}
	last, err := argInt(name, "last", lastV, -20)
	if err != nil {
		return nil, err
	}
	if last < 0 {
		last = first - last
	}
	u, ok := c.st.storage.(Undoable)
	if !ok || !c.st.storage.Info().SupportsUndo {
		return List{}, nil
	}
	// Slow: answered from its own goroutine, like the reference's thread.
	if !c.goDeferred(ctx, func() {
		var filter func(*TxnMeta) bool
		if spec != nil {
			filter = func(t *TxnMeta) bool {
				d := undoEntry(t)
				for _, kv := range spec {
					k, _ := kv.Key.(string)
					v, ok := d.Get(k)
					if !ok || !specMatches(kv.Value, v) {
						return false
					}
				}
				return true
			}
		}
		txns, err := u.UndoLog(ctx, int(first), int(last), filter)
		var out List
		if err == nil {
			out = make(List, len(txns))
			for i := range txns {
				out[i] = undoEntry(&txns[i])
			}
		}
		c.reply(m.ID, out, err)
	}) {
		return nil, errCloseConn
	}
	return nil, errDeferred
}

// specMatches compares an undoInfo specification value with an entry's
// value. Zope passes ZopeUndo.Prefix(path), which equals any value starting
// with path; it arrives as a REDUCE of that global, never constructed.
func specMatches(spec, v any) bool {
	if o, ok := spec.(*pickle.Object); ok {
		g, isGlobal := o.Callable.(pickle.Global)
		if !isGlobal || g.Module != "ZopeUndo.Prefix" || g.Name != "Prefix" || len(o.Args) != 1 {
			return false
		}
		var prefix string
		switch p := o.Args[0].(type) {
		case string:
			prefix = p
		case []byte:
			prefix = string(p)
		default:
			return false
		}
		switch x := v.(type) {
		case string:
			return strings.HasPrefix(x, prefix)
		case []byte:
			return strings.HasPrefix(string(x), prefix)
		}
		return false
	}
	return Equal(spec, v)
}

func undoEntry(t *TxnMeta) Dict {
	d := Dict{
		{Key: "id", Value: []byte(base64.StdEncoding.EncodeToString(t.Tid.Bytes()))},
		{Key: "time", Value: t.Tid.Seconds()},
		{Key: "user_name", Value: nonNil(t.User)},
		{Key: "size", Value: t.Size},
		{Key: "description", Value: nonNil(t.Description)},
	}
	for _, kv := range t.Extension {
		if k, ok := kv.Key.(string); ok {
			d = dictSet(d, k, kv.Value)
		} else {
			d = append(d, kv)
		}
	}
	return d
}

// ---- pack ----

func (c *serverConn) pack(ctx context.Context, m *Message, a []any) (any, error) {
	var t float64
	switch x := a[0].(type) {
	case float64:
		t = x
	default:
		n, ok := AsInt(x)
		if !ok {
			return nil, &ArgError{Method: "pack", Msg: "time must be a number, got " + describe(x)}
		}
		t = float64(n)
	}
	wait := true
	if _, missing := a[1].(missingArg); !missing {
		wait = Truthy(a[1])
	}
	p, ok := c.st.storage.(Packable)
	if !ok {
		return nil, attributeError("pack")
	}
	st := c.st
	run := func() error {
		c.logger().Info("pack started", "time", t)
		// The server's context, not the connection's: a pack asked for
		// without waiting goes on after its client left.
		err := p.Pack(c.s.ctx, t)
		if err != nil {
			c.logger().Error("pack failed", "error", err)
			return err
		}
		c.logger().Info("pack finished")
		info := st.storage.Info()
		st.broadcast(nil, "info", Tuple{Dict{{Key: "length", Value: info.Length}, {Key: "size", Value: info.Size}}})
		return nil
	}
	if !wait {
		if !c.goDeferred(ctx, func() { run() }) {
			return nil, errCloseConn
		}
		return nil, nil
	}
	if !c.goDeferred(ctx, func() {
		err := run()
		c.reply(m.ID, nil, err)
	}) {
		return nil, errCloseConn
	}
	return nil, errDeferred
}

// broadcast queues an async message to every connection of the storage
// except skip, without waiting; a connection whose queue is full is closed
// (it will reconnect and catch up). Callers that need ordering with commits
// hold st.mu.
func (st *storageState) broadcastLocked(skip *serverConn, name string, args Tuple) {
	var encoded [2][]byte // by codec: 0 pickle, 1 msgpack
	for oc := range st.conns {
		if oc == skip {
			continue
		}
		i := 0
		if oc.codec.Letter() == 'M' {
			i = 1
		}
		if encoded[i] == nil {
			p, err := oc.encode(&Message{ID: int64(0), Kind: KindAsync, Name: name, Args: args})
			if err != nil {
				oc.logger().Error("cannot encode "+name, "error", err)
				continue
			}
			encoded[i] = p
		}
		if !oc.queueOther(encoded[i], false) {
			select {
			case <-oc.done:
			default:
				oc.logger().Warn("client too slow: outbound queue full; closing", "message", name)
				oc.closeNow(errors.New("outbound queue full"))
			}
		}
	}
}

func (st *storageState) broadcast(skip *serverConn, name string, args Tuple) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.broadcastLocked(skip, name, args)
}

// ---- iterators ----

type txnIter struct {
	it      TxnIterator
	lastTid Tid
	records []DataRecord
	hasLast bool
}

type recIter struct {
	records []DataRecord
}

// maxIterators bounds the open iterators of one connection (the Python
// client collects them with iterator_gc; a hostile one could open millions).
const maxIterators = 10000

func (c *serverConn) newIterID(v any) (int64, error) {
	if c.iters == nil {
		c.iters = map[int64]any{}
	}
	if len(c.iters) >= maxIterators {
		if ti, ok := v.(*txnIter); ok {
			ti.it.Close()
		}
		return 0, &RemoteError{Class: ClassException, Args: Tuple{fmt.Sprintf("too many open iterators (%d); call iterator_gc", maxIterators)}}
	}
	id := c.nextIter
	c.nextIter++
	c.iters[id] = v
	return id, nil
}

func (c *serverConn) iteratorStart(ctx context.Context, _ *Message, a []any) (any, error) {
	it, ok := c.st.storage.(Iterable)
	if !ok {
		return nil, attributeError("iterator_start")
	}
	start, _, err := optTid("iterator_start", a[0])
	if err != nil {
		return nil, err
	}
	stop, _, err := optTid("iterator_start", a[1])
	if err != nil {
		return nil, err
	}
	ti, err := it.Iterate(ctx, start, stop)
	if err != nil {
		return nil, err
	}
	return c.newIterID(&txnIter{it: ti})
}

func (c *serverConn) iterFor(v any) (int64, any, error) {
	id, ok := AsInt(v)
	if ok {
		if it, found := c.iters[id]; found {
			return id, it, nil
		}
	}
	return 0, nil, &RemoteError{Class: ClassKeyError, Args: Tuple{v}}
}

func (c *serverConn) iteratorNext(_ context.Context, _ *Message, a []any) (any, error) {
	id, v, err := c.iterFor(a[0])
	if err != nil {
		return nil, err
	}
	ti, ok := v.(*txnIter)
	if !ok {
		return nil, &RemoteError{Class: ClassKeyError, Args: Tuple{a[0]}}
	}
	meta, recs, ok, err := ti.it.Next()
	if err != nil {
		return nil, err
	}
	if !ok {
		ti.it.Close()
		delete(c.iters, id)
		return nil, nil
	}
	ti.lastTid, ti.records, ti.hasLast = meta.Tid, recs, true
	status := meta.Status
	if status == 0 {
		status = ' '
	}
	ext := meta.Extension
	if ext == nil {
		ext = Dict{}
	}
	return Tuple{meta.Tid.Bytes(), string(rune(status)), nonNil(meta.User), nonNil(meta.Description), ext}, nil
}

func (c *serverConn) iteratorRecordStart(_ context.Context, _ *Message, a []any) (any, error) {
	_, v, err := c.iterFor(a[0])
	if err != nil {
		return nil, err
	}
	tid, err := argTid("iterator_record_start", a[1])
	if err != nil {
		return nil, err
	}
	ti, ok := v.(*txnIter)
	if !ok || !ti.hasLast || ti.lastTid != tid {
		return nil, &RemoteError{Class: ClassException, Args: Tuple{fmt.Sprintf("Out-of-order request for records of transaction %s", Repr(a[1]))}}
	}
	return c.newIterID(&recIter{records: ti.records})
}

func (c *serverConn) iteratorRecordNext(_ context.Context, _ *Message, a []any) (any, error) {
	id, v, err := c.iterFor(a[0])
	if err != nil {
		return nil, err
	}
	ri, ok := v.(*recIter)
	if !ok {
		return nil, &RemoteError{Class: ClassKeyError, Args: Tuple{a[0]}}
	}
	if len(ri.records) == 0 {
		delete(c.iters, id)
		return nil, nil
	}
	r := ri.records[0]
	ri.records = ri.records[1:]
	var data, dataTxn any
	if r.Data != nil {
		data = r.Data
	}
	if r.DataTxn != 0 {
		dataTxn = r.DataTxn.Bytes()
	}
	return Tuple{r.Oid.Bytes(), r.Tid.Bytes(), data, dataTxn}, nil
}

func (c *serverConn) iteratorGC(_ context.Context, _ *Message, a []any) (any, error) {
	var ids []any
	switch x := a[0].(type) {
	case Tuple:
		ids = x
	case List:
		ids = x
	default:
		return nil, &ArgError{Method: "iterator_gc", Msg: "iids must be a list"}
	}
	for _, v := range ids {
		if id, ok := AsInt(v); ok {
			if ti, ok := c.iters[id].(*txnIter); ok {
				ti.it.Close()
			}
			delete(c.iters, id)
		}
	}
	return nil, nil
}

// txnIDEqual compares client transaction ids (opaque ints).
func txnIDEqual(a, b any) bool { return Equal(a, b) }
