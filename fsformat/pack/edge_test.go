package pack

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/zodbctl/zodbctl/fsformat"
)

// Damaged files: a clean error with the original untouched and no
// FILE.pack left, or (incomplete tails) a pack that verifies.
func TestPackDamaged(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(fixtures, "damaged", "*.fs"))
	if len(files) == 0 {
		t.Fatal("no damaged fixtures")
	}
	for _, src := range files {
		t.Run(filepath.Base(src), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "Data.fs")
			copyFile(t, src, path)
			before, _ := os.ReadFile(path)
			for _, gc := range []bool{true, false} {
				res, err := Pack(context.Background(), path, "", Options{Stop: crashStop, GC: gc})
				if err != nil {
					if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
						t.Fatalf("failed pack (%v) changed the file", err)
					}
					for _, ext := range []string{".pack", ".old", ".index"} {
						if _, serr := os.Stat(path + ext); serr == nil {
							t.Errorf("failed pack (%v) left %s", err, ext)
						}
					}
					continue
				}
				if res.Packed {
					if err := fsformat.Verify(path, fsformat.VerifyOptions{}); err != nil {
						t.Errorf("packed file does not verify: %v", err)
					}
					checkUsable(t, path)
					copyFile(t, src, path) // for the no-GC round
				}
			}
		})
	}
}

func TestPackNoOps(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.fs")
	os.WriteFile(empty, fsformat.MagicFS30[:], 0o644)
	res, err := Pack(context.Background(), empty, "", Options{Stop: crashStop, GC: true})
	if err != nil || res.Packed || res.NoOp != "empty storage" {
		t.Errorf("empty: %+v %v", res, err)
	}
	// Pack time before the first transaction: nothing to do.
	path := filepath.Join(dir, "Data.fs")
	copyFile(t, filepath.Join(fixtures, "basic.fs"), path)
	res, err = Pack(context.Background(), path, "", Options{Stop: 1, GC: true})
	if err != nil || res.Packed || res.NoOp != "nothing to pack" {
		t.Errorf("before the first transaction: %+v %v", res, err)
	}
	for _, ext := range []string{".pack", ".old"} {
		if _, err := os.Stat(path + ext); err == nil {
			t.Errorf("no-op left %s", ext)
		}
	}
	if _, err := Pack(context.Background(), path, "", Options{GC: true}); !errors.Is(err, ErrInvalidPackTime) {
		t.Errorf("stop 0: %v", err)
	}
	// Packing a packed file again at the same time is redundant.
	copyFile(t, filepath.Join(fixtures, "basic.packed-now.fs"), path)
	res, err = Pack(context.Background(), path, "", Options{Stop: crashStop, GC: true})
	if err != nil || res.Packed || res.NoOp == "" {
		t.Errorf("repack: %+v %v", res, err)
	}
}

// A no-GC pack where an undo after the pack time points at a revision that
// was no longer current at the pack time: ZODB fails (AssertionError in
// copyRest); zodbctl keeps that revision and the undo stays a backpointer.
func TestPackNoGCUndoBeforePackTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	a, err := fsformat.Create(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	v1 := graphPickle(nil, []byte("first"), 1, [2]bool{})
	a.Begin(fsformat.TxnMeta{})
	a.Store(0, graphPickle(nil, []byte("root"), 0, [2]bool{true, false}))
	v1pos, _ := a.Store(1, v1)
	a.Commit()
	a.Begin(fsformat.TxnMeta{}) // something for the pack to drop
	a.Store(0, graphPickle(nil, []byte("root 2"), 0, [2]bool{true, false}))
	a.Commit()
	a.Begin(fsformat.TxnMeta{})
	a.Store(1, graphPickle(nil, []byte("second"), 1, [2]bool{}))
	stop, _ := a.Commit()
	a.Begin(fsformat.TxnMeta{Description: []byte("undo")})
	if _, err := a.StoreBackpointer(1, v1pos); err != nil {
		t.Fatal(err)
	}
	a.Commit()
	a.Sync()
	a.Close()
	before, _ := os.ReadFile(path)

	for _, gc := range []bool{false, true} {
		os.WriteFile(path, before, 0o644)
		res, err := Pack(context.Background(), path, "", Options{Stop: stop, GC: gc})
		if err != nil {
			t.Fatalf("gc=%v: %v", gc, err)
		}
		if !res.Packed {
			t.Fatalf("gc=%v: not packed: %s", gc, res.NoOp)
		}
		if wantKept := map[bool]int{false: 1, true: 0}[gc]; res.UndoKept != wantKept {
			t.Errorf("gc=%v: UndoKept %d, want %d", gc, res.UndoKept, wantKept)
		}
		checkUsable(t, path)
		f, _ := fsformat.Open(path)
		pos, _ := res.Index.Get(1)
		data, h, err := f.LoadRecord(int64(pos))
		if err != nil || !bytes.Equal(data, v1) {
			t.Errorf("gc=%v: oid 1 loads %q (%v), want the undone-to revision", gc, data, err)
		}
		if h.DataLen != 0 {
			t.Errorf("gc=%v: the undo record was inlined (plen %d); it should stay a backpointer", gc, h.DataLen)
		}
		f.Close()
	}
}

// Records larger than the read window are copied in pieces, in both phases.
func TestPackHugeRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	a, err := fsformat.Create(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), (windowSize+3<<20)/16)
	rec := func(oid int, payload []byte, kids [2]bool) []byte { return graphPickle(nil, payload, oid, kids) }
	a.Begin(fsformat.TxnMeta{})
	a.Store(0, rec(0, []byte("root"), [2]bool{true, false}))
	a.Store(1, rec(1, big[:len(big)-1], [2]bool{}))
	a.Commit()
	a.Begin(fsformat.TxnMeta{})
	a.Store(0, rec(0, []byte("root 2"), [2]bool{true, false}))
	stop, _ := a.Commit()
	a.Begin(fsformat.TxnMeta{})
	want := rec(1, big, [2]bool{})
	a.Store(1, want)
	a.Commit()
	a.Sync()
	a.Close()
	res, err := Pack(context.Background(), path, "", Options{Stop: stop, GC: true})
	if err != nil || !res.Packed {
		t.Fatalf("%+v %v", res, err)
	}
	checkUsable(t, path)
	f, _ := fsformat.Open(path)
	defer f.Close()
	pos, _ := res.Index.Get(1)
	data, _, err := f.LoadRecord(int64(pos))
	if err != nil || !bytes.Equal(data, want) {
		t.Errorf("huge record after pack: %d bytes (%v), want %d", len(data), err, len(want))
	}
}

// A cancelled pack stops with the context's error and leaves nothing.
func TestPackCancelled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	copyFile(t, filepath.Join(fixtures, "basic.fs"), path)
	before, _ := os.ReadFile(path)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Pack(ctx, path, "", Options{Stop: crashStop, GC: true, Hook: func(p string) {
		if p == "copied" {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Error("cancelled pack changed the file")
	}
	if _, err := os.Stat(path + ".pack"); err == nil {
		t.Error("cancelled pack left Data.fs.pack")
	}
}
