package analysis

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/pickle"
	"github.com/zodbctl/zodbctl/fsformat/pyrepr"
	"github.com/zodbctl/zodbctl/fsformat/refs"
)

// NetspaceRow is one line of netspace.py: an object, its pickle size, the
// total size of everything reachable from it through local strong
// references, and the attribute path from the root that names it.
type NetspaceRow struct {
	Oid   fsformat.Oid
	Size  int
	Total int64
	Path  string // "" when no path was found (printed "-")
	Class string
}

// NetspaceOptions selects the rows: netspace.py prints only objects with a
// path unless -v (All); -P packs first, which leaves only the objects
// reachable from the root (Reachable).
type NetspaceOptions struct {
	All       bool
	Reachable bool
}

// netGraph is the reference graph of the current revisions, with dense
// node numbers: CSR adjacency (4 bytes per edge) and per-node size and
// class (8 bytes), plus the oid → node map.
type netGraph struct {
	node    map[fsformat.Oid]uint32
	oids    []fsformat.Oid
	size    []uint32
	class   []uint32
	classes []string
	edgeAt  []uint32 // edges of node i: edges[edgeAt[i]:edgeAt[i+1]]
	edges   []uint32
}

// Netspace computes netspace.py's report for the current revisions of c and
// calls fn for each row, in descending oid order. Objects of the index
// without loadable current data (deletions, undone creations) make
// netspace.py die with POSKeyError; here they are skipped and returned,
// and references to them count for nothing.
func Netspace(c *Current, opt NetspaceOptions, fn func(*NetspaceRow) error) (skipped []fsformat.Oid, err error) {
	g, dead, err := buildNetGraph(c)
	if err != nil {
		return nil, err
	}
	paths, err := findPaths(c, g, 3)
	if err != nil {
		return nil, err
	}
	totals := g.totals()
	var reachable []bool
	if opt.Reachable {
		reachable = g.reachableFromRoot()
	}
	keys := make([]fsformat.Oid, 0, c.Index.Len())
	for oid := range c.Index.All() {
		keys = append(keys, oid)
	}
	slices.Sort(keys)
	var row NetspaceRow
	for i := len(keys) - 1; i >= 0; i-- {
		oid := keys[i]
		path, hasPath := paths[oid]
		if !opt.All && !hasPath {
			continue
		}
		n, ok := g.node[oid]
		if !ok {
			if dead[oid] && !opt.Reachable {
				skipped = append(skipped, oid)
			}
			continue
		}
		if reachable != nil && !reachable[n] {
			continue
		}
		row = NetspaceRow{Oid: oid, Size: int(g.size[n]), Total: totals[n], Path: path, Class: g.classes[g.class[n]]}
		if err := fn(&row); err != nil {
			return skipped, err
		}
	}
	return skipped, nil
}

func buildNetGraph(c *Current) (*netGraph, map[fsformat.Oid]bool, error) {
	g := &netGraph{node: make(map[fsformat.Oid]uint32, c.Index.Len())}
	dead := map[fsformat.Oid]bool{}
	classIDs := map[string]uint32{}
	var sc refs.Scanner
	var found []refs.Ref
	var targets []fsformat.Oid // edge targets as oids, resolved to nodes below
	err := c.EachCurrent(false, func(r *CurrentRecord) error {
		if r.Err != nil {
			dead[r.Oid] = true
			return nil
		}
		var err error
		found, err = sc.Scan(r.Data, found[:0])
		if err != nil {
			return &fsformat.RecordError{File: c.File.Name, Pos: r.Pos, Oid: r.Oid.Repr(), Err: err}
		}
		m, n := sc.Class(r.Data)
		name := string(m) + "." + string(n)
		id, ok := classIDs[name]
		if !ok {
			id = uint32(len(g.classes))
			classIDs[name] = id
			g.classes = append(g.classes, name)
		}
		g.node[r.Oid] = uint32(len(g.oids))
		g.oids = append(g.oids, r.Oid)
		g.size = append(g.size, uint32(len(r.Data)))
		g.class = append(g.class, id)
		g.edgeAt = append(g.edgeAt, uint32(len(targets)))
		for i := range found {
			if found[i].CountsForReferencesf() {
				targets = append(targets, fsformat.Oid(found[i].Oid))
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	g.edgeAt = append(g.edgeAt, uint32(len(targets)))
	// Resolve targets; references to objects without data are dropped.
	g.edges = make([]uint32, 0, len(targets))
	for i := range g.oids {
		start := len(g.edges)
		for _, t := range targets[g.edgeAt[i]:g.edgeAt[i+1]] {
			if n, ok := g.node[t]; ok {
				g.edges = append(g.edges, n)
			}
		}
		g.edgeAt[i] = uint32(start)
	}
	g.edgeAt[len(g.oids)] = uint32(len(g.edges))
	return g, dead, nil
}

// totals computes netspace's total_size for every node: its own size plus
// the size of every node reachable from it through at least one edge (the
// node itself again when it lies on a cycle).
//
// Nodes of one strongly connected component reach the same set, so the sum
// is computed once per component, in the order Tarjan's algorithm emits
// them (every component after all it reaches). A component with at most one
// successor component — a chain such as the next-bucket links of a BTree
// over plain values — takes that successor's sum in O(1); others are summed
// by a search. The searches make the worst case quadratic, as netspace.py
// is, but not for chains and trees of single references.
func (g *netGraph) totals() []int64 {
	n := len(g.oids)
	comp := g.components()
	nc := len(comp.sizes)
	compStart := make([]uint32, nc+1)
	for _, c := range comp.of {
		compStart[c+1]++
	}
	for i := 1; i < len(compStart); i++ {
		compStart[i] += compStart[i-1]
	}
	members := make([]uint32, n)
	fill := append([]uint32(nil), compStart[:nc]...)
	for v, c := range comp.of {
		members[fill[c]] = uint32(v)
		fill[c]++
	}
	reach := make([]int64, nc) // Σ size of the nodes reachable through ≥ 1 edge
	full := make([]int64, nc)  // the same plus the component itself
	mark := make([]uint32, n)  // epoch marks: no clearing between searches
	var queue []uint32
	for c := range nc {
		ms := members[compStart[c]:compStart[c+1]]
		var weight int64
		cyclic := len(ms) > 1
		succ, many := -1, false
		for _, v := range ms {
			weight += int64(g.size[v])
			for _, w := range g.edges[g.edgeAt[v]:g.edgeAt[v+1]] {
				switch d := int(comp.of[w]); {
				case d == c:
					cyclic = true
				case succ < 0:
					succ = d
				case succ != d:
					many = true
				}
			}
		}
		if !many {
			if cyclic {
				reach[c] = weight
			}
			if succ >= 0 {
				reach[c] += full[succ]
			}
		} else {
			epoch := uint32(c + 1)
			queue = queue[:0]
			var sum int64
			for _, v := range ms {
				for _, w := range g.edges[g.edgeAt[v]:g.edgeAt[v+1]] {
					if mark[w] != epoch {
						mark[w] = epoch
						queue = append(queue, w)
					}
				}
			}
			for len(queue) > 0 {
				v := queue[len(queue)-1]
				queue = queue[:len(queue)-1]
				sum += int64(g.size[v])
				for _, w := range g.edges[g.edgeAt[v]:g.edgeAt[v+1]] {
					if mark[w] != epoch {
						mark[w] = epoch
						queue = append(queue, w)
					}
				}
			}
			reach[c] = sum
		}
		full[c] = reach[c]
		if !cyclic {
			full[c] += weight
		}
	}
	totals := make([]int64, n)
	for v := range totals {
		totals[v] = int64(g.size[v]) + reach[comp.of[v]]
	}
	return totals
}

type components struct {
	of    []uint32 // component of each node
	sizes []uint32
}

// components finds the strongly connected components (iterative Tarjan).
func (g *netGraph) components() components {
	n := len(g.oids)
	const unvisited = ^uint32(0)
	index := make([]uint32, n)
	low := make([]uint32, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = unvisited
	}
	comp := components{of: make([]uint32, n)}
	var stack []uint32
	type frame struct{ v, next uint32 }
	var call []frame
	counter := uint32(0)
	for root := 0; root < n; root++ {
		if index[root] != unvisited {
			continue
		}
		call = append(call, frame{uint32(root), g.edgeAt[root]})
		index[root], low[root] = counter, counter
		counter++
		stack = append(stack, uint32(root))
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			v := f.v
			if f.next < g.edgeAt[v+1] {
				w := g.edges[f.next]
				f.next++
				if index[w] == unvisited {
					index[w], low[w] = counter, counter
					counter++
					stack = append(stack, w)
					onStack[w] = true
					call = append(call, frame{w, g.edgeAt[w]})
				} else if onStack[w] {
					low[v] = min(low[v], index[w])
				}
				continue
			}
			if low[v] == index[v] {
				id := uint32(len(comp.sizes))
				var size uint32
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp.of[w] = id
					size++
					if w == v {
						break
					}
				}
				comp.sizes = append(comp.sizes, size)
			}
			call = call[:len(call)-1]
			if len(call) > 0 {
				p := call[len(call)-1].v
				low[p] = min(low[p], low[v])
			}
		}
	}
	return comp
}

// reachableFromRoot marks the nodes reachable from oid 0 (itself included):
// what survives a pack with garbage collection.
func (g *netGraph) reachableFromRoot() []bool {
	seen := make([]bool, len(g.oids))
	root, ok := g.node[0]
	if !ok {
		return seen
	}
	queue := []uint32{root}
	seen[root] = true
	for len(queue) > 0 {
		v := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, w := range g.edges[g.edgeAt[v]:g.edgeAt[v+1]] {
			if !seen[w] {
				seen[w] = true
				queue = append(queue, w)
			}
		}
	}
	return seen
}

// findPaths is netspace's find_paths: a breadth-first walk from the root
// mapping's items through instance attributes (the pickled state dicts) up
// to maxDist levels; each object with an oid gets the path of the last
// visit. Cross-database and weak references are not followed (Python cannot
// follow the former when one file is opened alone).
func findPaths(c *Current, g *netGraph, maxDist int) (map[fsformat.Oid]string, error) {
	paths := map[fsformat.Oid]string{}
	rootState, err := loadState(c, 0)
	if err != nil || rootState == nil {
		return paths, nil // no root: nothing has a path
	}
	type item struct {
		path string
		obj  any
		oid  fsformat.Oid
		has  bool
		dist int
	}
	var objs []item
	if d, ok := stateDict(rootState); ok {
		data, ok := d.Get("data")
		if !ok {
			data, ok = d.Get("_container") // ZODB < 3.3
		}
		if m, ok := data.(pickle.Dict); ok {
			for _, kv := range m {
				oid, has := localOid(kv.Value)
				objs = append(objs, item{pyStr(kv.Key), kv.Value, oid, has, 0})
			}
		}
	}
	for i := 0; i < len(objs); i++ {
		it := objs[i]
		if it.has {
			paths[it.oid] = it.path
		}
		if it.dist >= maxDist {
			continue
		}
		var attrs pickle.Dict
		switch v := it.obj.(type) {
		case pickle.PersistentRef:
			if !it.has {
				continue
			}
			if _, ok := g.node[it.oid]; !ok {
				continue
			}
			st, err := loadState(c, it.oid)
			if err != nil {
				continue
			}
			attrs, _ = stateDict(st)
		case *pickle.Object:
			attrs, _ = v.State.(pickle.Dict)
		}
		for _, kv := range attrs {
			oid, has := localOid(kv.Value)
			objs = append(objs, item{it.path + "." + pyStr(kv.Key), kv.Value, oid, has, it.dist + 1})
		}
	}
	return paths, nil
}

// loadState decodes the state pickle of oid's current revision.
func loadState(c *Current, oid fsformat.Oid) (any, error) {
	pos, ok := c.Index.Get(oid)
	if !ok {
		return nil, errors.New("not in the index")
	}
	data, _, err := c.File.LoadRecord(pos)
	if err != nil {
		return nil, err
	}
	d := pickle.NewDecoder(data)
	d.FindGlobal = pickle.AnyGlobal
	if _, err := d.Decode(); err != nil {
		return nil, err
	}
	return d.Decode()
}

// stateDict returns an object's __dict__ from its state: the state itself
// when it is a dict, the first item of a (dict, slots) pair.
func stateDict(st any) (pickle.Dict, bool) {
	switch s := st.(type) {
	case pickle.Dict:
		return s, true
	case pickle.Tuple:
		if len(s) == 2 {
			if d, ok := s[0].(pickle.Dict); ok {
				return d, true
			}
		}
	}
	return nil, false
}

// localOid returns the oid of a local persistent reference (_p_oid).
func localOid(v any) (fsformat.Oid, bool) {
	r, ok := v.(pickle.PersistentRef)
	if !ok {
		return 0, false
	}
	id := r.ID
	if t, ok := id.(pickle.Tuple); ok && len(t) >= 1 {
		id = t[0]
	}
	switch b := id.(type) {
	case []byte:
		if len(b) == 8 {
			return fsformat.OidFromBytes(b), true
		}
	case string:
		if len(b) == 8 {
			return fsformat.OidFromBytes([]byte(b)), true
		}
	}
	return 0, false
}

// pyStr is str() of a dict key as "%s" prints it.
func pyStr(k any) string {
	switch v := k.(type) {
	case string:
		return v
	case []byte:
		return pyrepr.Bytes(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case bool:
		if v {
			return "True"
		}
		return "False"
	case nil:
		return "None"
	}
	return fmt.Sprint(k)
}
