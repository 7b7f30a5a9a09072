package pack

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/zodbctl/zodbctl/fsformat"
)

type xref struct {
	db  string // "" for a local reference
	oid fsformat.Oid
}

// xrefPickle is a fixturemodel.Node record whose state holds the given
// references: local ones as (oid, class), cross-database ones as
// ['m', (db, oid, class)].
func xrefPickle(refs ...xref) []byte {
	dst := []byte{0x80, 3, 'c'}
	dst = append(dst, "fixturemodel\nNode\n"...)
	dst = append(dst, 'q', 0, '.', 0x80, 3, '}', 'q', 1, '(')
	for i, r := range refs {
		dst = append(dst, 'X', 2, 0, 0, 0, 'r', byte('0'+i))
		if r.db == "" {
			dst = append(dst, 'C', 8)
			dst = binary.BigEndian.AppendUint64(dst, uint64(r.oid))
			dst = append(dst, 'h', 0, 0x86, 'Q')
			continue
		}
		dst = append(dst, ']', '(', 'X', 1, 0, 0, 0, 'm', 'X', byte(len(r.db)), 0, 0, 0)
		dst = append(dst, r.db...)
		dst = append(dst, 'C', 8)
		dst = binary.BigEndian.AppendUint64(dst, uint64(r.oid))
		dst = append(dst, 'h', 0, 0x87, 'e', 'Q')
	}
	return append(dst, 'u', '.')
}

func writeRecords(t *testing.T, path string, txns ...map[fsformat.Oid][]byte) fsformat.Tid {
	a, err := fsformat.Create(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var last fsformat.Tid
	for _, recs := range txns {
		if _, err := a.Begin(fsformat.TxnMeta{}); err != nil {
			t.Fatal(err)
		}
		for oid := fsformat.Oid(0); oid < 16; oid++ {
			if data, ok := recs[oid]; ok {
				if _, err := a.Store(oid, data); err != nil {
					t.Fatal(err)
				}
			}
		}
		if last, err = a.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	return last
}

// one:0 → two:1 → one:1 → one:2: one:1 and one:2 are reachable only through
// database two, two:1 only from database one. A multi-database pack keeps
// all of them; packing each file alone loses them.
func TestPackMultiChainAcrossDatabases(t *testing.T) {
	build := func(dir string) (one, two string, stop fsformat.Tid) {
		one, two = filepath.Join(dir, "one.fs"), filepath.Join(dir, "two.fs")
		writeRecords(t, one,
			map[fsformat.Oid][]byte{0: xrefPickle(xref{"two", 1}), 1: xrefPickle(xref{"", 2}), 2: xrefPickle(), 3: xrefPickle()},
			map[fsformat.Oid][]byte{3: xrefPickle()}) // one:3 is garbage, its first revision droppable
		stop = writeRecords(t, two,
			map[fsformat.Oid][]byte{0: xrefPickle(), 1: xrefPickle(xref{"one", 1}), 2: xrefPickle()},
			map[fsformat.Oid][]byte{0: xrefPickle()})
		return one, two, stop
	}
	stop := fsformat.MaxTid
	one, two, _ := build(t.TempDir())
	rs, err := PackMulti(context.Background(), []Database{{Name: "one", Path: one}, {Name: "two", Path: two}}, Options{Stop: stop, GC: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]fsformat.Oid{"one": {3}, "two": {2}}
	for _, r := range rs {
		if len(r.Garbage) != len(want[r.Name]) || r.Garbage[0] != want[r.Name][0] {
			t.Errorf("%s: garbage %v, want %v", r.Name, r.Garbage, want[r.Name])
		}
		if len(r.UnknownCross) != 0 || len(r.Dangling) != 0 {
			t.Errorf("%s: unknown %v dangling %v", r.Name, r.UnknownCross, r.Dangling)
		}
		for _, oid := range map[string][]fsformat.Oid{"one": {0, 1, 2}, "two": {0, 1}}[r.Name] {
			if _, ok := r.Index.Get(uint64(oid)); !ok {
				t.Errorf("%s: oid %d was dropped", r.Name, oid)
			}
		}
		checkUsable(t, r.Path)
	}

	// Alone, each file loses what the other one keeps alive, and warns.
	one, two, _ = build(t.TempDir())
	r1, err := Pack(context.Background(), one, "", Options{Stop: stop, GC: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(r1.Garbage) != 3 || len(r1.UnknownCross) != 1 || r1.UnknownCross[0].Name != "two" {
		t.Errorf("one alone: garbage %v, unknown %v", r1.Garbage, r1.UnknownCross)
	}
	r2, err := Pack(context.Background(), two, "", Options{Stop: stop, GC: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(r2.Garbage) != 2 {
		t.Errorf("two alone: garbage %v", r2.Garbage)
	}
}
