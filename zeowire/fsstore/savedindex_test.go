package fsstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/fsindex"
	"github.com/zodbctl/zodbctl/zeowire"
)

const fixtureDir = "../../testdata/fs"

// storeView is everything a client can learn of the storage's state: the
// answer to loadBefore(oid, ∞) and history for every oid up to the highest
// one, the last tid, the size, the number of objects and the next new oid.
func storeView(t *testing.T, st *Store) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	info := st.Info()
	fmt.Fprintf(&b, "last %s size %d length %d\n", st.LastTransaction(), info.Size, info.Length)
	st.mu.RLock()
	top := uint64(st.nextOid)
	st.mu.RUnlock()
	for oid := uint64(0); oid <= top+1; oid++ {
		rev, ok, err := st.LoadBefore(ctx, zeowire.Oid(oid), zeowire.Tid(1<<63-1))
		var pk *zeowire.POSKeyError
		switch {
		case errors.As(err, &pk):
			continue
		case err != nil:
			fmt.Fprintf(&b, "%d: error %v\n", oid, err)
		default:
			fmt.Fprintf(&b, "%d: %v %s %x\n", oid, ok, rev.Start, sha256.Sum256(rev.Data))
		}
		h, err := st.History(ctx, zeowire.Oid(oid), 1000)
		fmt.Fprintf(&b, "   history %d %v\n", len(h), err)
	}
	next, err := st.NewOids(1)
	fmt.Fprintf(&b, "next oid %v %v\n", next, err)
	return b.String()
}

// crashedCopy writes into dir basic.fs with Python's index saved at its
// end, then three more transactions committed (the index is older than the
// file, as after a kill -9) and a fourth interrupted before its status
// byte. It returns the path and the file's bytes.
func crashedCopy(t *testing.T, dir string, withIndex bool) (string, []byte) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(fixtureDir, "basic.fs"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "Data.fs")
	if err := os.WriteFile(path, src, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := fsformat.OpenAppender(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := a.Begin(fsformat.TxnMeta{Tid: a.LastTid() + 1000, User: []byte("after the index")}); err != nil {
			t.Fatal(err)
		}
		for _, oid := range []fsformat.Oid{1, fsformat.Oid(3 + i), fsformat.Oid(500 + i)} {
			if _, err := a.Store(oid, []byte(fmt.Sprintf("state %d of %s", i, oid))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	last := a.LastTxnPos()
	a.Close()
	f, _ := os.OpenFile(path, os.O_WRONLY, 0)
	f.WriteAt([]byte{fsformat.StatusCheckpoint}, last+16)
	f.Close()
	if withIndex {
		idx, _ := os.ReadFile(filepath.Join(fixtureDir, "basic.fs.index"))
		os.WriteFile(path+".index", idx, 0o644)
	}
	data, _ := os.ReadFile(path)
	return path, data
}

type opened struct {
	view     string
	logs     []string
	scanFrom int64
	files    map[string]string // after close: name → sha256
}

func openAndClose(t *testing.T, path string, ro bool) opened {
	t.Helper()
	var o opened
	dir := filepath.Dir(path)
	st, err := Open(path, Options{ReadOnly: ro, Warn: func(m string) { o.logs = append(o.logs, strings.ReplaceAll(m, dir, "DIR")) }})
	if err != nil {
		t.Fatal(err)
	}
	o.scanFrom = st.scanFrom
	o.view = storeView(t, st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	o.files = map[string]string{}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(filepath.Dir(path), e.Name()))
		o.files[e.Name()] = fmt.Sprintf("%x", sha256.Sum256(b))
	}
	delete(o.files, "Data.fs.lock")
	return o
}

// reference opens a copy of data with no index: the full scan's answers.
func reference(t *testing.T, data []byte, ro bool) opened {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Data.fs")
	os.WriteFile(path, data, 0o644)
	return openAndClose(t, path, ro)
}

func sameAsReference(t *testing.T, got, want opened) {
	t.Helper()
	if got.view != want.view {
		t.Errorf("storage differs from a full scan's:\n%s\nfull scan:\n%s", got.view, want.view)
	}
	for name, sum := range want.files {
		if got.files[name] != sum {
			t.Errorf("after close, %s differs from the full scan's", name)
		}
	}
	if len(got.files) != len(want.files) {
		t.Errorf("files after close %v, full scan %v", got.files, want.files)
	}
}

// TestOpenFromSavedIndexAfterKill: the index saved at a clean close, more
// commits, a kill during the next one: the open trusts the index, scans
// only what follows it, cuts the interrupted commit to Data.fs.tr0, and
// everything (answers, file, .tr0, the index saved at close) is what a full
// scan gives.
func TestOpenFromSavedIndexAfterKill(t *testing.T) {
	path, data := crashedCopy(t, t.TempDir(), true)
	_, pos, err := fsindex.Read(path + ".index")
	if err != nil {
		t.Fatal(err)
	}
	want := reference(t, data, false)
	got := openAndClose(t, path, false)
	if got.scanFrom != int64(pos) {
		t.Errorf("scan started at %d, want the index's position %d", got.scanFrom, pos)
	}
	if want.scanFrom != fsformat.FileHeaderLen {
		t.Errorf("reference scan started at %d", want.scanFrom)
	}
	if strings.Join(got.logs, "\n") != strings.Join(want.logs, "\n") || len(got.logs) != 2 {
		t.Errorf("messages %q, full scan %q", got.logs, want.logs)
	}
	sameAsReference(t, got, want)
	if _, ok := got.files["Data.fs.tr0"]; !ok {
		t.Error("no Data.fs.tr0")
	}
	// The next open uses the index written at close, which covers all.
	again := openAndClose(t, path, false)
	if len(again.logs) != 0 {
		t.Errorf("reopen: messages %q", again.logs)
	}
	if fi, _ := os.Stat(path); again.scanFrom != fi.Size() {
		t.Errorf("reopen scanned from %d, the file ends at %d", again.scanFrom, fi.Size())
	}
}

// TestOpenReadOnlyFromSavedIndex: a read-only open uses the index too and
// writes nothing (no truncation, no .tr0, no index).
func TestOpenReadOnlyFromSavedIndex(t *testing.T) {
	dir := t.TempDir()
	path, data := crashedCopy(t, dir, true)
	idxBefore, _ := os.ReadFile(path + ".index")
	_, pos, _ := fsindex.Read(path + ".index")
	want := reference(t, data, true)
	got := openAndClose(t, path, true)
	if got.scanFrom != int64(pos) || len(got.logs) != 0 {
		t.Errorf("scan from %d (index at %d), messages %q", got.scanFrom, pos, got.logs)
	}
	if got.view != want.view {
		t.Errorf("read-only storage differs from a full scan's:\n%s\nfull scan:\n%s", got.view, want.view)
	}
	after, _ := os.ReadFile(path)
	idxAfter, _ := os.ReadFile(path + ".index")
	if !bytes.Equal(after, data) || !bytes.Equal(idxAfter, idxBefore) || len(got.files) != 2 {
		t.Errorf("a read-only open changed files: %v", got.files)
	}
}

// TestOpenUnusableIndex: indexes that must not be trusted are ignored with
// FileStorage's messages, and the storage is exactly the full scan's.
func TestOpenUnusableIndex(t *testing.T) {
	good, _ := os.ReadFile(filepath.Join(fixtureDir, "basic.fs.index"))
	other, _ := os.ReadFile(filepath.Join(fixtureDir, "basic.packed-now.fs.index"))
	if len(good) == 0 || len(other) == 0 {
		t.Fatal("fixture indexes missing")
	}
	pyIdx, pyPos, err := fsindex.Load(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	reindex := func(x *fsindex.Index, pos uint64) []byte {
		var b bytes.Buffer
		if err := x.Save(&b, pos); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	cases := []struct {
		name    string
		index   func() []byte
		cutData int64 // >0: the data file is cut to this many bytes first
		msg     string
	}{
		{"truncated index file", func() []byte { return good[:len(good)/2] }, 0, "loading index: "},
		{"garbage index file", func() []byte { return bytes.Repeat([]byte("garbage!"), 100) }, 0, "loading index: "},
		{"empty index file", func() []byte { return nil }, 0, "loading index: "},
		{"index of another file", func() []byte { return other }, 0, "Ignoring index for "},
		{"position past the end of the file", func() []byte { return good }, int64(pyPos) - 200, "Ignoring index for "},
		{"position one byte after a boundary", func() []byte { return reindex(pyIdx, pyPos+1) }, 0, "Ignoring index for "},
		{"position one byte before a boundary", func() []byte { return reindex(pyIdx, pyPos-1) }, 0, "Ignoring index for "},
		{"position in the middle of a transaction", func() []byte { return reindex(pyIdx, pyPos-300) }, 0, "Ignoring index for "},
		{"position below 100", func() []byte { return reindex(fsindex.New(), 50) }, 0, "Ignoring index for "},
		{"an entry past the position", func() []byte {
			x, _, _ := fsindex.Load(bytes.NewReader(good))
			x.Set(7, pyPos+60)
			return reindex(x, pyPos)
		}, 0, "Ignoring index for "},
		{"an entry before the first record", func() []byte {
			x, _, _ := fsindex.Load(bytes.NewReader(good))
			x.Set(7, 5)
			return reindex(x, pyPos)
		}, 0, "Ignoring index for "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path, data := crashedCopy(t, dir, false)
			if c.cutData > 0 {
				data = data[:c.cutData]
				os.WriteFile(path, data, 0o644)
			}
			os.WriteFile(path+".index", c.index(), 0o644)
			want := reference(t, data, false)
			got := openAndClose(t, path, false)
			if got.scanFrom != fsformat.FileHeaderLen {
				t.Errorf("scan started at %d: the index was trusted", got.scanFrom)
			}
			// (Python names the absolute path; the test's is absolute.)
			if len(got.logs) == 0 || !strings.HasPrefix(got.logs[0], c.msg) ||
				(c.msg == "Ignoring index for " && got.logs[0] != c.msg+"DIR/Data.fs") {
				t.Errorf("messages %q, want first %q", got.logs, c.msg)
			}
			if len(got.logs) > 0 && strings.Join(got.logs[1:], "\n") != strings.Join(want.logs, "\n") {
				t.Errorf("messages %q, full scan %q", got.logs[1:], want.logs)
			}
			sameAsReference(t, got, want)
		})
	}
}

// TestIndexSavedAfterFullScan: with no usable index, the open saves one at
// once (as FileStorage does), so a kill before the clean close leaves an
// index the next open uses.
func TestIndexSavedAfterFullScan(t *testing.T) {
	path, _ := crashedCopy(t, t.TempDir(), false)
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	end := st.Info().Size
	data, _ := os.ReadFile(path) // as the open left it: the interrupted commit cut off
	_, pos, err := fsindex.Read(path + ".index")
	if err != nil || int64(pos) != end {
		t.Fatalf("index after open: pos %d (end %d), %v", pos, end, err)
	}
	// Simulate the kill: the process's lock goes, Close never runs.
	st.mu.Lock()
	st.closed = true
	st.unmap()
	st.app.File().Close()
	st.lock.Unlock()
	st.mu.Unlock()
	got := openAndClose(t, path, false)
	if got.scanFrom != end || len(got.logs) != 0 {
		t.Errorf("reopen: scan from %d (end %d), messages %q", got.scanFrom, end, got.logs)
	}
	want := reference(t, data, false)
	if got.view != want.view {
		t.Errorf("storage differs from a full scan's:\n%s\nfull scan:\n%s", got.view, want.view)
	}
}

// TestWrongEntryPastTheSanityCheck: FileStorage checks only the last
// transaction's records against a saved index; an index wrong elsewhere
// (two oids' positions swapped) is trusted, but a load of those oids is an
// error naming the record, never the other object's state.
func TestWrongEntryPastTheSanityCheck(t *testing.T) {
	src, _ := os.ReadFile(filepath.Join(fixtureDir, "basic.fs"))
	good, _ := os.ReadFile(filepath.Join(fixtureDir, "basic.fs.index"))
	x, pos, err := fsindex.Load(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	// Two oids whose current records lie before the last transaction.
	var last int64
	for txn, err := range mustOpenFile(t, filepath.Join(fixtureDir, "basic.fs")).Transactions(fsformat.IterOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		last = txn.Pos
	}
	var a, b uint64
	found := 0
	for oid, p := range x.All() {
		if int64(p) < last && oid > 0 {
			if found == 0 {
				a = oid
			} else {
				b = oid
			}
			if found++; found == 2 {
				break
			}
		}
	}
	pa, _ := x.Get(a)
	pb, _ := x.Get(b)
	x.Set(a, pb)
	x.Set(b, pa)
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	os.WriteFile(path, src, 0o644)
	var buf bytes.Buffer
	x.Save(&buf, pos)
	os.WriteFile(path+".index", buf.Bytes(), 0o644)
	st, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.scanFrom != int64(pos) {
		t.Fatalf("the index was not trusted (scan from %d)", st.scanFrom)
	}
	ctx := context.Background()
	for _, oid := range []zeowire.Oid{zeowire.Oid(a), zeowire.Oid(b)} {
		if _, _, err := st.LoadBefore(ctx, oid, zeowire.Tid(1<<63-1)); err == nil || !strings.Contains(err.Error(), "out of date") {
			t.Errorf("loadBefore %s: %v", oid, err)
		}
		if _, err := st.LoadSerial(ctx, oid, 1); err == nil || !strings.Contains(err.Error(), "out of date") {
			t.Errorf("loadSerial %s: %v", oid, err)
		}
		if _, err := st.History(ctx, oid, 10); err == nil || !strings.Contains(err.Error(), "out of date") {
			t.Errorf("history %s: %v", oid, err)
		}
	}
	if _, ok, err := st.LoadBefore(ctx, 0, zeowire.Tid(1<<63-1)); err != nil || !ok {
		t.Errorf("root: %v %v", ok, err)
	}
}

func mustOpenFile(t *testing.T, path string) *fsformat.File {
	t.Helper()
	f, err := fsformat.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// kill drops st as a kill -9 would: the file and the lock go, nothing is
// saved.
func kill(st *Store) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closed = true
	st.unmap()
	st.app.File().Close()
	st.lock.Unlock()
}

// TestServeKillAfterIndexSaved: commits through the server, a clean stop
// (the index is saved), a restart that uses it, more commits, a kill: the
// next open trusts the old index, scans only what follows it and finds
// every committed transaction.
func TestServeKillAfterIndexSaved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	ts := startServer(t, path, Options{}, nil)
	c := dial(t, ts.addr)
	cx := tctx(t)
	serial := map[zeowire.Oid]zeowire.Tid{}
	want := map[zeowire.Oid]string{}
	commit := func(c *zeowire.ClientConn, round int, oids ...zeowire.Oid) zeowire.Tid {
		t.Helper()
		var stores []store
		for _, o := range oids {
			d := fmt.Sprintf("oid %d round %d", o, round)
			stores = append(stores, store{o, serial[o], []byte(d)})
			want[o] = d
		}
		tid, err := commitTxn(cx, c, int64(round), nil, nil, nil, nil, stores...)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range oids {
			serial[o] = tid
		}
		return tid
	}
	for i := range 5 {
		commit(c, i, 0, zeowire.Oid(i+1))
	}
	c.Close()
	ts.stop(t)
	_, saved, err := fsindex.Read(path + ".index")
	if err != nil {
		t.Fatal(err)
	}

	ts = startServer(t, path, Options{}, nil)
	if ts.store.scanFrom != int64(saved) {
		t.Fatalf("restart scanned from %d, the index was saved at %d", ts.store.scanFrom, saved)
	}
	c = dial(t, ts.addr)
	var last zeowire.Tid
	for i := 5; i < 12; i++ {
		last = commit(c, i, 0, zeowire.Oid(i%3+1), zeowire.Oid(i+1))
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ts.srv.Shutdown(ctx)
	<-ts.done
	kill(ts.store)

	var logs []string
	st, err := Open(path, Options{Warn: func(m string) { logs = append(logs, m) }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.scanFrom != int64(saved) || len(logs) != 0 {
		t.Errorf("reopen scanned from %d (index at %d), messages %q", st.scanFrom, saved, logs)
	}
	if st.LastTransaction() != last {
		t.Errorf("last transaction %s, want %s", st.LastTransaction(), last)
	}
	for o, d := range want {
		rev, ok, err := st.LoadBefore(cx, o, zeowire.Tid(1<<63-1))
		if err != nil || !ok || string(rev.Data) != d || rev.Start != serial[o] {
			t.Errorf("oid %s: %q %s %v %v, want %q %s", o, rev.Data, rev.Start, ok, err, d, serial[o])
		}
	}
	if next, _ := st.NewOids(1); next[0] != 13 {
		t.Errorf("next new oid %s, want 13", next[0])
	}
}

// TestPackReopenUsesPackIndex: after a pack the store takes the index pack
// built (no scan of the packed file), and answers as a full scan of it.
func TestPackReopenUsesPackIndex(t *testing.T) {
	src, _ := os.ReadFile(filepath.Join(fixtureDir, "basic.fs"))
	path := filepath.Join(t.TempDir(), "Data.fs")
	os.WriteFile(path, src, 0o644)
	st, err := Open(path, Options{PackGC: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Pack(context.Background(), float64(time.Now().Unix())); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if st.scanFrom != fi.Size() || fi.Size() >= int64(len(src)) {
		t.Errorf("after pack: scan from %d, packed file %d bytes (was %d)", st.scanFrom, fi.Size(), len(src))
	}
	got := storeView(t, st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	packed, _ := os.ReadFile(path)
	if want := reference(t, packed, false); got != want.view {
		t.Errorf("after pack:\n%s\nfull scan of the packed file:\n%s", got, want.view)
	}
}
