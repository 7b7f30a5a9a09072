package fsformat

import (
	"bytes"
	"math/rand"
	"path/filepath"
	"testing"
)

// TestReadWindows iterates a file several read windows long, with records
// that straddle windows, that are large (64-128 KiB) and that exceed a
// window, and checks every record against what was stored: the window
// reader must hand out exactly the file's bytes, also when walking by
// position with gaps and back to the start.
func TestReadWindows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	a, err := Create(path, MapIndex{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(7))
	type stored struct {
		oid  Oid
		data []byte
	}
	var want []stored
	for a.Pos() < 12*windowSize {
		if _, err := a.Begin(TxnMeta{User: []byte("u")}); err != nil {
			t.Fatal(err)
		}
		for range 1 + rng.Intn(20) {
			n := 1 + rng.Intn(3000)
			switch rng.Intn(4000) {
			case 0:
				n = 64<<10 + rng.Intn(64<<10)
			case 1:
				n = windowSize + rng.Intn(windowSize/2)
			}
			d := make([]byte, n)
			rng.Read(d)
			oid := Oid(rng.Intn(500))
			if _, err := a.Store(oid, d); err != nil {
				t.Fatal(err)
			}
			want = append(want, stored{oid, d})
		}
		if _, err := a.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	i := 0
	var positions []int64
	for txn, err := range f.Transactions(IterOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		if string(txn.User) != "u" {
			t.Fatalf("transaction at %d: user %q", txn.Pos, txn.User)
		}
		for rec, err := range txn.Records() {
			if err != nil {
				t.Fatal(err)
			}
			if i >= len(want) {
				t.Fatalf("more records than stored")
			}
			if rec.Oid != want[i].oid || !bytes.Equal(rec.Data, want[i].data) {
				t.Fatalf("record %d at %d: oid %s, %d bytes; want oid %s, %d bytes", i, rec.Pos, rec.Oid, len(rec.Data), want[i].oid, len(want[i].data))
			}
			positions = append(positions, rec.Pos)
			i++
		}
	}
	if i != len(want) {
		t.Fatalf("%d records, stored %d", i, len(want))
	}

	// Every other record by position (gaps between reads), then all again
	// from the start: the window must follow jumps forward and back.
	for pass := range 2 {
		for k := pass; k < len(positions); k += 2 - pass {
			pos := positions[k]
			h, err := f.ReadDataHeaderSeq(pos)
			if err != nil {
				t.Fatal(err)
			}
			d, err := f.InlineDataSeq(pos, &h)
			if err != nil {
				t.Fatal(err)
			}
			if h.Oid != want[k].oid || !bytes.Equal(d, want[k].data) {
				t.Fatalf("pass %d: record %d at %d differs", pass, k, pos)
			}
		}
	}

	// ScanIndex over the same file agrees with the last record of each oid.
	idx := MapIndex{}
	res, err := ScanIndex(f.osf, path, idx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.End != f.Size() {
		t.Fatalf("scan ends at %d, file size %d", res.End, f.Size())
	}
	last := map[Oid]int64{}
	for k, s := range want {
		last[s.oid] = positions[k]
	}
	if len(last) != len(idx) {
		t.Fatalf("index has %d oids, want %d", len(idx), len(last))
	}
	for oid, pos := range last {
		if idx[oid] != pos {
			t.Fatalf("oid %s at %d, want %d", oid, idx[oid], pos)
		}
	}
}
