// Package fsindex reads and writes Data.fs.index, FileStorage's saved map
// oid → position of the oid's current data record (spec fsindex.md), and
// holds that map in memory compactly.
//
// The file is what ZODB's fsIndex.save writes: a sequence of protocol-3
// pickles (fast mode, no memo): the position up to which the map is valid,
// then one (prefix, bucket) pair per 6-byte oid prefix in ascending order,
// then None. Write produces it byte for byte; Read accepts every variant
// Python's fsIndex.load accepts (Python 2 string opcodes, lists, memo, any
// int encoding), decoding with fsformat/pickle.
//
// # Memory
//
// The oids are grouped in pages of 256 (oid>>8), each page two sorted
// arrays: the oids' low bytes and their 6-byte positions (the same 6 bytes
// fsIndex keeps). Pages are found through a directory indexed by oid>>8 —
// ZODB allocates oids densely from 0 — and, for the rare sparse ones, a map.
// That is 7 bytes per oid plus about 100 bytes per page (page header, slice
// headers, append slack, directory slot). For dense oids that makes 7.2 bytes
// per object, built by Set (BenchmarkSet: 1M ascending oids; a page that
// follows a full one is sized for 256 oids at once) or read from a file,
// which sizes every page exactly (BenchmarkLoadMemory); sparse oids cost up to ~130 bytes each. A Get or
// Set in random order takes about 90 ns (BenchmarkRandom), in oid order a
// few ns. fsIndex's own prefix → bucket split (65536 entries per bucket)
// would make an insert in the middle of a bucket move up to 512 KiB; pages of
// 256 bound that to 2 KiB.
//
// The package is a leaf: oids and positions are plain uint64 (an oid as the
// big-endian value of its 8 bytes), so the root fsformat package can use it
// without an import cycle.
package fsindex

import (
	"iter"
	"slices"
)

// MaxPos is the first position the file format cannot hold: fsIndex keeps
// six bytes per position (Python silently corrupts larger ones; Write
// refuses them).
const MaxPos = 1 << 48

// Index maps oids to file positions. The zero value is an empty index ready
// to use. It is not safe for concurrent use.
type Index struct {
	// Pages are found by key (oid>>8) in dir when the key is below its
	// length — oids are allocated densely from 0, so that is nearly always —
	// and in the pages map otherwise.
	dir    []*page
	pages  map[uint64]*page
	npages int
	n      int
	// huge holds positions ≥ MaxPos, which pages cannot store; Write
	// refuses an index that has any.
	huge map[uint64]uint64
	// order caches the sorted page keys; nil after a page is added or
	// removed.
	order []uint64
	// last is the page most recently used (lastKey its key): scans touch
	// the oids of one page in a row, so this saves most map lookups.
	last    *page
	lastKey uint64
}

// page returns the page for key, or nil.
func (x *Index) page(key uint64) *page {
	if x.last != nil && x.lastKey == key {
		return x.last
	}
	p := x.lookup(key)
	if p != nil {
		x.last, x.lastKey = p, key
	}
	return p
}

func (x *Index) lookup(key uint64) *page {
	if key < uint64(len(x.dir)) {
		return x.dir[key]
	}
	if x.pages == nil {
		return nil
	}
	return x.pages[key]
}

// addPage stores a new page under key. The directory grows to cover key when
// that keeps it dense (at most a few times more slots than pages); other keys
// go to the map.
func (x *Index) addPage(key uint64, p *page) {
	x.npages++
	x.order = nil
	if key >= uint64(len(x.dir)) && key < uint64(4*x.npages+1024) {
		size := max(2*len(x.dir), int(key)+1, 64)
		dir := make([]*page, size)
		copy(dir, x.dir)
		x.dir = dir
		// Pages the map held below the new length move into the directory.
		for k, q := range x.pages {
			if k < uint64(size) {
				x.dir[k] = q
				delete(x.pages, k)
			}
		}
	}
	if key < uint64(len(x.dir)) {
		x.dir[key] = p
		return
	}
	if x.pages == nil {
		x.pages = make(map[uint64]*page)
	}
	x.pages[key] = p
}

func (x *Index) removePage(key uint64) {
	if key < uint64(len(x.dir)) {
		if x.dir[key] == nil {
			return
		}
		x.dir[key] = nil
	} else {
		if _, ok := x.pages[key]; !ok {
			return
		}
		delete(x.pages, key)
	}
	x.npages--
	x.order = nil
	x.last = nil
}

// pageSize is the number of oids a page can hold (one per low byte).
const pageSize = 256

// page holds the oids oid>>8 == its key: low bytes ascending, and the
// 6-byte big-endian positions in the same order.
type page struct {
	keys []byte
	vals []byte
}

// New returns an empty index.
func New() *Index { return &Index{} }

// Len returns the number of oids.
func (x *Index) Len() int { return x.n }

func (p *page) find(low byte) (int, bool) {
	// Most lookups hit the end (new oids are allocated ascending).
	n := len(p.keys)
	if n > 0 && p.keys[n-1] < low {
		return n, false
	}
	return slices.BinarySearch(p.keys, low)
}

func putPos(b []byte, pos uint64) {
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(pos>>40), byte(pos>>32), byte(pos>>24), byte(pos>>16), byte(pos>>8), byte(pos)
}

func getPos(b []byte) uint64 {
	return uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(b[2])<<24 | uint64(b[3])<<16 | uint64(b[4])<<8 | uint64(b[5])
}

// Get returns the position stored for oid.
func (x *Index) Get(oid uint64) (pos uint64, ok bool) {
	p := x.page(oid >> 8)
	if p == nil {
		return 0, false
	}
	i, found := p.find(byte(oid))
	if !found {
		return 0, false
	}
	if x.huge != nil {
		if h, ok := x.huge[oid]; ok {
			return h, true
		}
	}
	return getPos(p.vals[6*i:]), true
}

// Set stores pos for oid.
func (x *Index) Set(oid, pos uint64) {
	key := oid >> 8
	p := x.page(key)
	if p == nil {
		p = &page{}
		if key > 0 {
			if prev := x.lookup(key - 1); prev != nil && len(prev.keys) == pageSize {
				// Oids allocated densely: this page will fill too, so it
				// is sized once instead of growing through six copies.
				p.keys = make([]byte, 0, pageSize)
				p.vals = make([]byte, 0, 6*pageSize)
			}
		}
		x.addPage(key, p)
		x.last, x.lastKey = p, key
	}
	if pos >= MaxPos {
		if x.huge == nil {
			x.huge = make(map[uint64]uint64)
		}
		x.huge[oid] = pos
	} else if x.huge != nil {
		delete(x.huge, oid)
	}
	low := byte(oid)
	i, found := p.find(low)
	if !found {
		if i == len(p.keys) {
			p.keys = append(p.keys, low)
			p.vals = append(p.vals, 0, 0, 0, 0, 0, 0)
		} else {
			p.keys = slices.Insert(p.keys, i, low)
			p.vals = slices.Insert(p.vals, 6*i, 0, 0, 0, 0, 0, 0)
		}
		x.n++
	}
	putPos(p.vals[6*i:], pos&(MaxPos-1))
}

// Delete removes oid; it reports whether oid was there.
func (x *Index) Delete(oid uint64) bool {
	key := oid >> 8
	p := x.page(key)
	if p == nil {
		return false
	}
	i, found := p.find(byte(oid))
	if !found {
		return false
	}
	p.keys = slices.Delete(p.keys, i, i+1)
	p.vals = slices.Delete(p.vals, 6*i, 6*i+6)
	x.n--
	if x.huge != nil {
		delete(x.huge, oid)
	}
	if len(p.keys) == 0 {
		x.removePage(key)
	}
	return true
}

// Clear removes every entry.
func (x *Index) Clear() {
	*x = Index{}
}

func (x *Index) sortedPages() []uint64 {
	if x.order == nil || len(x.order) != x.npages {
		x.order = make([]uint64, 0, x.npages)
		for k, p := range x.dir {
			if p != nil {
				x.order = append(x.order, uint64(k))
			}
		}
		// Map keys are all above the directory (addPage moves lower ones).
		n := len(x.order)
		for k := range x.pages {
			x.order = append(x.order, k)
		}
		slices.Sort(x.order[n:])
	}
	return x.order
}

// All yields every (oid, pos) in ascending oid order. The index must not be
// modified during the iteration.
func (x *Index) All() iter.Seq2[uint64, uint64] {
	return func(yield func(uint64, uint64) bool) {
		for _, key := range x.sortedPages() {
			p := x.lookup(key)
			for i, low := range p.keys {
				oid := key<<8 | uint64(low)
				pos := getPos(p.vals[6*i:])
				if x.huge != nil {
					if h, ok := x.huge[oid]; ok {
						pos = h
					}
				}
				if !yield(oid, pos) {
					return
				}
			}
		}
	}
}

// MaxOid returns the largest oid (FileStorage's maxKey, the base of new oid
// allocation); ok is false when the index is empty.
func (x *Index) MaxOid() (oid uint64, ok bool) {
	if x.n == 0 {
		return 0, false
	}
	order := x.sortedPages()
	key := order[len(order)-1]
	p := x.lookup(key)
	return key<<8 | uint64(p.keys[len(p.keys)-1]), true
}

// Equal reports whether x and y hold the same entries.
func (x *Index) Equal(y *Index) bool {
	if x.n != y.n {
		return false
	}
	for oid, pos := range x.All() {
		if p, ok := y.Get(oid); !ok || p != pos {
			return false
		}
	}
	return true
}
