package commands

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Golden mappings for the FileStorage inspection tools of issue 2.
func init() {
	file := func(pre ...string) func(goldenEntry) []string {
		return func(e goldenEntry) []string { return append(append([]string(nil), pre...), e.File()) }
	}
	registerGolden("fsdump", goldenTool{Args: file("fsdump"), Crash: fsdumpCrash})
	registerGolden("fsdump-verbose", goldenTool{Args: file("fsdump", "--verbose"), Crash: fsdumpCrash})
	registerGolden("fstest", goldenTool{Args: file("verify"), Crash: fstestCrash})
	registerGolden("fstest-v", goldenTool{Args: file("verify", "-v"), Crash: fstestCrash})
	registerGolden("fstest-vv", goldenTool{Args: file("fstest", "-v", "-v"), Crash: fstestCrash})
	registerGolden("fstail", goldenTool{Args: file("fstail"), Crash: fstailCrash})
	registerGolden("fstail-n3", goldenTool{Args: file("fstail", "-n", "3"), Crash: fstailCrash})
}

// sameLinesThenError: zodbctl prints what Python printed before it died
// (stdout, and the warnings on stderr before the traceback), then one error
// line naming the file, exit 1.
func sameLinesThenError(t *testing.T, e goldenEntry, r goldenResult) {
	t.Helper()
	if !bytes.Equal(r.Stdout, r.WantStdout) {
		t.Errorf("stdout before the error differs from %s:\n%s", e.Stdout, firstDiff(r.Stdout, r.WantStdout))
	}
	warnings, _, _ := bytes.Cut(r.WantStderr, []byte("Traceback (most recent call last):"))
	if !bytes.HasPrefix(r.Stderr, warnings) {
		t.Errorf("stderr %q does not start with Python's warnings %q", r.Stderr, warnings)
		return
	}
	r.Stderr = r.Stderr[len(warnings):]
	assertOneLineError(t, e, r, ExitFailure)
}

// fsdumpCrash: where fsdump.py dies, zodbctl reads FS21 files like FS30 ones
// (the record layout is the same), skips status 'u' transactions (Python's
// iterator dies on them), and otherwise prints the same lines as Python
// before the problem, then one error line, exit 1.
func fsdumpCrash(t *testing.T, e goldenEntry, r goldenResult) {
	content, err := os.ReadFile(e.File())
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case bytes.HasPrefix(content, []byte("FS21")):
		// The same bytes with the FS30 magic must dump identically.
		dir := t.TempDir()
		fixed := append([]byte("FS30"), content[4:]...)
		if err := os.WriteFile(filepath.Join(dir, e.File()), fixed, 0o644); err != nil {
			t.Fatal(err)
		}
		args := append(e.argsFor(), e.File())
		out, errb, exit := runZodbctl(t, dir, args)
		if exit != 0 || r.Exit != 0 || !bytes.Equal(out, r.Stdout) || !bytes.Equal(errb, r.Stderr) || len(out) == 0 {
			t.Errorf("FS21 file: exit %d, %d bytes; as FS30: exit %d, %d bytes (stderr %q / %q)", r.Exit, len(r.Stdout), exit, len(out), r.Stderr, errb)
		}
	case bytes.Contains(r.WantStderr, []byte("UnboundLocalError")):
		// status 'u': the lines Python printed come first, then the rest.
		warnings, _, _ := bytes.Cut(r.WantStderr, []byte("Traceback (most recent call last):"))
		if !bytes.HasPrefix(r.Stdout, r.WantStdout) || !bytes.HasPrefix(r.Stderr, warnings) || r.Exit != 0 {
			t.Errorf("status 'u': exit %d, stderr %q, stdout does not start with %s:\n%s", r.Exit, r.Stderr, e.Stdout, firstDiff(r.Stdout, r.WantStdout))
		}
	default:
		sameLinesThenError(t, e, r)
	}
}

// argsFor is the zodbctl command (without the file) of a fsdump entry.
func (e goldenEntry) argsFor() []string {
	if e.Tool == "fsdump-verbose" {
		return []string{"fsdump", "--verbose"}
	}
	return []string{"fsdump"}
}

// fstestCrash: where fstest.py dies with a traceback instead of its own
// message, zodbctl prints the same lines, then one error line, exit 1.
func fstestCrash(t *testing.T, e goldenEntry, r goldenResult) { sameLinesThenError(t, e, r) }

// fstailCrash: an empty or header-only file prints nothing and exits 0; an
// undecodable extension (which fstail.py unpickles without printing it) is
// no problem; a damaged file prints the transactions Python printed, then
// one error line naming the position, exit 1.
func fstailCrash(t *testing.T, e goldenEntry, r goldenResult) {
	st, err := os.Stat(e.File())
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case st.Size() <= 4:
		if r.Exit != 0 || len(r.Stdout) != 0 || len(r.Stderr) != 0 {
			t.Errorf("empty storage: exit %d, stdout %q, stderr %q; want nothing and 0", r.Exit, r.Stdout, r.Stderr)
		}
	case bytes.Contains(r.WantStderr, []byte("read_meta")):
		if !bytes.HasPrefix(r.Stdout, r.WantStdout) || r.Exit != 0 || len(r.Stderr) != 0 {
			t.Errorf("undecodable extension: exit %d, stderr %q, stdout does not start with %s", r.Exit, r.Stderr, e.Stdout)
		}
	default:
		sameLinesThenError(t, e, r)
	}
}

func goldenItoa(i int) string     { return strconv.Itoa(i) }
func goldenQuote(s string) string { return strconv.Quote(s) }
