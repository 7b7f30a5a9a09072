package fsformat

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goodFixtures are the undamaged fixtures; unpacked ones have FileStorage's
// own prev pointers, so index-driven Store reproduces them.
var goodFixtures = []struct {
	path     string
	unpacked bool
}{
	{"basic.fs", true}, {"fresh.fs", true}, {"empty.fs", true}, {"dangling.fs", true},
	{"blobs/Data.fs", true}, {"multidb/Data1.fs", true}, {"multidb/Data2.fs", true},
	{"basic.packed-attid.fs", false}, {"basic.packed-mid.fs", false}, {"basic.packed-now.fs", false},
	{"basic.packed-now-nogc.fs", false}, {"dangling.packed-now-nogc.fs", false},
	{"blobs-packed/Data.fs", false}, {"multidb/Data1.packed-now.fs", false},
	{"multidb/Data2.packed-mid.fs", false}, {"multidb/gc/Data1.fs", false}, {"multidb/gc/Data2.fs", false},
}

// recreate copies src transaction by transaction through an Appender.
func recreate(t *testing.T, src, dst string, useIndex bool) {
	t.Helper()
	f, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := Create(dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	for txn, err := range f.Transactions(IterOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Begin(TxnMeta{Tid: txn.Tid, Status: txn.Status, User: txn.User,
			Description: txn.Description, Extension: txn.Extension}); err != nil {
			t.Fatal(err)
		}
		for rec, err := range txn.Records() {
			if err != nil {
				t.Fatal(err)
			}
			var pos int64
			switch {
			case !useIndex:
				pos, err = a.StoreRaw(rec.Oid, rec.Prev, rec.Data, rec.Back)
			case rec.DataLen > 0:
				pos, err = a.Store(rec.Oid, rec.Data)
			case rec.Back == 0:
				pos, err = a.Delete(rec.Oid)
			default:
				pos, err = a.StoreBackpointer(rec.Oid, rec.Back)
			}
			if err != nil {
				t.Fatal(err)
			}
			if pos != rec.Pos {
				t.Fatalf("record of %s written at %d, source at %d", rec.Oid, pos, rec.Pos)
			}
		}
		tid, err := a.Commit()
		if err != nil || tid != txn.Tid {
			t.Fatalf("commit: %s, %v", tid, err)
		}
		if a.Pos() != txn.Next() {
			t.Fatalf("after commit at %d, source next transaction at %d", a.Pos(), txn.Next())
		}
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAppenderRecreatesFixtures(t *testing.T) {
	for _, fx := range goodFixtures {
		t.Run(fx.path, func(t *testing.T) {
			src := filepath.Join(fixtures, fx.path)
			want, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			modes := []bool{false}
			if fx.unpacked {
				modes = append(modes, true)
			}
			for _, useIndex := range modes {
				dst := filepath.Join(t.TempDir(), "Data.fs")
				recreate(t, src, dst, useIndex)
				got, _ := os.ReadFile(dst)
				if !bytes.Equal(got, want) {
					t.Errorf("index prev=%v: re-created file differs (%d vs %d bytes)", useIndex, len(got), len(want))
				}
				if err := Verify(dst, VerifyOptions{}); err != nil {
					t.Errorf("verify: %v", err)
				}
			}
		})
	}
}

func TestAppenderNewTransactions(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "Data.fs")
	idx := MapIndex{}
	a, err := Create(dst, idx)
	if err != nil {
		t.Fatal(err)
	}
	a.Durable = true
	clock := time.Date(2024, 2, 28, 23, 59, 59, 999999999, time.UTC)
	a.Now = func() time.Time { return clock } // a frozen clock: tids must still increase
	root := []byte("\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01.")
	var tids []Tid
	var firstPos int64
	for i := 0; i < 5; i++ {
		tid, err := a.Begin(TxnMeta{User: []byte("alice"), Description: []byte("t")})
		if err != nil {
			t.Fatal(err)
		}
		pos, err := a.Store(0, root)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			firstPos = pos
		}
		if i == 3 {
			if _, err := a.StoreBackpointer(1, 0); err != nil {
				t.Fatal(err)
			}
		}
		if i == 4 {
			if _, err := a.StoreBackpointer(2, firstPos); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.Commit(); err != nil {
			t.Fatal(err)
		}
		tids = append(tids, tid)
	}
	for i := 1; i < len(tids); i++ {
		if tids[i] <= tids[i-1] {
			t.Fatalf("tid %d (%s) not after %s", i, tids[i], tids[i-1])
		}
	}
	if got := tids[1].Time(); got.Month != 2 || got.Day != 29 || got.Hour != 0 {
		t.Errorf("laterThan across midnight of a leap day: %v", got)
	}
	// an explicit tid that goes back is refused
	if _, err := a.Begin(TxnMeta{Tid: tids[2]}); err == nil {
		t.Error("explicit tid reduction accepted")
	}
	a.Close()
	if err := Verify(dst, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	// prev pointers chain the root's revisions
	f, err := Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pos := idx[0]
	n := 0
	for pos != 0 {
		h, err := f.ReadDataHeaderAt(pos)
		if err != nil {
			t.Fatal(err)
		}
		n++
		pos = h.Prev
	}
	if n != 5 {
		t.Errorf("root has %d revisions along prev, want 5", n)
	}
	if _, _, err := f.LoadRecord(idx[1]); !errors.Is(err, ErrNoData) {
		t.Errorf("deleted object: %v", err)
	}
}

// TestAppenderCrash leaves a transaction between vote and finish (header
// with status 'c') and checks readers ignore it and OpenAppender cuts it off
// into Data.fs.tr0 as FileStorage does.
func TestAppenderCrash(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "Data.fs")
	a, err := Create(dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Begin(TxnMeta{}); err != nil {
		t.Fatal(err)
	}
	a.Store(0, []byte("\x80\x03cx\ny\nq\x00.N."))
	a.Commit()
	good := a.Pos()
	a.Begin(TxnMeta{})
	a.Store(0, bytes.Repeat([]byte("z"), 3000))
	if err := a.Prepare(); err != nil { // voted: all on disk, status 'c'
		t.Fatal(err)
	}
	a.f.Close() // crash before tpc_finish

	var ve *VerifyError
	if err := Verify(dst, VerifyOptions{}); !errors.As(err, &ve) || !strings.Contains(ve.Msg, "truncated possibly because of damaged records") && !strings.Contains(ve.Msg, "checkpoint") {
		t.Fatalf("verify of crashed file: %v", err)
	}
	var warnings []string
	b, err := OpenAppender(dst, nil, func(s string) { warnings = append(warnings, s) })
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Pos() != good || b.LastTxnPos() != FileHeaderLen {
		t.Fatalf("reopened at %d (last transaction at %d), want %d (4)", b.Pos(), b.LastTxnPos(), good)
	}
	if st, _ := os.Stat(dst); st.Size() != good {
		t.Fatalf("file not truncated: %d bytes", st.Size())
	}
	if st, err := os.Stat(dst + ".tr0"); err != nil || st.Size() == 0 {
		t.Fatalf("no .tr0 copy: %v", err)
	}
	if len(warnings) != 2 {
		t.Errorf("warnings: %q", warnings)
	}
	if err := Verify(dst, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Begin(TxnMeta{}); err != nil {
		t.Fatal(err)
	}
	b.Store(1, []byte("\x80\x03cx\ny\nq\x00.N."))
	if _, err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := Verify(dst, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestOpenAppenderDamaged(t *testing.T) {
	// FileStorage refuses to open these (read_index raises).
	for name, frag := range map[string]string{
		"basic-badtloc.fs":    "data record exceeds transaction record",
		"basic-badtrailer.fs": "redundant transaction length check failed",
	} {
		src := filepath.Join(fixtures, "damaged", name)
		data, _ := os.ReadFile(src)
		dst := filepath.Join(t.TempDir(), name)
		os.WriteFile(dst, data, 0o644)
		_, err := OpenAppender(dst, nil, nil)
		var fe *FormatError
		if !errors.As(err, &fe) || !strings.Contains(fe.Msg, frag) {
			t.Errorf("%s: %v, want %q", name, err, frag)
		}
	}
}
