package oidmap

import (
	"testing"

	"github.com/zodbctl/zodbctl/fsformat"
)

func TestPositions(t *testing.T) {
	var x Positions
	want := map[uint64]int64{0: 4, 1: 52, 5: 100, 1 << 40: 7, 70000: 9, 3: 0}
	for _, oid := range []uint64{0, 1, 5, 1 << 40, 70000, 3, 1} {
		x.Set(fsformat.Oid(oid), want[oid])
	}
	if x.Len() != len(want) {
		t.Errorf("Len = %d, want %d", x.Len(), len(want))
	}
	for oid, pos := range want {
		if p, ok := x.Get(fsformat.Oid(oid)); !ok || p != pos {
			t.Errorf("Get(%d) = %d, %v", oid, p, ok)
		}
	}
	if _, ok := x.Get(2); ok {
		t.Error("Get(2) found")
	}
	if len(x.dense) > 4*len(want)+DenseSlack {
		t.Errorf("dense slice of %d entries for %d oids", len(x.dense), len(want))
	}
	n := 0
	for oid, pos := range x.All() {
		n++
		if want[uint64(oid)] != pos {
			t.Errorf("All: %d → %d", oid, pos)
		}
	}
	if n != len(want) {
		t.Errorf("All yielded %d", n)
	}
}

func TestPositionsAbsentIsZero(t *testing.T) {
	var x Positions
	x.Set(5, 100)
	for _, oid := range []fsformat.Oid{0, 4, 6, 1 << 50} {
		if p, ok := x.Get(oid); p != 0 || ok {
			t.Errorf("Get(%d) = %d, %v; want 0, false", oid, p, ok)
		}
	}
}

func TestPositionsDelete(t *testing.T) {
	var x Positions
	for _, oid := range []fsformat.Oid{0, 3, 1 << 40, 70000} {
		x.Set(oid, int64(oid)+4)
	}
	for _, oid := range []fsformat.Oid{3, 1 << 40, 9} { // 9 is absent
		x.Delete(oid)
	}
	if x.Len() != 2 || !x.Has(0) || !x.Has(70000) || x.Has(3) || x.Has(1<<40) {
		t.Errorf("after deletes: len %d, has 0 %v, 70000 %v, 3 %v, 1<<40 %v", x.Len(), x.Has(0), x.Has(70000), x.Has(3), x.Has(1<<40))
	}
	x.Set(3, 8) // back again
	if p, ok := x.Get(3); !ok || p != 8 || x.Len() != 3 {
		t.Errorf("re-set: %d %v, len %d", p, ok, x.Len())
	}
}

func TestMap(t *testing.T) {
	var m Map[int32]
	want := map[fsformat.Oid]int32{0: 1, 3: 0, 100000: 7, 1 << 45: 9, 64: 2}
	for oid, v := range want {
		m.Set(oid, v)
	}
	m.Set(3, 0)
	if m.Len() != len(want) {
		t.Errorf("len %d", m.Len())
	}
	for oid, v := range want {
		if got, ok := m.Get(oid); !ok || got != v {
			t.Errorf("get(%d) = %d, %v", oid, got, ok)
		}
	}
	for _, oid := range []fsformat.Oid{1, 63, 65, 99999, 1 << 44} {
		if _, ok := m.Get(oid); ok {
			t.Errorf("get(%d) found", oid)
		}
	}
}

func TestSet(t *testing.T) {
	var s Set
	want := map[fsformat.Oid]bool{}
	ops := []struct {
		oid   fsformat.Oid
		add   bool
		dense uint64
	}{
		{5, true, 100}, {5, true, 100}, {1 << 40, true, 100}, {7, false, 100},
		{200, true, 100}, {200, true, 1000}, {1 << 40, false, 100}, {5, false, 100},
		{63, true, 64}, {64, true, 64}, {64, false, 64}, {300, false, 1000},
	}
	for i, op := range ops {
		if op.add {
			s.Add(op.oid, op.dense)
			want[op.oid] = true
		} else {
			s.Remove(op.oid)
			delete(want, op.oid)
		}
		if s.Len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", i, s.Len(), len(want))
		}
		for _, probe := range []fsformat.Oid{5, 7, 63, 64, 200, 300, 1 << 40} {
			if s.Has(probe) != want[probe] {
				t.Fatalf("step %d: has(%d) = %v", i, probe, s.Has(probe))
			}
		}
	}
}
