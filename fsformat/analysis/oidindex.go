package analysis

import (
	"slices"

	"github.com/zodbctl/zodbctl/fsformat/oidmap"
)

// OidIndex maps oids to the position of their current record, like
// fsformat.MapIndex but in far less memory for the dense oids ZODB hands
// out (see oidmap).
type OidIndex = oidmap.Positions

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
