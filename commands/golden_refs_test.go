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

	registerGolden("fsrefs", goldenTool{Args: scriptArgs("fsrefs"), Crash: fsrefsCrash})
	registerGolden("fsrefs-v", goldenTool{Args: scriptArgs("fsrefs"), Crash: fsrefsCrash})

	registerGolden("netspace", goldenTool{Args: file("netspace"), Crash: netspaceCrash})
	registerGolden("netspace-v", goldenTool{Args: file("netspace", "-v"), Crash: netspaceCrash})
	registerGolden("netspace-py3fix", goldenTool{Args: file("netspace"), Crash: netspaceCrash})

	// fsoids runs are named fsoids-<oids>; the arguments are the recorded
	// command's.
	registerGoldenPrefix("fsoids-", goldenTool{Args: scriptArgs("fsoids"), Crash: fsoidsCrash})
}

// scriptArgs maps a recorded "script.py ARGS... [py3fix]" to "zodbctl
// name ARGS...".
func scriptArgs(name string) func(goldenEntry) []string {
	return func(e goldenEntry) []string {
		f := strings.Fields(strings.ReplaceAll(e.Command, "[py3fix]", ""))
		return append([]string{name}, f[1:]...)
	}
}

// fsoidsCrash: Python 3 dies sorting the "not defined" message of a
// referenced oid without a record against the others; zodbctl prints the
// [py3fix] output (Python 2's order), exit 0.
func fsoidsCrash(t *testing.T, e goldenEntry, r goldenResult) {
	fix, err := os.ReadFile(strings.Replace(filepath.Base(e.Stdout), ".fsoids-", ".fsoids-py3fix-", 1))
	if err != nil {
		t.Fatal(err)
	}
	if r.Exit != 0 || len(r.Stderr) != 0 || !bytes.Equal(r.Stdout, fix) {
		t.Errorf("exit %d, stderr %q, stdout differs from [py3fix]:\n%s", r.Exit, r.Stderr, firstDiff(r.Stdout, fix))
	}
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

// netspaceCrash: netspace.py dies without -v (has_key; then the [py3fix]
// run is the reference), on an object without current data (POSKeyError),
// on cross-database references, blobs, or a file without a root. zodbctl
// prints the lines Python printed before dying and goes on, exit 0, naming
// any skipped objects on stderr in one line.
func netspaceCrash(t *testing.T, e goldenEntry, r goldenResult) {
	want := r.WantStdout
	if e.Tool == "netspace" {
		if fix, err := os.ReadFile(strings.TrimSuffix(filepath.Base(e.Stdout), ".txt") + "-py3fix.txt"); err == nil {
			want = fix
		}
	}
	if !bytes.HasPrefix(r.Stdout, want) {
		t.Errorf("stdout does not start with what Python printed:\n%s", firstDiff(r.Stdout, want))
	}
	if r.Exit != 0 {
		t.Errorf("exit %d, stderr %q", r.Exit, r.Stderr)
	}
	if len(r.Stderr) > 0 && (!bytes.HasPrefix(r.Stderr, []byte("netspace: skipped ")) || bytes.Count(r.Stderr, []byte("\n")) != 1) {
		t.Errorf("stderr %q", r.Stderr)
	}
}

// fsrefsCrash: where FileStorage refuses to open a damaged file, zodbctl
// prints the line FileStorage logged before the traceback, exit 1; an FS21
// file (which Python 3 refuses) is read like an FS30 one.
func fsrefsCrash(t *testing.T, e goldenEntry, r goldenResult) {
	content, err := os.ReadFile(e.File())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(content, []byte("FS21")) {
		if len(r.Stdout) != 0 || len(r.Stderr) != 0 || r.Exit != 0 {
			t.Errorf("FS21 file: exit %d, stdout %q, stderr %q", r.Exit, r.Stdout, r.Stderr)
		}
		return
	}
	first, _, _ := bytes.Cut(r.WantStderr, []byte("\n"))
	if !bytes.Equal(r.Stdout, r.WantStdout) || !bytes.Equal(r.Stderr, append(first, '\n')) || r.Exit != ExitFailure {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1, stderr %q", r.Exit, r.Stdout, r.Stderr, first)
	}
}
