// Package oidmap holds the oid-keyed containers the whole-file tools use
// per record (pack's GC, fsrefs, analyze, fsstats): a position index, a
// generic map and a set. ZODB hands oids out from 0 up, so each keeps the
// dense range in a slice or bitmap (no hashing, few cache misses) and only
// the oids far beyond it in a Go map, so that a few huge oids cannot
// inflate the slice: it never grows past 4 entries per stored oid plus
// DenseSlack.
package oidmap

import (
	"iter"

	"github.com/zodbctl/zodbctl/fsformat"
)

// DenseSlack is how far beyond 4 entries per stored oid the dense range may
// reach.
const DenseSlack = 1 << 16

// denseLimit is the oid below which a container holding n oids stores
// densely.
func denseLimit(n int) uint64 { return 4*uint64(n+1) + DenseSlack }

// grow extends s to length n, doubling its capacity when it must move.
func grow[T any](s []T, n int) []T {
	if n <= cap(s) {
		return s[:n]
	}
	d := make([]T, n, max(n, 2*cap(s)))
	copy(d, s)
	return d
}

// Positions maps oids to file positions (a fsformat.Index). The slice holds
// position+1, so 0 means absent without a separate bitmap.
type Positions struct {
	dense  []int64
	sparse map[fsformat.Oid]int64
	n      int
}

// Get implements fsformat.Index: the position, or 0 and false.
func (x *Positions) Get(oid fsformat.Oid) (int64, bool) {
	if uint64(oid) < uint64(len(x.dense)) {
		if p := x.dense[oid]; p != 0 {
			return p - 1, true
		}
		if len(x.sparse) == 0 {
			return 0, false
		}
	}
	// An oid stored before the slice grew over it stays in the map.
	p, ok := x.sparse[oid]
	return p, ok
}

// Has reports whether oid is present.
func (x *Positions) Has(oid fsformat.Oid) bool {
	_, ok := x.Get(oid)
	return ok
}

// Set implements fsformat.Index.
func (x *Positions) Set(oid fsformat.Oid, pos int64) {
	if uint64(oid) >= uint64(len(x.dense)) && uint64(oid) < denseLimit(x.n) {
		x.dense = grow(x.dense, int(oid)+1)
	}
	if uint64(oid) < uint64(len(x.dense)) {
		if x.dense[oid] == 0 {
			if _, old := x.sparse[oid]; old {
				delete(x.sparse, oid)
			} else {
				x.n++
			}
		}
		x.dense[oid] = pos + 1
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

// Delete removes oid.
func (x *Positions) Delete(oid fsformat.Oid) {
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

// Len is the number of oids.
func (x *Positions) Len() int { return x.n }

// DenseRange is the oid below which a set of the oids x holds is worth a
// bitmap (Set.Add's dense argument).
func (x *Positions) DenseRange() uint64 { return max(uint64(len(x.dense)), denseLimit(x.n)) }

// All yields every oid and position: dense ones in oid order first, then
// the others in no particular order.
func (x *Positions) All() iter.Seq2[fsformat.Oid, int64] {
	return func(yield func(fsformat.Oid, int64) bool) {
		for oid, p := range x.dense {
			if p != 0 && !yield(fsformat.Oid(oid), p-1) {
				return
			}
		}
		for oid, pos := range x.sparse {
			if !yield(oid, pos) {
				return
			}
		}
	}
}

// Map maps oids to V: a slice plus a presence bitmap for the dense range, a
// Go map beyond it.
type Map[V any] struct {
	dense  []V
	has    []uint64
	sparse map[fsformat.Oid]V
	n      int
}

// Get returns the value of oid.
func (m *Map[V]) Get(oid fsformat.Oid) (V, bool) {
	if uint64(oid) < uint64(len(m.dense)) && m.has[oid/64]&(1<<(oid%64)) != 0 {
		return m.dense[oid], true
	}
	v, ok := m.sparse[oid]
	return v, ok
}

// Set stores v for oid.
func (m *Map[V]) Set(oid fsformat.Oid, v V) {
	if uint64(oid) >= uint64(len(m.dense)) && uint64(oid) < denseLimit(m.n) {
		n := int(oid) + 1
		m.dense = grow(m.dense, n)
		m.has = grow(m.has, (n+63)/64)
	}
	if uint64(oid) < uint64(len(m.dense)) {
		if m.has[oid/64]&(1<<(oid%64)) == 0 {
			m.has[oid/64] |= 1 << (oid % 64)
			if _, old := m.sparse[oid]; old {
				delete(m.sparse, oid)
			} else {
				m.n++
			}
		}
		m.dense[oid] = v
		return
	}
	if m.sparse == nil {
		m.sparse = make(map[fsformat.Oid]V)
	}
	if _, ok := m.sparse[oid]; !ok {
		m.n++
	}
	m.sparse[oid] = v
}

// Len is the number of oids.
func (m *Map[V]) Len() int { return m.n }

// Set is a set of oids: a bitmap over the range the caller says is dense
// (Add's argument), a map beyond it. Removing an absent oid, common while
// scanning, costs a bit test instead of a hash.
type Set struct {
	bits   []uint64
	sparse map[fsformat.Oid]struct{}
	n      int
}

// Add inserts oid; the bitmap grows to cover it when oid < dense.
func (s *Set) Add(oid fsformat.Oid, dense uint64) {
	if uint64(oid) >= 64*uint64(len(s.bits)) && uint64(oid) < dense {
		s.bits = grow(s.bits, int(oid/64)+1)
	}
	if uint64(oid) < 64*uint64(len(s.bits)) {
		if _, old := s.sparse[oid]; old {
			delete(s.sparse, oid)
			s.n--
		}
		if s.bits[oid/64]&(1<<(oid%64)) == 0 {
			s.bits[oid/64] |= 1 << (oid % 64)
			s.n++
		}
		return
	}
	if s.sparse == nil {
		s.sparse = make(map[fsformat.Oid]struct{})
	}
	if _, ok := s.sparse[oid]; !ok {
		s.sparse[oid] = struct{}{}
		s.n++
	}
}

// Remove deletes oid if present.
func (s *Set) Remove(oid fsformat.Oid) {
	if s.n == 0 {
		return
	}
	if uint64(oid) < 64*uint64(len(s.bits)) && s.bits[oid/64]&(1<<(oid%64)) != 0 {
		s.bits[oid/64] &^= 1 << (oid % 64)
		s.n--
		return
	}
	if len(s.sparse) > 0 {
		if _, ok := s.sparse[oid]; ok {
			delete(s.sparse, oid)
			s.n--
		}
	}
}

// Has reports whether oid is in the set.
func (s *Set) Has(oid fsformat.Oid) bool {
	if uint64(oid) < 64*uint64(len(s.bits)) && s.bits[oid/64]&(1<<(oid%64)) != 0 {
		return true
	}
	if len(s.sparse) == 0 {
		return false
	}
	_, ok := s.sparse[oid]
	return ok
}

// Len is the number of oids in the set.
func (s *Set) Len() int { return s.n }
