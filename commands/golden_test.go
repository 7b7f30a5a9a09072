package commands

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The golden harness: testdata/fs/commands.json lists every run of the real
// Python tools on the fixtures (tool, working folder, command, stdout/stderr
// files, exit status). TestGolden runs the matching zodbctl command
// in-process in the fixture's folder and compares stdout, stderr and the
// exit status byte for byte.
//
// Which zodbctl arguments correspond to a recorded tool name ("fsdump",
// "fstest-vv", "fsrefs-v", "fsoids-0x3c", …) is declared in a registry
// filled from init() in per-area files (golden_fs_test.go,
// golden_refs_test.go, …), so adding tools needs no edit here. Tools without
// a mapping are logged, not failed. Every fixture listed in commands.json is
// covered without code changes.

// goldenEntry is one row of commands.json.
type goldenEntry struct {
	Command    string   `json:"command"`
	Cwd        string   `json:"cwd"`
	ExitStatus int      `json:"exit_status"`
	Fixture    string   `json:"fixture"`
	Normalised []string `json:"normalised"`
	Stderr     *string  `json:"stderr"`
	Stdout     string   `json:"stdout"`
	Tool       string   `json:"tool"`
}

// File is the fixture's file name as passed to the tool (relative to Cwd).
func (e goldenEntry) File() string { return filepath.Base(e.Fixture) }

// goldenResult is what a zodbctl run produced, plus the recorded outputs.
type goldenResult struct {
	Stdout, Stderr []byte
	Exit           int
	// Recorded outputs of the Python tool.
	WantStdout, WantStderr []byte
	WantExit               int
}

// goldenTool says how to run zodbctl for a recorded tool name.
type goldenTool struct {
	// Args returns zodbctl's arguments (without the program name) for the
	// entry; it runs in the fixture's folder.
	Args func(e goldenEntry) []string
	// Crash, called instead of the byte comparison when the recorded stderr
	// is a Python traceback (the tool crashed), asserts what zodbctl does
	// there. Nil: such entries are logged and skipped.
	Crash func(t *testing.T, e goldenEntry, r goldenResult)
}

var goldenTools = map[string]goldenTool{}

// goldenPrefixes maps a tool-name prefix (e.g. "fsoids-", whose runs are
// named after their arguments) to its mapping, for families of recorded runs.
var goldenPrefixes = map[string]goldenTool{}

// registerGoldenPrefix declares the zodbctl equivalent of every recorded tool
// whose name starts with prefix and has no exact registration.
func registerGoldenPrefix(prefix string, gt goldenTool) {
	if _, dup := goldenPrefixes[prefix]; dup {
		panic("golden tool prefix registered twice: " + prefix)
	}
	goldenPrefixes[prefix] = gt
}

// lookupGolden finds the mapping of a recorded tool name.
func lookupGolden(tool string) (goldenTool, bool) {
	if gt, ok := goldenTools[tool]; ok {
		return gt, true
	}
	for prefix, gt := range goldenPrefixes {
		if strings.HasPrefix(tool, prefix) {
			return gt, true
		}
	}
	return goldenTool{}, false
}

// registerGolden declares the zodbctl equivalent of a recorded tool name.
func registerGolden(tool string, gt goldenTool) {
	if _, dup := goldenTools[tool]; dup {
		panic("golden tool registered twice: " + tool)
	}
	goldenTools[tool] = gt
}

// isTraceback tells whether recorded stderr is a Python crash.
func isTraceback(stderr []byte) bool {
	return bytes.Contains(stderr, []byte("Traceback (most recent call last):"))
}

func loadGoldenEntries(t *testing.T, root string) []goldenEntry {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "commands.json"))
	if err != nil {
		t.Fatal(err)
	}
	var entries []goldenEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		t.Fatalf("commands.json: %v", err)
	}
	return entries
}

// runZodbctl runs zodbctl in-process in dir.
func runZodbctl(t *testing.T, dir string, args []string) (stdout, stderr []byte, exit int) {
	t.Helper()
	t.Chdir(dir)
	var out, errb bytes.Buffer
	exit = Run(append([]string{"zodbctl"}, args...), &out, &errb)
	return out.Bytes(), errb.Bytes(), exit
}

func TestGolden(t *testing.T) {
	root, err := filepath.Abs("../testdata/fs")
	if err != nil {
		t.Fatal(err)
	}
	entries := loadGoldenEntries(t, root)
	unmapped := map[string]int{}
	ran := 0
	for _, e := range entries {
		gt, ok := lookupGolden(e.Tool)
		if !ok {
			unmapped[e.Tool]++
			continue
		}
		name := e.Fixture + "/" + e.Tool
		t.Run(name, func(t *testing.T) {
			wantOut, err := os.ReadFile(filepath.Join(root, e.Stdout))
			if err != nil {
				t.Fatal(err)
			}
			var wantErr []byte
			if e.Stderr != nil {
				if wantErr, err = os.ReadFile(filepath.Join(root, *e.Stderr)); err != nil {
					t.Fatal(err)
				}
			}
			args := gt.Args(e)
			out, errb, exit := runZodbctl(t, filepath.Join(root, e.Cwd), args)
			r := goldenResult{Stdout: out, Stderr: errb, Exit: exit, WantStdout: wantOut, WantStderr: wantErr, WantExit: e.ExitStatus}
			if isTraceback(wantErr) {
				if gt.Crash == nil {
					t.Skipf("%s crashed in Python and the tool declares no behaviour for it", e.Command)
				}
				gt.Crash(t, e, r)
				return
			}
			compareGolden(t, e, args, r)
		})
		ran++
	}
	if ran == 0 {
		t.Fatal("no golden entry ran")
	}
	var names []string
	for tool, n := range unmapped {
		names = append(names, tool+"×"+goldenItoa(n))
	}
	sort.Strings(names)
	if len(names) > 0 {
		t.Logf("recorded tools without a zodbctl mapping (not checked): %s", strings.Join(names, ", "))
	}
}

func compareGolden(t *testing.T, e goldenEntry, args []string, r goldenResult) {
	t.Helper()
	if !bytes.Equal(r.Stdout, r.WantStdout) {
		t.Errorf("zodbctl %s: stdout differs from %s:\n%s", strings.Join(args, " "), e.Stdout, firstDiff(r.Stdout, r.WantStdout))
	}
	if !bytes.Equal(r.Stderr, r.WantStderr) {
		t.Errorf("zodbctl %s: stderr\n got: %q\nwant: %q", strings.Join(args, " "), r.Stderr, r.WantStderr)
	}
	if r.Exit != r.WantExit {
		t.Errorf("zodbctl %s: exit status %d, want %d", strings.Join(args, " "), r.Exit, r.WantExit)
	}
}

// firstDiff shows the first differing line of two outputs.
func firstDiff(got, want []byte) string {
	g := strings.Split(string(got), "\n")
	w := strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl || i >= len(g) || i >= len(w) {
			return "line " + goldenItoa(i+1) + ":\n got: " + goldenQuote(gl) + "\nwant: " + goldenQuote(wl)
		}
	}
	return "(lengths differ)"
}

// assertOneLineError checks a clean failure: the given exit status, stderr
// exactly one line that names the file.
func assertOneLineError(t *testing.T, e goldenEntry, r goldenResult, exit int) {
	t.Helper()
	if r.Exit != exit {
		t.Errorf("exit status %d, want %d (stderr %q)", r.Exit, exit, r.Stderr)
	}
	s := string(r.Stderr)
	if strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") {
		t.Errorf("stderr is not one line: %q", s)
	}
	if !strings.Contains(s, e.File()) {
		t.Errorf("stderr does not name %s: %q", e.File(), s)
	}
	if strings.Contains(s, "panic") || strings.Contains(s, "goroutine") {
		t.Errorf("stderr shows a panic: %q", s)
	}
}
