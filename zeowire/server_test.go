package zeowire_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/memstore"
)

// frozen is the clock of the reference recordings, 2024-01-01T00:00:00Z.
func frozen() time.Time { return time.Unix(1704067200, 0).UTC() }

type testServer struct {
	srv  *zeowire.Server
	addr string
	logs *syncBuffer
}

func startServer(t *testing.T, configure func(*zeowire.Server)) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	srv := &zeowire.Server{
		Storages: map[string]zeowire.Storage{"1": memstore.New("Data1.fs"), "2": memstore.New("Data2.fs")},
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Msgpack:  true,
		Now:      frozen,
	}
	if configure != nil {
		configure(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, zeowire.ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return &testServer{srv: srv, addr: ln.Addr().String(), logs: logs}
}

type syncBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.String()
}

// client is a test client collecting async messages.
type client struct {
	*zeowire.ClientConn
	async chan zeowire.Message
}

func dial(t *testing.T, addr, storage string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := &client{async: make(chan zeowire.Message, 10000)}
	cc, err := zeowire.Dial(ctx, addr, zeowire.ClientOptions{Async: func(m zeowire.Message) { c.async <- m }})
	if err != nil {
		t.Fatal(err)
	}
	c.ClientConn = cc
	t.Cleanup(func() { cc.Close() })
	if storage != "" {
		if _, err := cc.Register(ctx, storage, false); err != nil {
			t.Fatalf("register: %v", err)
		}
	}
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func oidb(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

var z64 = make([]byte, 8)

// commit stores records {oid: (serial, data)} in one transaction; it
// returns the new tid.
func commit(t *testing.T, c *client, txn int64, stores ...[3][]byte) (zeowire.Tid, error) {
	t.Helper()
	cx := ctx(t)
	if err := c.Async("tpc_begin", txn, []byte("alice"), []byte("desc"), zeowire.Dict{}, nil, " "); err != nil {
		return 0, err
	}
	for _, s := range stores {
		if err := c.Async("storea", s[0], s[1], s[2], txn); err != nil {
			return 0, err
		}
	}
	if r, err := c.Call(cx, "vote", txn); err != nil {
		c.Call(cx, "tpc_abort", txn)
		return 0, err
	} else if l := asSeq(r); l == nil || len(l) != 0 {
		return 0, &zeowire.RemoteError{Class: "vote", Args: r}
	}
	r, err := c.Call(cx, "tpc_finish", txn)
	if err != nil {
		return 0, err
	}
	return zeowire.AsTid(r)
}

func expectAsync(t *testing.T, c *client, name string) zeowire.Message {
	t.Helper()
	select {
	case m := <-c.async:
		if m.Name != name {
			t.Fatalf("got async %s %s, want %s", m.Name, zeowire.Repr(m.Args), name)
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s message", name)
	}
	return zeowire.Message{}
}

func TestCommitAndInvalidate(t *testing.T) {
	ts := startServer(t, nil)
	a := dial(t, ts.addr, "1")
	b := dial(t, ts.addr, "1")
	cx := ctx(t)

	if _, err := a.Call(cx, "loadBefore", z64, oidb(1)); !isPOSKey(err) {
		t.Fatalf("loadBefore on empty storage: %v", err)
	}
	tid1, err := commit(t, a, 1001, [3][]byte{z64, z64, []byte("root v1")})
	if err != nil {
		t.Fatal(err)
	}
	if tid1 != 0x03f58e0000000000 {
		t.Errorf("first tid %s, want 03f58e0000000000 (frozen clock)", tid1)
	}
	expectAsync(t, a, "info")
	m := expectAsync(t, b, "invalidateTransaction")
	if want := (zeowire.Tuple{tid1.Bytes(), zeowire.Tuple{z64}}); !zeowire.Equal(m.Args, want) {
		t.Errorf("invalidation %s, want %s", zeowire.Repr(m.Args), zeowire.Repr(want))
	}
	tid2, err := commit(t, a, 1002, [3][]byte{z64, tid1.Bytes(), []byte("root v2")})
	if err != nil {
		t.Fatal(err)
	}
	if tid2 != tid1+1 {
		t.Errorf("second tid %s, want %s", tid2, tid1+1)
	}
	// loadBefore of the old snapshot sees v1 with its end tid.
	r, err := b.CallID(cx, zeowire.Tuple{z64, tid2.Bytes()}, "loadBefore", z64, tid2.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if want := (zeowire.Tuple{[]byte("root v1"), tid1.Bytes(), tid2.Bytes()}); !zeowire.Equal(r, want) {
		t.Errorf("loadBefore = %s, want %s", zeowire.Repr(r), zeowire.Repr(want))
	}
	r, err = b.Call(cx, "loadBefore", z64, (tid1).Bytes())
	if err != nil || r != nil {
		t.Errorf("loadBefore before creation = %s, %v; want None", zeowire.Repr(r), err)
	}
	// getInvalidations for a client that saw tid1.
	r, err = b.Call(cx, "getInvalidations", tid1.Bytes())
	if want := (zeowire.Tuple{tid2.Bytes(), zeowire.Tuple{z64}}); err != nil || !zeowire.Equal(r, want) {
		t.Errorf("getInvalidations = %s, %v; want %s", zeowire.Repr(r), err, zeowire.Repr(want))
	}
	r, err = b.Call(cx, "getInvalidations", z64)
	if err != nil || r != nil {
		t.Errorf("getInvalidations before the queue = %s, %v; want None", zeowire.Repr(r), err)
	}
	st, err := b.Call(cx, "server_status")
	if err != nil {
		t.Fatal(err)
	}
	d := st.(zeowire.Dict)
	for k, want := range map[string]any{"connections": int64(2), "commits": int64(2), "stores": int64(2), "loads": int64(3), "last-transaction": tid2.String(), "timeout-thread-is-alive": "stub"} {
		if v, _ := d.Get(k); !zeowire.Equal(v, want) {
			t.Errorf("server_status %s = %s, want %s", k, zeowire.Repr(v), zeowire.Repr(want))
		}
	}
}

func isPOSKey(err error) bool {
	var pk *zeowire.POSKeyError
	return errors.As(err, &pk)
}

func TestConflict(t *testing.T) {
	for _, clientRes := range []bool{false, true} {
		ts := startServer(t, func(s *zeowire.Server) { s.ClientConflictResolution = clientRes })
		a := dial(t, ts.addr, "1")
		b := dial(t, ts.addr, "1")
		cx := ctx(t)
		class := []byte("\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01.")
		tid1, err := commit(t, a, 1, [3][]byte{z64, z64, class})
		if err != nil {
			t.Fatal(err)
		}
		tid2, err := commit(t, a, 2, [3][]byte{z64, tid1.Bytes(), class})
		if err != nil {
			t.Fatal(err)
		}
		// b still starts from tid1.
		b.Async("tpc_begin", int64(7), []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
		b.Async("storea", z64, tid1.Bytes(), []byte("mine"), int64(7))
		r, err := b.Call(cx, "vote", int64(7))
		if !clientRes {
			var ce *zeowire.ConflictError
			if !errors.As(err, &ce) {
				t.Fatalf("vote: %s, %v; want ConflictError", zeowire.Repr(r), err)
			}
			if ce.Oid != 0 || ce.Committed != tid2 || ce.Serial != tid1 || ce.ClassName != "" {
				t.Errorf("conflict %+v", ce)
			}
			if r, err := b.Call(cx, "tpc_abort", int64(7)); r != nil || err != nil {
				t.Errorf("tpc_abort after failed vote: %v %v", r, err)
			}
			continue
		}
		want := zeowire.Tuple{zeowire.Dict{{Key: "oid", Value: z64}, {Key: "serials", Value: zeowire.Tuple{tid2.Bytes(), tid1.Bytes()}}, {Key: "data", Value: []byte("mine")}}}
		if err != nil || !zeowire.Equal(r, want) {
			t.Fatalf("vote = %s, %v; want %s", zeowire.Repr(r), err, zeowire.Repr(want))
		}
		// Resolve and vote again in the same transaction.
		b.Async("storea", z64, tid2.Bytes(), []byte("resolved"), int64(7))
		if r, err := b.Call(cx, "vote", int64(7)); err != nil || !zeowire.Equal(r, zeowire.Tuple{}) {
			t.Fatalf("second vote = %s, %v", zeowire.Repr(r), err)
		}
		r, err = b.Call(cx, "tpc_finish", int64(7))
		if err != nil {
			t.Fatal(err)
		}
		// The failed first vote burnt a tid.
		if tid, _ := zeowire.AsTid(r); tid != tid2+2 {
			t.Errorf("resolved commit tid %s, want %s", tid, tid2+2)
		}
		data, err := a.Call(cx, "loadSerial", z64, r)
		if err != nil || string(data.([]byte)) != "resolved" {
			t.Errorf("loadSerial = %s, %v", zeowire.Repr(data), err)
		}
	}
}

// A voter waits for the lock; when the holder disconnects, its transaction
// is aborted and the waiter proceeds (the reference leaks the lock when
// the server closes the connection).
func TestCommitLockReleasedOnDisconnect(t *testing.T) {
	ts := startServer(t, nil)
	a := dial(t, ts.addr, "1")
	b := dial(t, ts.addr, "1")
	cx := ctx(t)
	a.Async("tpc_begin", int64(1), []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
	a.Async("storea", oidb(1), z64, []byte("a"), int64(1))
	if _, err := a.Call(cx, "vote", int64(1)); err != nil {
		t.Fatal(err)
	}
	b.Async("tpc_begin", int64(2), []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
	b.Async("storea", oidb(2), z64, []byte("b"), int64(2))
	voted := make(chan error, 1)
	go func() { _, err := b.Call(cx, "vote", int64(2)); voted <- err }()
	// Other calls of b are answered while its vote waits.
	if _, err := b.Call(cx, "ping"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-voted:
		t.Fatalf("vote answered while the lock is held: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	st, _ := b.Call(cx, "server_status")
	if w, _ := st.(zeowire.Dict).Get("waiting"); !zeowire.Equal(w, int64(1)) {
		t.Errorf("waiting = %s", zeowire.Repr(w))
	}
	a.Close()
	select {
	case err := <-voted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("vote still waiting after the lock holder disconnected")
	}
	tid, err := b.Call(cx, "tpc_finish", int64(2))
	if err != nil {
		t.Fatal(err)
	}
	// The aborted vote of a burnt ...00; b got ...01.
	if got, _ := zeowire.AsTid(tid); got != 0x03f58e0000000001 {
		t.Errorf("tid %s", got)
	}
	if _, err := b.Call(cx, "loadBefore", oidb(1), zeowire.MaxTid.Bytes()); !isPOSKey(err) {
		t.Errorf("aborted store is visible: %v", err)
	}
}

// rawConn speaks frames directly, for hostile input.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	fr *zeowire.FrameReader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	r := &rawConn{t: t, nc: nc, fr: zeowire.NewFrameReader(nc, 0)}
	return r
}

func (r *rawConn) send(p []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(zeowire.AppendFrame(nil, p)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) recv() []byte {
	r.t.Helper()
	p, err := r.fr.ReadFrame()
	if err != nil {
		r.t.Fatalf("recv: %v", err)
	}
	return bytes.Clone(p)
}

func (r *rawConn) expectClosed() {
	r.t.Helper()
	p, err := r.fr.ReadFrame()
	if err == nil {
		r.t.Fatalf("expected close, got frame %x", p)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			r.t.Fatalf("connection still open")
		}
	}
}

func encodeM(t *testing.T, m zeowire.Message) []byte {
	p, err := zeowire.MsgpackCodec{}.AppendMessage(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadInput(t *testing.T) {
	ts := startServer(t, func(s *zeowire.Server) { s.MaxFrameSize = 1 << 20 })
	good := dial(t, ts.addr, "1")
	register := encodeM(t, zeowire.Message{ID: int64(1), Kind: zeowire.KindCall, Name: "register", Args: zeowire.Tuple{"1", false}})
	cases := []struct {
		name      string
		handshake string
		frames    [][]byte
		replies   int
	}{
		{"old protocol", "Z4", nil, 0},
		{"other letter", "X5", nil, 0},
		{"pickled call as handshake", "\x80\x03(K\x01.", nil, 0},
		{"garbage", "M5", [][]byte{[]byte("\xde\xad\xbe\xef")}, 0},
		{"empty frame", "M5", [][]byte{{}}, 0},
		{"3-element message", "M5", [][]byte{mustDecodeHex("930102a3616263")}, 0},
		{"method before register", "M5", [][]byte{encodeM(t, zeowire.Message{ID: int64(1), Name: "lastTransaction", Args: zeowire.Tuple{}})}, 0},
		{"unknown method", "M5", [][]byte{register, encodeM(t, zeowire.Message{ID: int64(2), Name: "frobnicate", Args: zeowire.Tuple{}})}, 1},
		{"second register", "M5", [][]byte{register, register}, 1},
		{"storea without tpc_begin", "M5", [][]byte{register, encodeM(t, zeowire.Message{ID: int64(0), Kind: zeowire.KindAsync, Name: "storea", Args: zeowire.Tuple{z64, z64, []byte("x"), int64(5)}})}, 1},
		{"str oid in async call", "M5", [][]byte{register,
			encodeM(t, zeowire.Message{ID: int64(0), Kind: zeowire.KindAsync, Name: "tpc_begin", Args: zeowire.Tuple{int64(5), []byte{}, []byte{}, zeowire.Dict{}, nil, " "}}),
			encodeM(t, zeowire.Message{ID: int64(0), Kind: zeowire.KindAsync, Name: "storea", Args: zeowire.Tuple{"oid", z64, []byte("x"), int64(5)}})}, 1},
		{"oversized frame", "M5", [][]byte{register, make([]byte, 2<<20)}, 1},
		{"reply sent by a client", "M5", [][]byte{register, encodeM(t, zeowire.Message{ID: int64(3), Kind: zeowire.KindReply, Name: ".reply"})}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, ts.addr)
			if got := string(r.recv()); got != "M5" {
				t.Fatalf("announcement %q", got)
			}
			r.send([]byte(tc.handshake))
			for _, f := range tc.frames {
				if len(f) > 1<<20 {
					// Only the header and a little: the server must refuse
					// it from the header alone (it may reset the socket).
					r.nc.Write(zeowire.AppendFrame(nil, f)[:20])
					continue
				}
				r.send(f)
			}
			for range tc.replies {
				r.recv()
			}
			r.expectClosed()
			// Everyone else carries on.
			if _, err := good.Call(ctx(t), "ping"); err != nil {
				t.Fatalf("other client: %v", err)
			}
		})
	}
}

func mustDecodeHex(s string) []byte {
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			default:
				v |= byte(c-'a') + 10
			}
		}
		b[i] = v
	}
	return b
}

func TestCallErrors(t *testing.T) {
	ts := startServer(t, nil)
	c := dial(t, ts.addr, "1")
	cx := ctx(t)
	check := func(name string, err error, class string, args zeowire.Tuple) {
		t.Helper()
		var re *zeowire.RemoteError
		if !errors.As(err, &re) || re.Class != class || (args != nil && !zeowire.Equal(re.Args, args)) {
			t.Errorf("%s: got %v, want %s%s", name, err, class, zeowire.Repr(args))
		}
	}
	_, err := c.Call(cx, "loadBefore", z64)
	check("missing arg", err, "builtins.TypeError", zeowire.Tuple{"ZEOStorage.loadBefore() missing 1 required positional argument: 'tid'"})
	_, err = c.Call(cx, "ping", 1)
	check("extra arg", err, "builtins.TypeError", zeowire.Tuple{"ZEOStorage.ping() takes 1 positional argument but 2 were given"})
	_, err = c.Call(cx, "new_oids", 1, 2)
	check("extra optional arg", err, "builtins.TypeError", zeowire.Tuple{"ZEOStorage.new_oids() takes from 1 to 2 positional arguments but 3 were given"})
	_, err = c.Call(cx, "new_oid")
	check("new_oid", err, "builtins.AttributeError", zeowire.Tuple{"'ZEOStorage' object has no attribute 'new_oid'"})
	_, err = c.Call(cx, "iterator_next", 12345)
	check("unknown iterator", err, "builtins.KeyError", zeowire.Tuple{int64(12345)})
	_, err = c.Call(cx, "loadBefore", "not bytes", z64)
	check("str oid", err, "builtins.TypeError", nil)
	_, err = c.Call(cx, "vote", 77)
	var ste *zeowire.StorageTransactionError
	if !errors.As(err, &ste) || !zeowire.Equal(ste.Args, zeowire.Tuple{nil, int64(77)}) {
		t.Errorf("vote without txn: %v", err)
	}
	if r, err := c.Call(cx, "tpc_finish", 77); r != nil || err != nil {
		t.Errorf("tpc_finish unknown txn: %v %v", r, err)
	}
	// tpc_finish before vote.
	c.Async("tpc_begin", 9, []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
	_, err = c.Call(cx, "tpc_finish", 9)
	check("finish before vote", err, "builtins.AssertionError", zeowire.Tuple{"finished called wo lock"})
	oids, err := c.Call(cx, "new_oids", 3)
	if want := (zeowire.Tuple{oidb(1), oidb(2), oidb(3)}); err != nil || !zeowire.Equal(oids, want) {
		t.Errorf("new_oids(3) = %s %v", zeowire.Repr(oids), err)
	}
	// Unknown storage and read-only registration.
	d := dial(t, ts.addr, "")
	_, err = d.Register(cx, "nope", false)
	check("unknown storage", err, "builtins.ValueError", zeowire.Tuple{"unknown storage: nope"})
}

func TestReadOnly(t *testing.T) {
	ts := startServer(t, func(s *zeowire.Server) { s.ReadOnly = true })
	c := dial(t, ts.addr, "")
	cx := ctx(t)
	if _, err := c.Register(cx, "1", false); !errors.Is(err, zeowire.ErrReadOnly) {
		t.Fatalf("writable register on read-only server: %v", err)
	}
	// Same connection, read-only this time (read-only fallback).
	if _, err := c.Register(cx, "1", true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(cx, "new_oids"); !errors.Is(err, zeowire.ErrReadOnly) {
		t.Errorf("new_oids: %v", err)
	}
	if _, err := c.Call(cx, "vote", 1); !errors.Is(err, zeowire.ErrReadOnly) {
		t.Errorf("vote: %v", err)
	}
	if _, err := c.Call(cx, "pack", 1e9, true); err != nil {
		t.Errorf("pack on read-only: %v", err)
	}
	c.Async("tpc_begin", 1, []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("async tpc_begin on a read-only connection did not close it")
	}
}

func TestRuok(t *testing.T) {
	ts := startServer(t, nil)
	r := dialRaw(t, ts.addr)
	r.recv()
	r.send([]byte("ruok"))
	got := string(r.recv())
	want := `{"1": {"connections": 0, "loads": 0, "stores": 0, "commits": 0, "aborts": 0, "active_txns": 0, "lock_time": null, "conflicts": 0, "conflicts_resolved": 0, "start": "` +
		frozen().Format("Mon Jan _2 15:04:05 2006") + `", "waiting": 0, "timeout-thread-is-alive": "stub", "last-transaction": "0000000000000000"}, "2": {"connections": 0, "loads": 0, "stores": 0, "commits": 0, "aborts": 0, "active_txns": 0, "lock_time": null, "conflicts": 0, "conflicts_resolved": 0, "start": "` +
		frozen().Format("Mon Jan _2 15:04:05 2006") + `", "waiting": 0, "timeout-thread-is-alive": "stub", "last-transaction": "0000000000000000"}}`
	if got != want {
		t.Errorf("ruok:\n got %s\nwant %s", got, want)
	}
	r.expectClosed()
}

// Large transactions spill their records to a temporary file; they commit
// (and re-vote after client-side resolution) with the same data.
func TestSpilledTransaction(t *testing.T) {
	ts := startServer(t, func(s *zeowire.Server) {
		s.SpillThreshold = 1500
		s.TempDir = t.TempDir()
		s.ClientConflictResolution = true
	})
	a := dial(t, ts.addr, "1")
	cx := ctx(t)
	var stores [][3][]byte
	for i := range 5 {
		stores = append(stores, [3][]byte{oidb(uint64(i + 1)), z64, bytes.Repeat([]byte{byte('a' + i)}, 1000)})
	}
	tid, err := commit(t, a, 1, stores...)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stores {
		r, err := a.Call(cx, "loadBefore", s[0], zeowire.MaxTid.Bytes())
		if err != nil || !bytes.Equal(r.(zeowire.Tuple)[0].([]byte), s[2]) {
			t.Fatalf("oid %x: %v", s[0], err)
		}
	}
	// A conflict on a spilled record comes back with its data.
	b := dial(t, ts.addr, "1")
	if _, err := commit(t, b, 2, [3][]byte{oidb(5), tid.Bytes(), []byte("b")}); err != nil {
		t.Fatal(err)
	}
	a.Async("tpc_begin", 3, []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
	a.Async("storea", oidb(4), tid.Bytes(), bytes.Repeat([]byte("x"), 1000), 3)
	a.Async("storea", oidb(5), tid.Bytes(), bytes.Repeat([]byte("y"), 1000), 3)
	r, err := a.Call(cx, "vote", 3)
	if err != nil {
		t.Fatal(err)
	}
	l := asSeq(r)
	if len(l) != 1 {
		t.Fatalf("vote = %s", zeowire.Repr(r))
	}
	if d, _ := l[0].(zeowire.Dict).Get("data"); !bytes.Equal(d.([]byte), bytes.Repeat([]byte("y"), 1000)) {
		t.Errorf("conflict data %s", zeowire.Repr(d))
	}
	if ents, _ := os.ReadDir(ts.srv.TempDir); len(ents) != 0 {
		t.Errorf("spill files are visible: %v", ents)
	}
}
