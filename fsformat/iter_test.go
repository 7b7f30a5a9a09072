package fsformat

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

const fixtures = "../testdata/fs"

// TestForwardMatchesFsdump checks the transaction count and first data
// offsets of every fixture against the recorded fsdump output.
func TestForwardMatchesFsdump(t *testing.T) {
	outs, _ := filepath.Glob(filepath.Join(fixtures, "*.fsdump.txt"))
	if len(outs) == 0 {
		t.Fatal("no fixtures")
	}
	for _, out := range outs {
		fs := out[:len(out)-len(".fsdump.txt")]
		want, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Open(fs)
		if err != nil {
			t.Errorf("%s: %v", fs, err)
			continue
		}
		n, recs := 0, 0
		for txn, err := range f.Transactions(IterOptions{}) {
			if err != nil {
				t.Errorf("%s: %v", fs, err)
				break
			}
			n++
			for _, err := range txn.Records() {
				if err != nil {
					t.Errorf("%s: %v", fs, err)
					break
				}
				recs++
			}
		}
		f.Close()
		if w := bytes.Count(want, []byte("\nTrans #")) + bytes.Count(want[:min(len(want), 6)], []byte("Trans ")); w != n {
			t.Errorf("%s: %d transactions, fsdump shows %d", fs, n, w)
		}
		if w := bytes.Count(want, []byte("  data #")); w != recs {
			t.Errorf("%s: %d records, fsdump shows %d", fs, recs, w)
		}
	}
}

func TestBackwardMatchesForward(t *testing.T) {
	f, err := Open(filepath.Join(fixtures, "basic.fs"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var fwd []int64
	for txn, err := range f.Transactions(IterOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		fwd = append(fwd, txn.Pos)
	}
	var bwd []int64
	for txn, err := range f.TransactionsBackward(0) {
		if err != nil {
			t.Fatal(err)
		}
		bwd = append(bwd, txn.Pos)
	}
	if len(fwd) != len(bwd) || len(fwd) < 10 {
		t.Fatalf("forward %d, backward %d transactions", len(fwd), len(bwd))
	}
	for i := range fwd {
		if fwd[i] != bwd[len(bwd)-1-i] {
			t.Fatalf("transaction %d: forward at %d, backward at %d", i, fwd[i], bwd[len(bwd)-1-i])
		}
	}
}

func TestOpenBadInput(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]byte{
		"empty.fs": {},
		"short.fs": []byte("FS"),
		"magic.fs": []byte("XX30"),
	}
	for name, content := range cases {
		p := filepath.Join(dir, name)
		os.WriteFile(p, content, 0o644)
		_, err := Open(p)
		var fe *FormatError
		if !errors.As(err, &fe) || fe.File != p {
			t.Errorf("%s: got %v, want a FormatError naming the file", name, err)
		}
	}
	if _, err := Open(dir); err == nil {
		t.Error("directory opened")
	}
	if _, err := Open(filepath.Join(dir, "missing.fs")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestLoadBackChain(t *testing.T) {
	f, err := Open(filepath.Join(fixtures, "basic.fs"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	backs := 0
	for txn, err := range f.Transactions(IterOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		for rec, err := range txn.Records() {
			if err != nil {
				t.Fatal(err)
			}
			if rec.DataLen == 0 && rec.Back != 0 {
				backs++
				data, _, pos, err := f.LoadBack(rec.Oid, rec.Back)
				if err != nil && !errors.Is(err, ErrNoData) {
					t.Fatalf("record at %d: %v", rec.Pos, err)
				}
				if err == nil && (len(data) == 0 || pos >= rec.Pos) {
					t.Fatalf("record at %d: resolved to %d bytes at %d", rec.Pos, len(data), pos)
				}
			}
		}
	}
	if backs == 0 {
		t.Fatal("basic.fs has no backpointer records?")
	}
}
