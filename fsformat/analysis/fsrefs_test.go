package analysis

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// checkRefsResult runs CheckRefs on c and renders what it reports.
func checkRefsResult(t *testing.T, c *Current) []string {
	t.Helper()
	var out []string
	err := CheckRefs(c, func(f LoadFailure) {
		out = append(out, fmt.Sprintf("failed %s: %v", f.Oid, f.Err))
	}, func(o *BrokenObject) error {
		out = append(out, fmt.Sprintf("broken %s %s %s %d %v", o.Oid, o.Class, o.Tid, o.Pos, o.Refs))
		return nil
	})
	if err != nil {
		out = append(out, "error: "+err.Error())
	}
	return out
}

// TestCheckRefsSuspectsMatchSecondPass checks that the single pass with
// suspects (index scanned, backpointer oids known) reports exactly what
// the full second pass (fsrefs.py's way) reports, on every fixture,
// damaged ones included.
func TestCheckRefsSuspectsMatchSecondPass(t *testing.T) {
	var files []string
	for _, pat := range []string{"../../testdata/fs/*.fs", "../../testdata/fs/damaged/*.fs"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	sawUndone := false
	for _, src := range files {
		t.Run(filepath.Base(src), func(t *testing.T) {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			// A copy without <name>.index, so that the index is scanned.
			path := filepath.Join(t.TempDir(), filepath.Base(src))
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			run := func(known bool) []string {
				c, err := OpenCurrent(path, nil)
				if err != nil {
					return []string{"open: " + err.Error()}
				}
				defer c.Close()
				if !c.backsKnown {
					t.Fatal("scanned index without backpointer knowledge")
				}
				c.backsKnown = known
				return checkRefsResult(t, c)
			}
			got, want := run(true), run(false)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("with suspects:\n%s\nsecond pass:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if strings.Contains(strings.Join(got, "\n"), ReasonUndone) {
				sawUndone = true
			}
		})
	}
	if !sawUndone {
		t.Error("no fixture has an undone creation: the suspects path was not exercised")
	}
}

// TestScanIndexReportsBackpointers checks the RecordIndex hook: the set
// of current backpointer records follows the latest revision of each oid.
func TestScanIndexReportsBackpointers(t *testing.T) {
	c, err := OpenCurrent(copyFixture(t, "dangling.fs"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for oid, pos := range c.Index.All() {
		h, err := c.File.ReadDataHeaderAt(pos)
		if err != nil {
			t.Fatal(err)
		}
		inBacks := c.backs.Has(oid)
		if inBacks != (h.DataLen == 0) {
			t.Errorf("oid %s at %d: data length %d, in backs %v", oid, pos, h.DataLen, inBacks)
		}
	}
	if c.backs.Len() == 0 {
		t.Error("dangling.fs: no current backpointer record found")
	}
}

func copyFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../testdata/fs/" + name)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSortPositions(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, n := range []int{0, 1, 255, 256, 1000, 20000} {
		for _, span := range []int64{1, 1 << 11, 1 << 33, 1 << 62} {
			p := make([]int64, n)
			for i := range p {
				p[i] = rng.Int63n(span)
			}
			want := slices.Clone(p)
			slices.Sort(want)
			sortPositions(p)
			if !slices.Equal(p, want) {
				t.Fatalf("n=%d span=%d: not sorted", n, span)
			}
		}
	}
}
