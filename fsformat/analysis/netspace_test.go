package analysis

import "testing"

// TestNetspaceTotals checks total_size's semantics on a small graph: a
// node's own size plus everything reachable through at least one edge, the
// node itself again when it lies on a cycle.
func TestNetspaceTotals(t *testing.T) {
	// a(1) <-> b(2), c(4) -> a, d(8) -> d, e(16) leaf, f(32) -> a, c, e
	adj := [][]uint32{{1}, {0}, {0}, {3}, nil, {0, 2, 4, 2}}
	g := &netGraph{size: []uint32{1, 2, 4, 8, 16, 32}}
	for _, out := range adj {
		g.oids = append(g.oids, 0)
		g.edgeAt = append(g.edgeAt, uint32(len(g.edges)))
		g.edges = append(g.edges, out...)
	}
	g.edgeAt = append(g.edgeAt, uint32(len(g.edges)))
	want := []int64{1 + 1 + 2, 2 + 1 + 2, 4 + 1 + 2, 8 + 8, 16, 32 + 1 + 2 + 4 + 16}
	got := g.totals()
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("total of node %d = %d, want %d", i, got[i], want[i])
		}
	}
}
