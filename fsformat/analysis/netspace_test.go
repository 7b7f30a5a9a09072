package analysis

import (
	"math/rand"
	"testing"

	"github.com/zodbctl/zodbctl/fsformat"
)

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

// TestNetspaceTotalsAgainstSearch compares totals with a plain search per
// node on random graphs, chains and cycles included.
func TestNetspaceTotalsAgainstSearch(t *testing.T) {
	for seed := int64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewSource(seed))
		n := 1 + rng.Intn(40)
		g := &netGraph{}
		for i := 0; i < n; i++ {
			g.oids = append(g.oids, fsformat.Oid(i))
			g.size = append(g.size, uint32(1+rng.Intn(100)))
			g.edgeAt = append(g.edgeAt, uint32(len(g.edges)))
			for k := rng.Intn(4); k > 0; k-- {
				if rng.Intn(3) == 0 && i+1 < n {
					g.edges = append(g.edges, uint32(i+1)) // chains
				} else {
					g.edges = append(g.edges, uint32(rng.Intn(n)))
				}
			}
		}
		g.edgeAt = append(g.edgeAt, uint32(len(g.edges)))
		got := g.totals()
		for v := 0; v < n; v++ {
			seen := make([]bool, n)
			want := int64(g.size[v])
			stack := []uint32{uint32(v)}
			for len(stack) > 0 {
				x := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				for _, w := range g.edges[g.edgeAt[x]:g.edgeAt[x+1]] {
					if !seen[w] {
						seen[w] = true
						want += int64(g.size[w])
						stack = append(stack, w)
					}
				}
			}
			if got[v] != want {
				t.Fatalf("seed %d node %d: total %d, want %d", seed, v, got[v], want)
			}
		}
	}
}

func TestNetspaceLongChainIsLinear(t *testing.T) {
	const n = 200000 // quadratic would be 2·10^10 steps
	g := &netGraph{}
	for i := 0; i < n; i++ {
		g.oids = append(g.oids, fsformat.Oid(i))
		g.size = append(g.size, 1)
		g.edgeAt = append(g.edgeAt, uint32(len(g.edges)))
		if i+1 < n {
			g.edges = append(g.edges, uint32(i+1))
		}
	}
	g.edgeAt = append(g.edgeAt, uint32(len(g.edges)))
	if got := g.totals(); got[0] != n || got[n-1] != 1 {
		t.Errorf("totals %d … %d", got[0], got[n-1])
	}
}
