package pack

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/zodbctl/zodbctl/fsformat"
)

// FuzzPack packs arbitrary bytes (seeded with the fixtures): an error or a
// packed file that verifies, never a panic or a hang.
func FuzzPack(f *testing.F) {
	for _, name := range []string{"basic.fs", "dangling.fs", "multidb/Data1.fs", "blobs/Data.fs", "damaged/basic-checkpoint.fs"} {
		b, err := os.ReadFile(filepath.Join(fixtures, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint64(crashStop), true)
		f.Add(b, uint64(0x03f6fee19ccccccc), false)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, stop uint64, gc bool) {
		if stop == 0 {
			stop = 1
		}
		path := filepath.Join(dir, "Data.fs")
		for _, ext := range []string{"", ".old", ".index", ".pack"} {
			os.Remove(path + ext)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := Pack(context.Background(), path, "", Options{Stop: fsformat.Tid(stop), GC: gc})
		if err != nil || !res.Packed {
			return
		}
		if err := fsformat.Verify(path, fsformat.VerifyOptions{}); err != nil {
			t.Fatalf("packed file does not verify: %v", err)
		}
	})
}
