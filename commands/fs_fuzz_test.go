package commands

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzCommands runs every command that reads a Data.fs (fsdump plain,
// --verbose and --json, fstail, verify --deep, fsrefs, fsoids, fsstats,
// analyze, netspace, xrefs, reindex) on arbitrary bytes seeded with every
// Data.fs fixture: they must never panic or hang, a failure ends with a
// stderr line naming the file, and an index reindex writes must be the one
// verify --index computes.
//
//	go test ./commands -run XXX -fuzz FuzzCommands -fuzzminimizetime 100x
func FuzzCommands(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/fs/*.fs")
	more, _ := filepath.Glob("../testdata/fs/*/*.fs")
	for _, p := range append(seeds, more...) {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "fuzz.fs")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Remove(path + ".index")
		run := func(args ...string) int {
			var errb bytes.Buffer
			exit := Run(append([]string{"zodbctl"}, args...), io.Discard, &errb)
			if exit != 0 && errb.Len() > 0 {
				lines := strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n")
				last := lines[len(lines)-1]
				finding := args[0] == "xrefs" && exit == 1 && strings.HasSuffix(last, "dangling strong reference(s)")
				if !finding && !strings.Contains(last, path) && last != "empty file" && last != "invalid file header" {
					t.Fatalf("%v: exit %d, last stderr line does not name the file: %q", args, exit, last)
				}
			}
			return exit
		}
		for _, cmd := range [][]string{
			{"fsdump", path}, {"fsdump", "--verbose", path}, {"fsdump", "--json", path},
			{"fstail", "-n", "5", path}, {"fstail", "--json", path}, {"verify", "--deep", "-v", "-v", path},
			{"fsrefs", "-v", path}, {"fsrefs", "--json", path}, {"fsoids", path, "0x0", "0x1", "0x7"},
			{"fsstats", path}, {"analyze", path}, {"netspace", "-v", path}, {"netspace", "-P", path},
			{"xrefs", "--all-revisions", "1=" + path, "2=" + path},
		} {
			run(cmd...)
		}
		// Whatever reindex writes must be the index a scan of the file gives.
		if run("reindex", path) == 0 {
			if exit := run("verify", "--index", path); exit != 0 {
				t.Fatalf("reindex succeeded but verify --index exits %d", exit)
			}
			// With the saved index in place the readers take another path
			// (FileStorage's index sanity check).
			run("fsrefs", path)
			run("netspace", "-v", path)
		}
	})
}
