package fsstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/zeowire"
)

type testServer struct {
	srv   *zeowire.Server
	addr  string
	store *Store
	done  chan error
}

func startServer(t testing.TB, path string, opt Options, now func() time.Time) *testServer {
	t.Helper()
	st, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	srv := &zeowire.Server{Storages: map[string]zeowire.Storage{"1": st}, ClientConflictResolution: true, Now: now}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: srv, addr: ln.Addr().String(), store: st, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ln) }()
	return ts
}

func (ts *testServer) stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ts.srv.Shutdown(ctx)
	<-ts.done
	if err := ts.store.Close(); err != nil {
		t.Fatal(err)
	}
}

func dial(t testing.TB, addr string) *zeowire.ClientConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := zeowire.Dial(ctx, addr, zeowire.ClientOptions{Heartbeat: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(ctx, "1", false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

type store struct {
	oid    zeowire.Oid
	serial zeowire.Tid
	data   []byte
}

// commitTxn runs one two-phase commit over the wire and returns the tid.
func commitTxn(ctx context.Context, c *zeowire.ClientConn, id int64, user, desc []byte, ext zeowire.Dict, tid []byte, stores ...store) (zeowire.Tid, error) {
	if ext == nil {
		ext = zeowire.Dict{}
	}
	var tidArg any
	if tid != nil {
		tidArg = tid
	}
	if err := c.Async("tpc_begin", id, user, desc, ext, tidArg, " "); err != nil {
		return 0, err
	}
	for _, s := range stores {
		if err := c.Async("storea", s.oid.Bytes(), s.serial.Bytes(), s.data, id); err != nil {
			return 0, err
		}
	}
	r, err := c.Call(ctx, "vote", id)
	if err != nil {
		c.Call(ctx, "tpc_abort", id)
		return 0, err
	}
	if l, ok := r.(zeowire.List); ok && len(l) > 0 {
		c.Call(ctx, "tpc_abort", id)
		return 0, &zeowire.RemoteError{Class: "vote conflicts", Args: r}
	}
	if l, ok := r.(zeowire.Tuple); ok && len(l) > 0 {
		c.Call(ctx, "tpc_abort", id)
		return 0, &zeowire.RemoteError{Class: "vote conflicts", Args: r}
	}
	r, err = c.Call(ctx, "tpc_finish", id)
	if err != nil {
		return 0, err
	}
	return zeowire.AsTid(r)
}

// TestRecommitFixtures commits, through the server, the transactions the
// real ZEO server wrote in the recorded sessions (same tids, user,
// description, extension dict, data) and checks that the file is
// byte-identical: the record layout and the extension pickle match.
func TestRecommitFixtures(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/zeo/data/*/after/Data*.fs")
	tested := 0
	for _, ref := range files {
		want, err := os.ReadFile(ref)
		if err != nil {
			t.Fatal(err)
		}
		f, err := fsformat.NewFile(bytes.NewReader(want), int64(len(want)), ref)
		if err != nil {
			t.Fatal(err)
		}
		type txn struct {
			tid        zeowire.Tid
			user, desc []byte
			ext        []byte
			stores     []store
		}
		var txns []txn
		plain := true
		serials := map[zeowire.Oid]zeowire.Tid{}
		for tx, err := range f.Transactions(fsformat.IterOptions{}) {
			if err != nil {
				t.Fatal(err)
			}
			if tx.Status != ' ' {
				plain = false
			}
			x := txn{tid: zeowire.Tid(tx.Tid), user: clone(tx.User), desc: clone(tx.Description), ext: clone(tx.Extension)}
			for r, err := range tx.Records() {
				if err != nil {
					t.Fatal(err)
				}
				if r.IsBackpointer() {
					plain = false
				}
				oid := zeowire.Oid(r.Oid)
				x.stores = append(x.stores, store{oid, serials[oid], clone(r.Data)})
			}
			for _, st := range x.stores {
				serials[st.oid] = x.tid
			}
			txns = append(txns, x)
		}
		if !plain || len(txns) == 0 {
			continue // undo, pack, restore: not a plain stream of stores
		}
		name := filepath.Base(filepath.Dir(filepath.Dir(ref))) + "/" + filepath.Base(ref)
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "Data.fs")
			ts := startServer(t, path, Options{}, nil)
			c := dial(t, ts.addr)
			cx := tctx(t)
			for i, x := range txns {
				ext := decodeExt(x.ext)
				got, err := commitTxn(cx, c, int64(i+1), x.user, x.desc, ext, x.tid.Bytes(), x.stores...)
				if err != nil {
					t.Fatalf("txn %s: %v", x.tid, err)
				}
				if got != x.tid {
					t.Fatalf("tid %s, want %s", got, x.tid)
				}
			}
			c.Close()
			ts.stop(t)
			have, _ := os.ReadFile(path)
			if !bytes.Equal(have, want) {
				t.Fatalf("file differs from %s (%d vs %d bytes)", ref, len(have), len(want))
			}
			if err := fsformat.Verify(path, fsformat.VerifyOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path + ".index"); err != nil {
				t.Errorf("index not saved: %v", err)
			}
		})
		tested++
	}
	if tested < 2 {
		t.Fatalf("only %d fixture files tested", tested)
	}
}

func oidData(n int) []byte { return []byte("state of object " + string(rune('a'+n%26))) }

// TestLoadsHistoryConflicts covers reads of a file served and reopened:
// loadBefore along the chain, loadSerial, history, conflicts, deletes,
// iteration and record_iternext, undo.
func TestLoadsHistoryConflicts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	ts := startServer(t, path, Options{}, nil)
	c := dial(t, ts.addr)
	cx := tctx(t)
	t1, err := commitTxn(cx, c, 1, []byte("u"), []byte("d1"), zeowire.Dict{{Key: "k", Value: int64(1)}}, nil,
		store{0, 0, []byte("root1")}, store{1, 0, []byte("one1")})
	if err != nil {
		t.Fatal(err)
	}
	t2, err := commitTxn(cx, c, 2, nil, []byte("d2"), nil, nil, store{0, t1, []byte("root2")})
	if err != nil {
		t.Fatal(err)
	}
	// A conflict: oid 0 is at t2, not t1.
	if _, err := commitTxn(cx, c, 3, nil, nil, nil, nil, store{0, t1, []byte("stale")}); err == nil {
		t.Fatal("stale store committed")
	}
	check := func(c *zeowire.ClientConn) {
		t.Helper()
		rev, ok, err := c.LoadBefore(cx, 0, zeowire.Tid(1<<63-1))
		if err != nil || !ok || string(rev.Data) != "root2" || rev.Start != t2 || rev.End != 0 {
			t.Fatalf("load root: %+v %v %v", rev, ok, err)
		}
		rev, ok, err = c.LoadBefore(cx, 0, t2)
		if err != nil || !ok || string(rev.Data) != "root1" || rev.Start != t1 || rev.End != t2 {
			t.Fatalf("loadBefore root t2: %+v %v %v", rev, ok, err)
		}
		_, ok, err = c.LoadBefore(cx, 0, t1)
		if err != nil || ok {
			t.Fatalf("loadBefore root t1: %v %v", ok, err)
		}
		if _, _, err := c.LoadBefore(cx, 99, t2); !isPOSKey(err) {
			t.Fatalf("missing oid: %v", err)
		}
		r, err := c.Call(cx, "loadSerial", zeowire.Oid(0).Bytes(), t1.Bytes())
		if b, _ := r.([]byte); err != nil || string(b) != "root1" {
			t.Fatalf("loadSerial: %v %v", r, err)
		}
		r, err = c.Call(cx, "history", zeowire.Oid(0).Bytes(), int64(5))
		if l, _ := r.(zeowire.List); err != nil || len(l) != 2 {
			t.Fatalf("history: %s %v", zeowire.Repr(r), err)
		} else if d := l[1].(zeowire.Dict); true {
			if v, _ := d.Get("k"); v != int64(1) {
				t.Errorf("history ext: %s", zeowire.Repr(d))
			}
		}
		if last, err := c.LastTransaction(cx); err != nil || last != t2 {
			t.Fatalf("lastTransaction %s %v", last, err)
		}
	}
	check(c)
	c.Close()
	ts.stop(t)
	if err := fsformat.Verify(path, fsformat.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}

	// Reopened: same answers, new oids after the largest stored.
	ts = startServer(t, path, Options{}, nil)
	c = dial(t, ts.addr)
	check(c)
	r, err := c.Call(cx, "new_oids", int64(1))
	if l, _ := r.(zeowire.List); err != nil || len(l) != 1 || !bytes.Equal(l[0].([]byte), zeowire.Oid(2).Bytes()) {
		t.Errorf("new_oids: %s %v", zeowire.Repr(r), err)
	}
	// record_iternext walks oids 0 and 1.
	r, err = c.Call(cx, "record_iternext", nil)
	if tu, _ := r.(zeowire.Tuple); err != nil || len(tu) != 4 || string(tu[2].([]byte)) != "root2" {
		t.Errorf("record_iternext: %s %v", zeowire.Repr(r), err)
	}
	// undo t2: root back to root1.
	undo := func(id zeowire.Tid) error {
		c.Async("tpc_begin", int64(10), []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
		c.Async("undoa", []byte(base64.StdEncoding.EncodeToString(id.Bytes())), int64(10))
		if _, err := c.Call(cx, "vote", int64(10)); err != nil {
			c.Call(cx, "tpc_abort", int64(10))
			return err
		}
		_, err := c.Call(cx, "tpc_finish", int64(10))
		return err
	}
	if err := undo(t2); err != nil {
		t.Fatal(err)
	}
	rev, ok, err := c.LoadBefore(cx, 0, zeowire.Tid(1<<63-1))
	if err != nil || !ok || string(rev.Data) != "root1" {
		t.Fatalf("after undo: %+v %v %v", rev, ok, err)
	}
	c.Close()
	ts.stop(t)
	if err := fsformat.Verify(path, fsformat.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func isPOSKey(err error) bool {
	var re *zeowire.RemoteError
	return errors.As(err, &re) && re.Class == "ZODB.POSException.POSKeyError" || errors.As(err, new(*zeowire.POSKeyError))
}

// TestIncompleteTail: an interrupted commit at the end is cut off into
// Data.fs.tr0 when the storage opens, as FileStorage does.
func TestIncompleteTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	ts := startServer(t, path, Options{}, nil)
	c := dial(t, ts.addr)
	cx := tctx(t)
	if _, err := commitTxn(cx, c, 1, nil, nil, nil, nil, store{0, 0, []byte("root")}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	ts.stop(t)
	good, _ := os.ReadFile(path)
	// Append a header with status 'c' and some bytes, as a crash mid-commit leaves.
	var h [23]byte
	binary.BigEndian.PutUint64(h[:], 0x0400000000000000)
	binary.BigEndian.PutUint64(h[8:], 100)
	h[16] = 'c'
	os.WriteFile(path, append(append(append([]byte{}, good...), h[:]...), make([]byte, 30)...), 0o644)
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	now, _ := os.ReadFile(path)
	if !bytes.Equal(now, good) {
		t.Errorf("tail not cut: %d bytes, want %d", len(now), len(good))
	}
	if _, err := os.Stat(path + ".tr0"); err != nil {
		t.Errorf("no .tr0: %v", err)
	}
}

// TestLocked: a second open of the same file fails with the lock error.
func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := Open(path, Options{}); err == nil {
		t.Fatal("second open succeeded")
	}
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ro.Close()
}

// TestReadOnlyMissing: a read-only open never creates the file.
func TestReadOnlyMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	if _, err := Open(path, Options{ReadOnly: true}); err == nil {
		t.Fatal("read-only open of a missing file succeeded")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("file created")
	}
}

var _ = io.EOF

// TestPackLive packs while another client keeps committing: the pack
// drops the old revisions, no commit is lost, the file verifies and the
// storage goes on serving the packed file.
func TestPackLive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	ts := startServer(t, path, Options{PackKeepOld: true}, nil)
	c := dial(t, ts.addr)
	cx := tctx(t)
	var serial zeowire.Tid
	var firstTid zeowire.Tid
	for i := 0; i < 20; i++ {
		tid, err := commitTxn(cx, c, int64(i+1), nil, nil, nil, nil, store{1, serial, []byte("rev " + string(rune('a'+i)))})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			firstTid = tid
		}
		serial = tid
	}

	// A second client commits to oid 2 during the pack.
	w := dial(t, ts.addr)
	stop := make(chan struct{})
	written := make(chan []zeowire.Tid)
	go func() {
		var tids []zeowire.Tid
		var s zeowire.Tid
		for i := int64(1); ; i++ {
			select {
			case <-stop:
				written <- tids
				return
			default:
			}
			tid, err := commitTxn(cx, w, i, nil, nil, nil, nil, store{2, s, []byte("w")})
			if err != nil {
				t.Error(err)
				written <- tids
				return
			}
			s = tid
			tids = append(tids, tid)
		}
	}()
	time.Sleep(20 * time.Millisecond)
	if _, err := c.Call(cx, "pack", serial.Seconds()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	tids := <-written
	if len(tids) == 0 {
		t.Fatal("no commit during the pack")
	}
	// Of oid 1's 20 revisions only the one current at the pack time (and
	// the last, when the float pack time falls just before it) remain.
	if h, err := ts.store.History(cx, 1, 100); err != nil || len(h) > 2 {
		t.Errorf("not packed: %d revisions of oid 1 (%v)", len(h), err)
	}
	rev, ok, err := c.LoadBefore(cx, 1, zeowire.Tid(1<<62))
	if err != nil || !ok || string(rev.Data) != "rev t" {
		t.Fatalf("after pack: %+v %v %v", rev, ok, err)
	}
	if _, err := c.Call(cx, "loadSerial", zeowire.Oid(1).Bytes(), firstTid.Bytes()); err == nil {
		t.Error("old revision still loadable after pack")
	}
	rev, ok, err = c.LoadBefore(cx, 2, zeowire.Tid(1<<62))
	if err != nil || !ok || rev.Start != tids[len(tids)-1] {
		t.Fatalf("oid 2 after pack: %+v %v %v (last %s)", rev, ok, err, tids[len(tids)-1])
	}
	// Commits go on on the packed file.
	if _, err := commitTxn(cx, c, 100, nil, nil, nil, nil, store{1, rev0(t, c, 1), []byte("after")}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	w.Close()
	ts.stop(t)
	if err := fsformat.Verify(path, fsformat.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".old"); err != nil {
		t.Error(err)
	}
	// Every commit of the writer is in the packed file.
	f, err := fsformat.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := map[zeowire.Tid]bool{}
	for tx, err := range f.Transactions(fsformat.IterOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		in[zeowire.Tid(tx.Tid)] = true
	}
	for _, tid := range tids {
		if !in[tid] {
			t.Fatalf("commit %s lost by the pack", tid)
		}
	}
}

func rev0(t *testing.T, c *zeowire.ClientConn, oid zeowire.Oid) zeowire.Tid {
	rev, _, err := c.LoadBefore(tctx(t), oid, zeowire.Tid(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	return rev.Start
}

// TestReadOnly: a read-only store serves loads and refuses commits; the
// file is unchanged.
func TestReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	ts := startServer(t, path, Options{}, nil)
	c := dial(t, ts.addr)
	cx := tctx(t)
	if _, err := commitTxn(cx, c, 1, nil, nil, nil, nil, store{0, 0, []byte("root")}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	ts.stop(t)
	before, _ := os.ReadFile(path)
	st, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	rev, ok, err := st.LoadBefore(cx, 0, zeowire.Tid(1<<62))
	if err != nil || !ok || string(rev.Data) != "root" {
		t.Fatalf("%+v %v %v", rev, ok, err)
	}
	if _, err := st.Begin(cx, zeowire.TxnMeta{Tid: rev.Start + 1}); !errors.Is(err, zeowire.ErrReadOnly) {
		t.Errorf("Begin on read-only: %v", err)
	}
	// Served with no other read-only setting, the storage itself makes the
	// server refuse writable registrations (ZEO: storage.isReadOnly()).
	srv := &zeowire.Server{Storages: map[string]zeowire.Storage{"1": st}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	for _, readOnly := range []bool{false, true} {
		c, err := zeowire.Dial(cx, ln.Addr().String(), zeowire.ClientOptions{Heartbeat: -1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Register(cx, "1", readOnly)
		if readOnly && err != nil {
			t.Errorf("read-only registration refused: %v", err)
		}
		if !readOnly && !errors.Is(err, zeowire.ErrReadOnly) {
			t.Errorf("writable registration on a read-only storage: %v, want ReadOnlyError", err)
		}
		c.Close()
	}
	srv.Shutdown(cx)
	<-served
	st.Close()
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("read-only open changed the file")
	}
}

// TestRecordIterNext walks every current record in oid order, including
// an object created during the walk.
func TestRecordIterNext(t *testing.T) {
	st := openFresh(t)
	ctx := context.Background()
	tid := zeowire.Tid(0x03f0000000000000)
	put := func(oids ...zeowire.Oid) {
		tid++
		tx, err := st.Begin(ctx, zeowire.TxnMeta{Tid: tid})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range oids {
			if err := tx.Store(o, 0, []byte{byte(o)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Vote(); err != nil {
			t.Fatal(err)
		}
		if err := tx.Finish(); err != nil {
			t.Fatal(err)
		}
	}
	put(5, 1, 300, 70000)
	var got []zeowire.Oid
	oid, _, data, next, more, err := st.RecordIterNext(ctx, 0, true)
	for {
		if err != nil {
			t.Fatal(err)
		}
		if data[0] != byte(oid) {
			t.Fatalf("oid %s data %v", oid, data)
		}
		got = append(got, oid)
		if len(got) == 2 {
			put(400)
		}
		if !more {
			break
		}
		oid, _, data, next, more, err = st.RecordIterNext(ctx, next, false)
	}
	want := []zeowire.Oid{1, 5, 300, 400, 70000}
	if !slices.Equal(got, want) {
		t.Errorf("walk %v, want %v", got, want)
	}
}

// TestBlobUndo: blobs are moved into the bushy tree at commit, and an undo
// that brings an older blob revision back gives it a file under the undo's
// tid.
func TestBlobUndo(t *testing.T) {
	dir := t.TempDir()
	blobs := filepath.Join(dir, "blobs")
	st, err := Open(filepath.Join(dir, "Data.fs"), Options{BlobDir: blobs})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	record := []byte("\x80\x03cZODB.blob\nBlob\nq\x00.\x80\x03N.")
	tid := zeowire.Tid(0x03f0000000000000)
	commitBlob := func(content string, serial zeowire.Tid) zeowire.Tid {
		tid++
		up := filepath.Join(st.BlobTempDir(), "up"+content)
		if err := os.WriteFile(up, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		tx, err := st.Begin(ctx, zeowire.TxnMeta{Tid: tid})
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.(zeowire.BlobTxn).StoreBlob(1, serial, record, up); err != nil {
			t.Fatal(err)
		}
		if err := tx.Vote(); err != nil {
			t.Fatal(err)
		}
		if err := tx.Finish(); err != nil {
			t.Fatal(err)
		}
		return tid
	}
	t1 := commitBlob("one", 0)
	t2 := commitBlob("two", t1)
	readBlob := func(serial zeowire.Tid) string {
		r, err := st.OpenBlob(ctx, 1, serial)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		b, _ := io.ReadAll(r)
		return string(b)
	}
	if readBlob(t1) != "one" || readBlob(t2) != "two" {
		t.Fatal("blob contents")
	}
	if b, _ := os.ReadFile(filepath.Join(blobs, ".layout")); string(b) != "bushy" {
		t.Errorf(".layout %q", b)
	}
	tid++
	tx, err := st.Begin(ctx, zeowire.TxnMeta{Tid: tid})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Undo(t2); err != nil {
		t.Fatal(err)
	}
	if err := tx.Vote(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Finish(); err != nil {
		t.Fatal(err)
	}
	if got := readBlob(tid); got != "one" {
		t.Errorf("blob after undo %q", got)
	}
	if _, err := st.OpenBlob(ctx, 1, tid+1); !isPOSKey(err) {
		t.Errorf("missing blob: %v", err)
	}
}

// TestConcurrentLoads: readers load, walk history and iterate while a
// writer commits and a pack swaps the file; every answer is consistent
// (run it with -race).
func TestConcurrentLoads(t *testing.T) {
	st := openFresh(t)
	ctx := context.Background()
	var tid zeowire.Tid = zeowire.TidFromTime(time.Now().Add(-time.Hour))
	serials := map[zeowire.Oid]zeowire.Tid{}
	commit := func(n int) {
		tid++
		tx, err := st.Begin(ctx, zeowire.TxnMeta{Tid: tid})
		if err != nil {
			t.Error(err)
			return
		}
		oid := zeowire.Oid(n % 10)
		if err := tx.Store(oid, serials[oid], []byte(fmt.Sprintf("oid %d rev %d", oid, n))); err != nil {
			t.Error(err)
			tx.Abort()
			return
		}
		if err := tx.Vote(); err != nil {
			t.Fatal(err)
		}
		if err := tx.Finish(); err != nil {
			t.Error(err)
		}
		serials[oid] = tid
	}
	for i := 0; i < 10; i++ {
		commit(i)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				oid := zeowire.Oid((i + r) % 10)
				last := st.LastTransaction()
				rev, ok, err := st.LoadBefore(ctx, oid, zeowire.Tid(1<<62))
				if err != nil || !ok || !strings.HasPrefix(string(rev.Data), fmt.Sprintf("oid %d ", oid)) || rev.Start > st.LastTransaction() || rev.End != 0 {
					t.Errorf("load %s: %q %v %v", oid, rev.Data, ok, err)
					return
				}
				_ = last
				if h, err := st.History(ctx, oid, 3); err != nil || len(h) == 0 {
					t.Errorf("history %s: %v", oid, err)
					return
				}
				if i%50 == 0 {
					it, err := st.Iterate(ctx, 0, 0)
					if err != nil {
						t.Error(err)
						return
					}
					for {
						_, _, ok, err := it.Next()
						if err != nil {
							t.Error(err)
						}
						if !ok || err != nil {
							break
						}
					}
					it.Close()
				}
			}
		}(r)
	}
	for i := 10; i < 300; i++ {
		commit(i)
		if i == 150 {
			if err := st.Pack(ctx, tid.Seconds()); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	wg.Wait()
}

// TestQuota: a store past the quota fails the transaction, which leaves
// nothing in the file.
func TestQuota(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	ts := startServer(t, path, Options{Quota: 200}, nil)
	c := dial(t, ts.addr)
	cx := tctx(t)
	t1, err := commitTxn(cx, c, 1, nil, nil, nil, nil, store{0, 0, make([]byte, 100)})
	if err != nil {
		t.Fatal(err)
	}
	size := ts.store.Info().Size
	_, err = commitTxn(cx, c, 2, nil, nil, nil, nil, store{0, t1, make([]byte, 100)}, store{1, 0, make([]byte, 100)})
	var re *zeowire.RemoteError
	if !errors.As(err, &re) || re.Class != "ZODB.FileStorage.FileStorage.FileStorageQuotaError" {
		t.Fatalf("over quota: %v", err)
	}
	if ts.store.Info().Size != size || ts.store.LastTransaction() != t1 {
		t.Error("failed transaction visible")
	}
	c.Close()
	ts.stop(t)
	if err := fsformat.Verify(path, fsformat.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() != size {
		t.Errorf("file %d bytes, want %d", fi.Size(), size)
	}
}

// TestIteratorAcrossPack: an iterator opened before a pack reads on from
// the file it started with.
func TestIteratorAcrossPack(t *testing.T) {
	st := openFresh(t)
	ctx := context.Background()
	tid := zeowire.TidFromTime(time.Now().Add(-time.Hour))
	var serial zeowire.Tid
	for i := 0; i < 20; i++ {
		tid++
		tx, _ := st.Begin(ctx, zeowire.TxnMeta{Tid: tid})
		if err := tx.Store(0, serial, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Vote(); err != nil {
			t.Fatal(err)
		}
		if err := tx.Finish(); err != nil {
			t.Fatal(err)
		}
		serial = tid
	}
	it, err := st.Iterate(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if _, _, ok, err := it.Next(); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := st.Pack(ctx, tid.Seconds()+10); err != nil {
		t.Fatal(err)
	}
	n := 1
	for {
		_, _, ok, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		n++
	}
	if n != 20 {
		t.Errorf("%d transactions, want the 20 of the unpacked file", n)
	}
	if st.Info().Length != 1 {
		t.Errorf("length %d", st.Info().Length)
	}
}

// TestUndoChains: undo of an undo, and undo of a transaction whose state
// a later undo brought back (FileStorage allows it: same data position).
func TestUndoChains(t *testing.T) {
	st := openFresh(t)
	ctx := context.Background()
	tid := zeowire.TidFromTime(time.Now().Add(-time.Hour))
	run := func(f func(tx zeowire.StorageTxn) error) (zeowire.Tid, error) {
		tid++
		return tid, commitWith(t, st, tid, f)
	}
	load := func() string {
		rev, _, err := st.LoadBefore(ctx, 1, zeowire.Tid(1<<62))
		if err != nil {
			return err.Error()
		}
		return string(rev.Data)
	}
	t1, _ := run(func(tx zeowire.StorageTxn) error { return tx.Store(1, 0, []byte("A")) })
	t2, _ := run(func(tx zeowire.StorageTxn) error { return tx.Store(1, t1, []byte("B")) })
	undo := func(id zeowire.Tid) error {
		_, err := run(func(tx zeowire.StorageTxn) error { _, err := tx.Undo(id); return err })
		return err
	}
	if err := undo(t2); err != nil || load() != "A" {
		t.Fatalf("undo t2: %v %s", err, load())
	}
	t3 := tid
	if err := undo(t2); err == nil {
		t.Fatal("second undo of t2 accepted")
	}
	if err := undo(t3); err != nil || load() != "B" {
		t.Fatalf("undo of the undo: %v %s", err, load())
	}
	// The current record points at t2's data again: t2 can be undone.
	if err := undo(t2); err != nil || load() != "A" {
		t.Fatalf("undo t2 after redo: %v %s", err, load())
	}
	// The state is t1's again (through a backpointer), so its creation
	// can be undone: the object no longer exists.
	if err := undo(t1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.LoadBefore(ctx, 1, zeowire.Tid(1<<62)); !isPOSKey(err) {
		t.Fatalf("after undoing the creation: %v", err)
	}
	// Nothing more to undo in t2: the object is gone.
	if err := undo(t2); err == nil {
		t.Fatal("undo of t2 on a deleted object accepted")
	}
}

// TestUndoSeveralInOne: Zope's undo form undoes several transactions in
// one; newest first works through the records this transaction wrote.
func TestUndoSeveralInOne(t *testing.T) {
	st := openFresh(t)
	ctx := context.Background()
	tid := zeowire.TidFromTime(time.Now().Add(-time.Hour))
	run := func(f func(tx zeowire.StorageTxn) error) (zeowire.Tid, error) {
		tid++
		return tid, commitWith(t, st, tid, f)
	}
	t1, _ := run(func(tx zeowire.StorageTxn) error { return tx.Store(1, 0, []byte("A")) })
	t2, _ := run(func(tx zeowire.StorageTxn) error { return tx.Store(1, t1, []byte("B")) })
	t3, _ := run(func(tx zeowire.StorageTxn) error { return tx.Store(1, t2, []byte("C")) })
	undoAll := func(ids ...zeowire.Tid) error {
		_, err := run(func(tx zeowire.StorageTxn) error {
			for _, id := range ids {
				if _, err := tx.Undo(id); err != nil {
					return err
				}
			}
			return nil
		})
		return err
	}
	if err := undoAll(t2, t3); err == nil {
		t.Fatal("oldest-first undo accepted")
	}
	if err := undoAll(t3, t2); err != nil {
		t.Fatal(err)
	}
	rev, _, err := st.LoadBefore(ctx, 1, zeowire.Tid(1<<62))
	if err != nil || string(rev.Data) != "A" {
		t.Fatalf("after undoing t3 and t2: %q %v", rev.Data, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsformat.Verify(st.Path(), fsformat.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestCloseWithTransactionInProgress: Close does not hang on a
// transaction that never ends; the next open cuts it off.
func TestCloseWithTransactionInProgress(t *testing.T) {
	defer func(d time.Duration) { closeWait = d }(closeWait)
	closeWait = 50 * time.Millisecond
	path := filepath.Join(t.TempDir(), "Data.fs")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := st.Begin(context.Background(), zeowire.TxnMeta{Tid: 0x03f0000000000001})
	if err != nil {
		t.Fatal(err)
	}
	tx.Store(0, 0, []byte("root"))
	if err := tx.Vote(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err == nil {
		t.Fatal("Close with a transaction in progress reported no error")
	}
	tx.Abort()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.LastTransaction() != 0 || st.Info().Length != 0 {
		t.Errorf("aborted transaction visible: last %s, %d objects", st.LastTransaction(), st.Info().Length)
	}
}

// TestExtensionRoundTrip: every protocol-3 extension pickle in the fixtures
// decodes and re-encodes to the same bytes, so a transaction committed
// through serve carries the extension bytes Python's FileStorage writes.
func TestExtensionRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/fs/*.fs")
	more, _ := filepath.Glob("../../testdata/zeo/data/*/after/*.fs")
	n := 0
	for _, path := range append(files, more...) {
		f, err := fsformat.Open(path)
		if err != nil {
			continue
		}
		for tx, err := range f.Transactions(fsformat.IterOptions{}) {
			if err != nil {
				break
			}
			if len(tx.Extension) < 2 || tx.Extension[0] != 0x80 || tx.Extension[1] != 3 {
				continue
			}
			d := decodeExt(tx.Extension)
			got, err := encodeExt(d)
			if err != nil || !bytes.Equal(got, tx.Extension) {
				t.Errorf("%s at %d: extension %x re-encoded as %x (%v)", path, tx.Pos, tx.Extension, got, err)
			}
			n++
		}
		f.Close()
	}
	if n == 0 {
		t.Fatal("no extension found")
	}
	t.Logf("%d extensions", n)
}

// TestIndexSavedAsPython: the index saved at Close is the one Python's
// FileStorage saved for the same file, byte for byte.
func TestIndexSavedAsPython(t *testing.T) {
	want, err := os.ReadFile("../../testdata/fs/basic.fs.index")
	if err != nil {
		t.Skip(err)
	}
	src, _ := os.ReadFile("../../testdata/fs/basic.fs")
	path := filepath.Join(t.TempDir(), "basic.fs")
	os.WriteFile(path, src, 0o644)
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	have, _ := os.ReadFile(path + ".index")
	if !bytes.Equal(have, want) {
		t.Errorf("index differs: %d bytes, want %d", len(have), len(want))
	}
}

// TestConcurrentIncrements: clients increment one counter concurrently,
// retrying on conflicts; no increment is lost and every client hears of
// every commit it did not make (invalidateTransaction).
func TestConcurrentIncrements(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	ts := startServer(t, path, Options{}, nil)
	cx := tctx(t)
	c0 := dial(t, ts.addr)
	if _, err := commitTxn(cx, c0, 1, nil, nil, nil, nil, store{1, 0, []byte("0")}); err != nil {
		t.Fatal(err)
	}
	const clients, each = 4, 25
	type result struct {
		mine    []zeowire.Tid
		invalid map[zeowire.Tid]bool
	}
	results := make([]result, clients)
	var wg, registered, committed sync.WaitGroup
	registered.Add(clients)
	committed.Add(clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var mu sync.Mutex
			inv := map[zeowire.Tid]bool{}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			doneOnce := sync.OnceFunc(committed.Done)
			defer doneOnce()
			registeredOnce := sync.OnceFunc(registered.Done)
			defer registeredOnce()
			c, err := zeowire.Dial(ctx, ts.addr, zeowire.ClientOptions{Heartbeat: -1, Async: func(m zeowire.Message) {
				if args, ok := m.Args.(zeowire.Tuple); ok && m.Name == "invalidateTransaction" && len(args) > 0 {
					if tid, err := zeowire.AsTid(args[0]); err == nil {
						mu.Lock()
						inv[tid] = true
						mu.Unlock()
					}
				}
			}})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			if _, err := c.Register(ctx, "1", false); err != nil {
				t.Error(err)
				return
			}
			// Commits start once every client is registered (a client
			// hears only of commits made after it registered).
			registeredOnce()
			registered.Wait()
			var mine []zeowire.Tid
			id := int64(i * 1000000)
			for done := 0; done < each; {
				rev, _, err := c.LoadBefore(ctx, 1, zeowire.Tid(1<<62))
				if err != nil {
					t.Error(err)
					return
				}
				v, _ := strconv.Atoi(string(rev.Data))
				id++
				tid, err := commitTxn(ctx, c, id, nil, nil, nil, nil, store{1, rev.Start, []byte(strconv.Itoa(v + 1))})
				if err != nil {
					continue // a conflict: load again and retry
				}
				mine = append(mine, tid)
				done++
			}
			// Once every client is done, wait until this one heard of
			// every other commit.
			doneOnce()
			committed.Wait()
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				mu.Lock()
				n := len(inv)
				mu.Unlock()
				if n >= (clients-1)*each {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			mu.Lock()
			results[i] = result{mine, inv}
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	rev, _, err := c0.LoadBefore(cx, 1, zeowire.Tid(1<<62))
	if err != nil || string(rev.Data) != strconv.Itoa(clients*each) {
		t.Fatalf("counter %q (%v), want %d", rev.Data, err, clients*each)
	}
	for i, r := range results {
		for j, o := range results {
			if i == j {
				continue
			}
			for _, tid := range o.mine {
				if !r.invalid[tid] {
					t.Errorf("client %d never told of commit %s by client %d", i, tid, j)
				}
			}
		}
	}
	c0.Close()
	ts.stop(t)
	if err := fsformat.Verify(path, fsformat.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestBlobDirLayout: a new blob directory is made bushy; a lawn one (no
// .layout, entries present) or another layout is refused.
func TestBlobDirLayout(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh")
	if err := prepareBlobDir(fresh, false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(fresh, ".layout")); string(b) != "bushy" {
		t.Errorf(".layout %q", b)
	}
	if err := prepareBlobDir(fresh, false); err != nil {
		t.Errorf("reopening: %v", err)
	}
	lawn := filepath.Join(dir, "lawn")
	os.MkdirAll(filepath.Join(lawn, "0x01"), 0o700)
	if err := prepareBlobDir(lawn, false); err == nil {
		t.Error("lawn directory accepted")
	}
	if _, err := os.Stat(filepath.Join(lawn, ".layout")); err == nil {
		t.Error("lawn directory marked")
	}
	os.WriteFile(filepath.Join(lawn, ".layout"), []byte("lawn\n"), 0o644)
	if err := prepareBlobDir(lawn, false); err == nil {
		t.Error("lawn layout accepted")
	}
}

// TestIterateFrom: iteration from any start tid (forward or, near the
// end, found backwards) yields exactly the transactions from there on.
func TestIterateFrom(t *testing.T) {
	st := openFresh(t)
	ctx := context.Background()
	tid := zeowire.TidFromTime(time.Now().Add(-time.Hour))
	var tids []zeowire.Tid
	var serial zeowire.Tid
	for i := 0; i < 50; i++ {
		tid += 1000
		tx, _ := st.Begin(ctx, zeowire.TxnMeta{Tid: tid})
		if err := tx.Store(0, serial, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Vote(); err != nil {
			t.Fatal(err)
		}
		if err := tx.Finish(); err != nil {
			t.Fatal(err)
		}
		serial = tid
		tids = append(tids, tid)
	}
	collect := func(start, stop zeowire.Tid) []zeowire.Tid {
		it, err := st.Iterate(ctx, start, stop)
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		var out []zeowire.Tid
		for {
			m, _, ok, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return out
			}
			out = append(out, m.Tid)
		}
	}
	for _, c := range []struct {
		start, stop zeowire.Tid
		want        []zeowire.Tid
	}{
		{0, 0, tids},
		{tids[3], 0, tids[3:]},
		{tids[45], 0, tids[45:]},
		{tids[45] - 1, 0, tids[45:]},
		{tids[49], 0, tids[49:]},
		{tids[49] + 1, 0, nil},
		{tids[40], tids[42], tids[40:43]},
		{1, tids[1], tids[:2]},
	} {
		if got := collect(c.start, c.stop); !slices.Equal(got, c.want) {
			t.Errorf("Iterate(%s, %s): %d transactions, want %d", c.start, c.stop, len(got), len(c.want))
		}
	}
}

// TestVoteWritesTransaction: as FileStorage, the whole transaction reaches
// the file at vote (so a full disk refuses the vote, not tpc_finish),
// marked 'c' until Finish writes its status; an abort after the vote
// truncates it away.
func TestVoteWritesTransaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	status := func(tpos int64) byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b[tpos+16]
	}
	data := bytes.Repeat([]byte("x"), 3<<20) // beyond the 1 MiB write buffer
	for _, finish := range []bool{false, true} {
		before := size()
		tx, err := st.Begin(ctx, zeowire.TxnMeta{Tid: zeowire.Tid(0x03f0000000000001 + before)})
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Store(0, 0, data); err != nil {
			t.Fatal(err)
		}
		if err := tx.Store(1, 0, []byte("small")); err != nil {
			t.Fatal(err)
		}
		if err := tx.Vote(); err != nil {
			t.Fatal(err)
		}
		want := before + 23 + 2*42 + int64(len(data)) + 5 + 8
		if got := size(); got != want || status(before) != 'c' {
			t.Fatalf("after vote: %d bytes, status %q; want %d and 'c'", got, status(before), want)
		}
		if !finish {
			tx.Abort()
			if got := size(); got != before {
				t.Fatalf("abort after vote left %d bytes, want %d", got, before)
			}
			continue
		}
		if err := tx.Finish(); err != nil {
			t.Fatal(err)
		}
		if status(before) != ' ' {
			t.Fatalf("after finish: status %q", status(before))
		}
	}
	if err := fsformat.Verify(path, fsformat.VerifyOptions{Deep: true}); err != nil {
		t.Fatal(err)
	}
}

// commitWith runs f in a storage transaction with tid and commits it; an
// error of f aborts the transaction and is returned.
func commitWith(t *testing.T, st *Store, tid zeowire.Tid, f func(tx zeowire.StorageTxn) error) error {
	t.Helper()
	tx, err := st.Begin(context.Background(), zeowire.TxnMeta{Tid: tid})
	if err != nil {
		t.Fatal(err)
	}
	if err := f(tx); err != nil {
		tx.Abort()
		return err
	}
	if err := tx.Vote(); err != nil {
		t.Fatal(err)
	}
	return tx.Finish()
}

// openFresh opens a new, empty Data.fs in a temporary directory, closed
// when the test ends.
func openFresh(t *testing.T) *Store {
	t.Helper()
	st, err := Open(filepath.Join(t.TempDir(), "Data.fs"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
