package fsindex

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestWriteRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs.index")
	// What killed Writes leave, and look-alikes that must stay.
	stale := []string{".Data.fs.index5577006791947779410", ".Data.fs.index1"}
	keep := []string{".Data.fs.index", ".Data.fs.index12x", ".Data.fs.index.bak", ".Other.fs.index123", "Data.fs.index.index_tmp"}
	for _, n := range append(append([]string(nil), stale...), keep...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	x := New()
	x.Set(1, 4)
	if err := Write(path, x, 100); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := append([]string{"Data.fs.index"}, keep...)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("files after Write: %v, want %v", got, want)
	}
}
