package commands

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzCommands runs fsdump (plain, --verbose, --json), fstail and verify
// --deep on arbitrary bytes seeded with every Data.fs fixture: they must
// never panic, and a failure is one stderr line naming the file.
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
		for _, cmd := range [][]string{
			{"fsdump"}, {"fsdump", "--verbose"}, {"fsdump", "--json"},
			{"fstail", "-n", "5"}, {"fstail", "--json"}, {"verify", "--deep", "-v", "-v"},
		} {
			var errb bytes.Buffer
			exit := Run(append(append([]string{"zodbctl"}, cmd...), path), io.Discard, &errb)
			if exit != 0 {
				lines := strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n")
				last := lines[len(lines)-1]
				if !strings.Contains(last, path) && last != "empty file" && last != "invalid file header" {
					t.Fatalf("%v: exit %d, last stderr line does not name the file: %q", cmd, exit, last)
				}
			}
		}
	})
}
