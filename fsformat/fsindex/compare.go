package fsindex

// Difference is one oid on which two indexes disagree; Has or Ref is false
// when the oid is missing from that side.
type Difference struct {
	Oid       uint64
	Pos, Want uint64 // position in the checked index and in the reference
	Has, Ref  bool   // whether the checked index / the reference has the oid
}

// Compare reports, in ascending oid order, every oid whose position differs
// between x (e.g. a saved Data.fs.index) and ref (e.g. the index rebuilt by
// scanning the file). fn returning false stops the comparison. It is a
// merge of the two ordered iterations: O(n), no allocation per oid.
func Compare(x, ref *Index, fn func(Difference) bool) {
	nextX, nextR := pull(x), pull(ref)
	ox, px, okx := nextX()
	or, pr, okr := nextR()
	for okx || okr {
		var d Difference
		switch {
		case okx && (!okr || ox < or):
			d = Difference{Oid: ox, Pos: px, Has: true}
			ox, px, okx = nextX()
		case okr && (!okx || or < ox):
			d = Difference{Oid: or, Want: pr, Ref: true}
			or, pr, okr = nextR()
		default:
			same := px == pr
			d = Difference{Oid: ox, Pos: px, Want: pr, Has: true, Ref: true}
			ox, px, okx = nextX()
			or, pr, okr = nextR()
			if same {
				continue
			}
		}
		if !fn(d) {
			return
		}
	}
}

// pull turns the ordered iteration of x into a next function.
func pull(x *Index) func() (uint64, uint64, bool) {
	keys := x.sortedPages()
	var (
		ki int
		i  int
	)
	return func() (uint64, uint64, bool) {
		for ki < len(keys) {
			p := x.lookup(keys[ki])
			if i < len(p.keys) {
				oid := keys[ki]<<8 | uint64(p.keys[i])
				pos := getPos(p.vals[6*i:])
				if x.huge != nil {
					if h, ok := x.huge[oid]; ok {
						pos = h
					}
				}
				i++
				return oid, pos, true
			}
			ki, i = ki+1, 0
		}
		return 0, 0, false
	}
}
