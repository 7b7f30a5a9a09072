package pack

import (
	"iter"

	"github.com/zodbctl/zodbctl/fsformat"
)

// posIndex maps oids to positions like fsindex.Index, but keeps the densely
// allocated oids (ZODB hands them out from 0 up) in a slice: 8 bytes per oid,
// no hashing, no search — the pack touches it once per record. Oids far
// beyond the slice go to a map, so a few huge oids cannot inflate it (the
// slice holds at most 4 entries per stored oid plus 64 Ki), as in
// analysis.OidIndex, which has no Delete.
type posIndex struct {
	dense  []uint64 // position+1 by oid; 0: absent
	sparse map[fsformat.Oid]int64
	n      int
}

const denseSlack = 1 << 16

func (x *posIndex) get(oid fsformat.Oid) (int64, bool) {
	if uint64(oid) < uint64(len(x.dense)) {
		if p := x.dense[oid]; p != 0 {
			return int64(p - 1), true
		}
		if x.sparse == nil {
			return 0, false
		}
	}
	p, ok := x.sparse[oid]
	return p, ok
}

func (x *posIndex) has(oid fsformat.Oid) bool {
	_, ok := x.get(oid)
	return ok
}

func (x *posIndex) set(oid fsformat.Oid, pos int64) {
	if uint64(oid) >= uint64(len(x.dense)) && uint64(oid) < 4*uint64(x.n+1)+denseSlack {
		n := int(oid) + 1
		if n <= cap(x.dense) {
			x.dense = x.dense[:n]
		} else {
			d := make([]uint64, n, max(n, cap(x.dense)+cap(x.dense)/2))
			copy(d, x.dense)
			x.dense = d
		}
	}
	if uint64(oid) < uint64(len(x.dense)) {
		if x.dense[oid] == 0 {
			if _, old := x.sparse[oid]; old {
				delete(x.sparse, oid)
			} else {
				x.n++
			}
		}
		x.dense[oid] = uint64(pos) + 1
		return
	}
	if x.sparse == nil {
		x.sparse = make(map[fsformat.Oid]int64)
	}
	if _, ok := x.sparse[oid]; !ok {
		x.n++
	}
	x.sparse[oid] = pos
}

func (x *posIndex) del(oid fsformat.Oid) {
	if uint64(oid) < uint64(len(x.dense)) && x.dense[oid] != 0 {
		x.dense[oid] = 0
		x.n--
		return
	}
	if _, ok := x.sparse[oid]; ok {
		delete(x.sparse, oid)
		x.n--
	}
}

func (x *posIndex) len() int { return x.n }

// all yields the oids, dense ones first in oid order, then the others in
// no particular order.
func (x *posIndex) all() iter.Seq2[fsformat.Oid, int64] {
	return func(yield func(fsformat.Oid, int64) bool) {
		for oid, p := range x.dense {
			if p != 0 && !yield(fsformat.Oid(oid), int64(p-1)) {
				return
			}
		}
		for oid, p := range x.sparse {
			if !yield(oid, p) {
				return
			}
		}
	}
}

// oidSet is a set of oids: a bitmap over the dense range, a map beyond.
type oidSet struct {
	bits   []uint64
	sparse map[fsformat.Oid]struct{}
}

func (s *oidSet) has(oid fsformat.Oid) bool {
	if w := oid / 64; uint64(w) < uint64(len(s.bits)) {
		if s.bits[w]&(1<<(oid%64)) != 0 {
			return true
		}
	}
	if s.sparse == nil {
		return false
	}
	_, ok := s.sparse[oid]
	return ok
}

// add adds oid; limit is the size of the dense oid range worth a bitmap.
func (s *oidSet) add(oid fsformat.Oid, limit int) {
	if w := oid / 64; uint64(w) < uint64(len(s.bits)) || uint64(oid) < uint64(limit) {
		for uint64(w) >= uint64(len(s.bits)) {
			s.bits = append(s.bits, 0)
		}
		s.bits[w] |= 1 << (oid % 64)
		return
	}
	if s.sparse == nil {
		s.sparse = make(map[fsformat.Oid]struct{})
	}
	s.sparse[oid] = struct{}{}
}
