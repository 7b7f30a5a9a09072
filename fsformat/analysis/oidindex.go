package analysis

import (
	"iter"
	"slices"

	"github.com/zodbctl/zodbctl/fsformat"
)

// OidIndex maps oids to the position of their current record, like
// fsformat.MapIndex, but keeps densely allocated oids (the usual case:
// ZODB hands them out from 0 up) in a slice: 8 bytes per oid and no hashing,
// instead of a map's ~40 bytes and a random probe. Oids far beyond the
// slice go to a map, so a few huge oids cannot inflate it: the slice never
// grows past 4 entries per stored oid plus 64 Ki.
type OidIndex struct {
	dense  []int64 // position+1 by oid; 0: absent
	sparse map[fsformat.Oid]int64
	n      int
}

const denseSlack = 1 << 16

// Get implements fsformat.Index: the position, or 0 and false (callers such
// as ScanIndex compare the 0 with prev pointers).
func (x *OidIndex) Get(oid fsformat.Oid) (int64, bool) {
	if uint64(oid) < uint64(len(x.dense)) {
		if p := x.dense[oid]; p != 0 {
			return p - 1, true
		}
	}
	// An oid stored before the slice grew over it stays in the map.
	p, ok := x.sparse[oid]
	return p, ok
}

// Set implements fsformat.Index.
func (x *OidIndex) Set(oid fsformat.Oid, pos int64) {
	if uint64(oid) >= uint64(len(x.dense)) && uint64(oid) < 4*uint64(x.n+1)+denseSlack {
		x.grow(int(oid) + 1)
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

func (x *OidIndex) grow(n int) {
	if n <= cap(x.dense) {
		x.dense = x.dense[:n]
	} else {
		d := make([]int64, n, max(n, 2*cap(x.dense)))
		copy(d, x.dense)
		x.dense = d
	}
}

// Len is the number of oids.
func (x *OidIndex) Len() int { return x.n }

// All yields every oid and position (dense ones in oid order first; an oid
// is in the map only while the slice does not hold it).
func (x *OidIndex) All() iter.Seq2[fsformat.Oid, int64] {
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

// oidMap is a map from oid to V with OidIndex's layout: a slice for the
// dense range of oids (plus a presence bitmap), a Go map beyond it. It
// replaces map[Oid]V in per-record loops, where hashing and cache misses
// dominate.
type oidMap[V any] struct {
	dense  []V
	has    []uint64
	sparse map[fsformat.Oid]V
	n      int
}

func (m *oidMap[V]) get(oid fsformat.Oid) (V, bool) {
	if uint64(oid) < uint64(len(m.dense)) && m.has[oid/64]&(1<<(oid%64)) != 0 {
		return m.dense[oid], true
	}
	v, ok := m.sparse[oid]
	return v, ok
}

func (m *oidMap[V]) set(oid fsformat.Oid, v V) {
	if uint64(oid) >= uint64(len(m.dense)) && uint64(oid) < 4*uint64(m.n+1)+denseSlack {
		n := int(oid) + 1
		if n > cap(m.dense) {
			d := make([]V, n, max(n, 2*cap(m.dense)))
			copy(d, m.dense)
			m.dense = d
		} else {
			m.dense = m.dense[:n]
		}
		for len(m.has) < (n+63)/64 {
			m.has = append(m.has, 0)
		}
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

func (m *oidMap[V]) len() int { return m.n }

// oidSet is a set of oids: a bitmap over the range the caller says is
// dense (add's limit), a map beyond it. Removing an absent oid, the common
// case while scanning, costs a bit test instead of a hash.
type oidSet struct {
	bits   []uint64
	sparse map[fsformat.Oid]struct{}
	n      int
}

// add inserts oid; the bitmap grows to cover it when oid < dense.
func (s *oidSet) add(oid fsformat.Oid, dense uint64) {
	if uint64(oid) >= 64*uint64(len(s.bits)) && uint64(oid) < dense {
		n := int(oid/64) + 1
		s.bits = append(s.bits, make([]uint64, max(n, 2*len(s.bits))-len(s.bits))...)
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

func (s *oidSet) remove(oid fsformat.Oid) {
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

func (s *oidSet) has(oid fsformat.Oid) bool {
	if uint64(oid) < 64*uint64(len(s.bits)) && s.bits[oid/64]&(1<<(oid%64)) != 0 {
		return true
	}
	if len(s.sparse) == 0 {
		return false
	}
	_, ok := s.sparse[oid]
	return ok
}

func (s *oidSet) len() int { return s.n }

// sortPositions sorts non-negative file positions in place: an LSD radix
// sort on 11-bit digits, as many passes as the largest position needs (3
// for files up to 8 GiB), several times faster than slices.Sort on the
// hundreds of thousands of positions of an index. It uses a scratch slice
// of the same length.
func sortPositions(p []int64) {
	if len(p) < 256 {
		slices.Sort(p)
		return
	}
	var top int64
	for _, v := range p {
		top |= v
	}
	const bits = 11
	tmp := make([]int64, len(p))
	src, dst := p, tmp
	for shift := uint(0); shift < 64 && top>>shift != 0; shift += bits {
		var count [1 << bits]int
		for _, v := range src {
			count[(v>>shift)&(1<<bits-1)]++
		}
		sum := 0
		for i, c := range count {
			count[i] = sum
			sum += c
		}
		for _, v := range src {
			d := (v >> shift) & (1<<bits - 1)
			dst[count[d]] = v
			count[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &p[0] {
		copy(p, src)
	}
}
