package commands

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Golden mappings for the reference and analysis tools of issue 3.
func init() {
	file := func(pre ...string) func(goldenEntry) []string {
		return func(e goldenEntry) []string { return append(append([]string(nil), pre...), e.File()) }
	}
	// fsstats.py reads fsdump text; zodbctl reads the Data.fs itself (the
	// text form is covered by TestFsstatsGolden).
	registerGolden("fsstats", goldenTool{Args: file("fsstats"), Crash: fsstatsCrash})
	registerGolden("fsstats-py3fix", goldenTool{Args: file("fsstats")})
	registerGolden("analyze", goldenTool{Args: file("analyze"), Crash: analyzeCrash})
}

// analyzeCrash: analyze.py divides by zero on a file without data records
// after printing its first line; zodbctl prints that line, exit 0.
func analyzeCrash(t *testing.T, e goldenEntry, r goldenResult) {
	if r.Exit != 0 || len(r.Stderr) != 0 || !bytes.Equal(r.Stdout, r.WantStdout) {
		t.Errorf("exit %d, stderr %q, stdout %q; want %q", r.Exit, r.Stderr, r.Stdout, r.WantStdout)
	}
}

// fsstatsCrash: where fsstats.py died because a bin reached 40 entries,
// zodbctl prints the [py3fix] output; with no transactions it prints the
// summary only, exit 0.
func fsstatsCrash(t *testing.T, e goldenEntry, r goldenResult) {
	if r.Exit != 0 || len(r.Stderr) != 0 {
		t.Errorf("exit %d, stderr %q", r.Exit, r.Stderr)
	}
	fix, err := os.ReadFile(strings.TrimSuffix(filepath.Base(e.Stdout), ".txt") + "-py3fix.txt")
	if err == nil {
		if !bytes.Equal(r.Stdout, fix) {
			t.Errorf("stdout differs from the [py3fix] output:\n%s", firstDiff(r.Stdout, fix))
		}
		return
	}
	// Python printed the summary, then "Transaction size (bytes)" and died.
	want, _, _ := bytes.Cut(r.WantStdout, []byte("Transaction size"))
	if !bytes.Equal(r.Stdout, want) {
		t.Errorf("stdout %q, want the summary %q", r.Stdout, want)
	}
}
