package fsindex

import (
	"reflect"
	"testing"
)

func TestCompare(t *testing.T) {
	a := fromMap(map[uint64]uint64{1: 10, 2: 20, 3: 30, 0x500: 50, 1 << 40: 7})
	b := fromMap(map[uint64]uint64{1: 10, 2: 21, 4: 40, 0x500: 50, 1 << 41: 8})
	var got []Difference
	Compare(a, b, func(d Difference) bool { got = append(got, d); return true })
	want := []Difference{
		{Oid: 2, Pos: 20, Want: 21, Has: true, Ref: true},
		{Oid: 3, Pos: 30, Has: true},
		{Oid: 4, Want: 40, Ref: true},
		{Oid: 1 << 40, Pos: 7, Has: true},
		{Oid: 1 << 41, Want: 8, Ref: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	n := 0
	Compare(a, b, func(Difference) bool { n++; return false })
	if n != 1 {
		t.Errorf("stop: %d calls", n)
	}
	Compare(a, a, func(d Difference) bool { t.Errorf("self: %+v", d); return true })
	Compare(New(), New(), func(d Difference) bool { t.Errorf("empty: %+v", d); return true })
}
