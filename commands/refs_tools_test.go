package commands

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// refsRun is one row of testdata/fs/commands.json: a Python tool run
// recorded in the fixture's folder.
type refsRun struct {
	Fixture    string  `json:"fixture"`
	Tool       string  `json:"tool"`
	Command    string  `json:"command"`
	Cwd        string  `json:"cwd"`
	ExitStatus any     `json:"exit_status"`
	Stdout     *string `json:"stdout"`
	Stderr     *string `json:"stderr"`
}

// refsFixtureDir is absolute: tests change the working directory.
var refsFixtureDir, _ = filepath.Abs("../testdata/fs")

func loadRefsRuns(t *testing.T) []refsRun {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(refsFixtureDir, "commands.json"))
	if err != nil {
		t.Fatal(err)
	}
	var runs []refsRun
	if err := json.Unmarshal(b, &runs); err != nil {
		t.Fatal(err)
	}
	return runs
}

// readRefsFixture returns the contents of a recorded output ("" for none).
func readRefsFixture(t *testing.T, name *string) string {
	t.Helper()
	if name == nil {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(refsFixtureDir, *name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// runRefsTool runs zodbctl in-process with dir (relative to testdata/fs) as the
// working directory, as the fixtures were recorded.
func runRefsTool(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	t.Chdir(filepath.Join(refsFixtureDir, dir))
	var out, errb bytes.Buffer
	code = Run(append([]string{"zodbctl"}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

// refsHasPy3fix reports whether a [py3fix] run of the same fixture and script
// exists; the plain run's output is then Python's crash, not the target.
func refsHasPy3fix(runs []refsRun, r refsRun, script string) bool {
	for _, o := range runs {
		if o.Fixture == r.Fixture && strings.HasPrefix(o.Command, script) && strings.Contains(o.Command, "[py3fix]") &&
			strings.TrimSpace(strings.TrimSuffix(o.Command, "[py3fix]")) == strings.TrimSpace(r.Command) {
			return true
		}
	}
	return false
}

func TestFsstatsGolden(t *testing.T) {
	runs := loadRefsRuns(t)
	n := 0
	for _, r := range runs {
		if !strings.HasPrefix(r.Command, "fsstats.py ") {
			continue
		}
		if !strings.Contains(r.Command, "[py3fix]") && refsHasPy3fix(runs, r, "fsstats.py") {
			continue
		}
		if r.Fixture == "empty.fs" {
			continue // Python crashes; see TestFsstatsEmpty
		}
		dump := strings.Fields(r.Command)[1]
		want := readRefsFixture(t, r.Stdout)
		n++
		t.Run(r.Fixture, func(t *testing.T) {
			for _, arg := range []string{dump, strings.TrimSuffix(dump, ".fsdump.txt")} {
				out, errs, code := runRefsTool(t, r.Cwd, "fsstats", arg)
				if out != want || errs != "" || code != 0 {
					t.Errorf("fsstats %s: exit %d, stderr %q, stdout differs: %v", arg, code, errs, out != want)
					if out != want {
						t.Logf("got:\n%s\nwant:\n%s", out, want)
					}
				}
			}
		})
	}
	if n < 6 {
		t.Errorf("only %d fsstats fixtures", n)
	}
}

func TestFsstatsStdin(t *testing.T) {
	f, err := os.Open(filepath.Join(refsFixtureDir, "dangling.fs.fsdump.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = old }()
	out, errs, code := runRefsTool(t, ".", "fsstats", "-")
	want, _ := os.ReadFile("dangling.fs.fsstats.txt")
	if out != string(want) || errs != "" || code != 0 {
		t.Errorf("fsstats -: exit %d, stderr %q, output matches: %v", code, errs, out == string(want))
	}
}

func TestFsstatsEmpty(t *testing.T) {
	// Python prints the summary, starts the first report and dies in
	// median(); zodbctl stops after the summary.
	for _, arg := range []string{"empty.fs", "empty.fs.fsdump.txt"} {
		out, errs, code := runRefsTool(t, ".", "fsstats", arg)
		if want := "Summary: 0 txns, 0 objects, 0 revisions\n\n"; out != want || errs != "" || code != 0 {
			t.Errorf("fsstats %s = %q, %q, %d", arg, out, errs, code)
		}
	}
}

func TestFsstatsJSON(t *testing.T) {
	out, errs, code := runRefsTool(t, ".", "fsstats", "--json", "basic.fs")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var first struct {
		Type                     string
		Txns, Objects, Revisions int
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first.Type != "summary" || first.Txns != 17 || first.Objects != 132 || first.Revisions != 180 {
		t.Errorf("summary line %s", lines[0])
	}
	var hist struct {
		Type, Name string
		Total      int
		Bins       [][2]int
	}
	json.Unmarshal([]byte(lines[3]), &hist)
	// basic.fs.fsstats-py3fix.txt: 0 → 123, 128 → 30, …, 896 → 1, 5120 → 1.
	if hist.Name != "Object size" || hist.Total != 180 || len(hist.Bins) != 9 || hist.Bins[0] != [2]int{0, 123} || hist.Bins[8] != [2]int{5120, 1} {
		t.Errorf("object size line %s", lines[3])
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Errorf("invalid JSON line %q", l)
		}
	}
}

func TestFsstatsErrors(t *testing.T) {
	if _, errs, code := runRefsTool(t, ".", "fsstats"); code != ExitUsage || !strings.Contains(errs, "expected one FILE") {
		t.Errorf("no args: %d %q", code, errs)
	}
	if _, errs, code := runRefsTool(t, ".", "fsstats", "nonexistent.fs"); code != ExitFailure || !strings.Contains(errs, "nonexistent.fs") {
		t.Errorf("missing file: %d %q", code, errs)
	}
}

func TestFsoidsOidFileAndJSON(t *testing.T) {
	dir := t.TempDir()
	oidFile := filepath.Join(dir, "oids")
	if err := os.WriteFile(oidFile, []byte("0x3\n\n126\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(refsFixtureDir, "basic.fs.fsoids-multi.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// basic.fs.fsoids-multi.txt was made with oids 0x3 0x7e 0x7; the
	// order of the oids does not matter.
	out, errs, code := runRefsTool(t, ".", "fsoids", "-f", oidFile, "basic.fs", "0b111")
	if out != string(want) || errs != "" || code != 0 {
		t.Errorf("fsoids -f: exit %d, stderr %q, output matches: %v", code, errs, out == string(want))
	}
	out, errs, code = runRefsTool(t, ".", "fsoids", "--json", "dangling.fs", "0xfff")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var first, second map[string]any
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[1]), &second)
	if first["oid"] != "0000000000000fff" || first["tid"] != nil || first["message"] != "this oid was not defined (no data record for it found)" ||
		second["tid"] != "03f75780d7777777" || second["message"] != "referenced by 0x02 fixturemodel.Person at 2049" {
		t.Errorf("JSON lines:\n%s", out)
	}
}

func TestFsoidsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"fsoids"}, ExitUsage, "expected FILE"},
		{[]string{"fsoids", "basic.fs"}, ExitUsage, "no oids specified"},
		{[]string{"fsoids", "basic.fs", "010"}, ExitUsage, "invalid literal for int() with base 0: '010'"},
		{[]string{"fsoids", "basic.fs", "-1"}, ExitUsage, "negative"},
		{[]string{"fsoids", "basic.fs", "0x10000000000000000"}, ExitUsage, "8 bytes"},
		{[]string{"fsoids", "missing.fs", "0"}, ExitFailure, "missing.fs"},
	} {
		out, errs, code := runRefsTool(t, ".", tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) || out != "" || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.args, code, out, errs)
		}
	}
}

// TestFsrefsSavedIndex: a saved index that does not match the file is
// ignored with FileStorage's warning, and the file is scanned instead.
func TestFsrefsSavedIndex(t *testing.T) {
	dir := t.TempDir()
	for src, dst := range map[string]string{"dangling.fs": "x.fs", "basic.packed-mid.fs.index": "x.fs.index"} {
		b, err := os.ReadFile(filepath.Join(refsFixtureDir, src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := strings.ReplaceAll(readRefsFixture(t, refsStrPtr("dangling.fs.fsrefs.txt")), "dangling.fs", "x.fs")
	out, errs, code := runRefsTool(t, ".", "fsrefs", filepath.Join(dir, "x.fs"))
	if out != want || code != 0 || errs != "Ignoring index for "+filepath.Join(dir, "x.fs")+"\n" {
		t.Errorf("exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
}

func refsStrPtr(s string) *string { return &s }

func TestFsrefsJSON(t *testing.T) {
	out, errs, code := runRefsTool(t, ".", "fsrefs", "--json", "dangling.fs")
	want := `{"oid":"0000000000000003","class":"fixturemodel.Folder","tid":"03f7578082222222","ref":"0000000000000005","reason":"object creation was undone","ref_class":"<unknown>"}
{"oid":"0000000000000002","class":"fixturemodel.Person","tid":"03f75780d7777777","ref":"0000000000000fff","reason":"missing","ref_class":"<unknown>"}
`
	if out != want || errs != "" || code != 0 {
		t.Errorf("exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
}

// confDatabases reads the <zodb NAME> sections of a zc.zodbdgc ZConfig file
// and the path of each one's filestorage.
func confDatabases(t *testing.T, conf string) []string {
	t.Helper()
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	name := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.Trim(strings.TrimSpace(line), "<>"))
		switch {
		case len(f) == 2 && f[0] == "zodb":
			name = f[1]
		case len(f) == 2 && f[0] == "path":
			args = append(args, name+"="+f[1])
		}
	}
	return args
}

// TestXrefsAgreesWithCheckRefs runs xrefs on every multi-database recorded
// with multi-zodb-check-refs: the strong references it finds dangling are
// exactly the objects check-refs could not load.
func TestXrefsAgreesWithCheckRefs(t *testing.T) {
	n := 0
	for _, r := range loadRefsRuns(t) {
		if r.Tool != "multi-zodb-check-refs" {
			continue
		}
		n++
		t.Run(r.Fixture, func(t *testing.T) {
			want := map[string]bool{}
			for _, line := range strings.Split(readRefsFixture(t, r.Stdout), "\n") {
				if f := strings.Fields(line); len(f) >= 3 && f[0] == "!!!" {
					want[f[1]+" "+f[2]] = true
				}
			}
			args := confDatabases(t, filepath.Join(refsFixtureDir, r.Fixture))
			out, errs, code := runRefsTool(t, r.Cwd, append([]string{"xrefs", "--json"}, args...)...)
			got := map[string]bool{}
			total := 0
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var x struct {
					TargetDB  string `json:"target_db"`
					TargetOid string `json:"target_oid"`
					Kind      string
					Dangling  *bool
				}
				if err := json.Unmarshal([]byte(line), &x); err != nil {
					t.Fatalf("%q: %v", line, err)
				}
				total++
				if x.Dangling == nil {
					t.Errorf("target database %s not checked", x.TargetDB)
				} else if *x.Dangling && x.Kind == "strong" {
					oid, _ := strconv.ParseUint(x.TargetOid, 16, 64)
					got[x.TargetDB+" "+strconv.FormatInt(int64(oid), 10)] = true
				}
			}
			if !maps.Equal(got, want) {
				t.Errorf("dangling %v, multi-zodb-check-refs found %v", got, want)
			}
			wantCode := 0
			if len(want) > 0 {
				wantCode = 1
			}
			if code != wantCode || total < 4 {
				t.Errorf("exit %d (want %d), %d references, stderr %q", code, wantCode, total, errs)
			}
		})
	}
	if n != 5 {
		t.Errorf("%d check-refs runs", n)
	}
}

func TestXrefsOutput(t *testing.T) {
	out, errs, code := runRefsTool(t, "multidb", "xrefs", "1=Data1.fs", "2=Data2.fs")
	want := "DB\tOID\tCLASS\tTARGET DB\tTARGET OID\tKIND\tSTATUS\n" +
		"1\t0x02\tpersistent.list.PersistentList\t2\t0x01\tstrong\tok\n" +
		"1\t0x02\tpersistent.list.PersistentList\t2\t0x02\tstrong\tok\n" +
		"1\t0x03\tfixturemodel.Folder\t2\t0x08\tstrong\tok\n" +
		"1\t0x04\tfixturemodel.Folder\t2\t0x0fff\tstrong\tdangling\n" +
		"1\t0x01\tpersistent.mapping.PersistentMapping\t2\t0x03\tweak\tok\n" +
		"2\t0x07\tfixturemodel.Folder\t1\t0x01\tstrong\tok\n"
	if out != want || code != 1 || errs != "xrefs: 1 dangling strong reference(s)\n" {
		t.Errorf("exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
	// Only database 1 given: nothing can be checked, nothing dangles.
	out, errs, code = runRefsTool(t, "multidb", "xrefs", "--json", "1=Data1.fs")
	if code != 0 || strings.Count(out, `"dangling":null`) != 5 || !strings.Contains(errs, "5 reference(s) into databases not given") {
		t.Errorf("one database: exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
	// Old revisions: the list can only grow.
	all, _, _ := runRefsTool(t, "multidb", "xrefs", "--all-revisions", "1=Data1.fs", "2=Data2.fs")
	if len(all) < len(want) {
		t.Errorf("--all-revisions lists fewer references:\n%s", all)
	}
	for _, args := range [][]string{{"xrefs"}, {"xrefs", "Data1.fs"}, {"xrefs", "1=Data1.fs", "1=Data2.fs"}, {"xrefs", "=x"}} {
		if _, errs, code := runRefsTool(t, "multidb", args...); code != ExitUsage || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
	if _, errs, code := runRefsTool(t, "multidb", "xrefs", "1=nonexistent.fs"); code != ExitFailure || !strings.Contains(errs, "nonexistent.fs") {
		t.Errorf("missing file: exit %d, stderr %q", code, errs)
	}
}

func TestNetspaceOptions(t *testing.T) {
	all, _, code := runRefsTool(t, ".", "netspace", "-v", "basic.fs")
	packed, errs, code2 := runRefsTool(t, ".", "netspace", "-v", "-P", "basic.fs")
	if code != 0 || code2 != 0 || errs != "" {
		t.Fatalf("exit %d/%d, stderr %q", code, code2, errs)
	}
	// The garbage objects of basic.fs (person 0x3c, document 0x7e) are not
	// reachable from the root; the root is.
	for _, oid := range []string{"      60 ", "     126 "} {
		if !strings.Contains(all, "\n"+oid) || strings.Contains(packed, "\n"+oid) {
			t.Errorf("oid %s: in -v output %v, in -P output %v", oid, strings.Contains(all, "\n"+oid), strings.Contains(packed, "\n"+oid))
		}
	}
	if !strings.HasSuffix(packed, "- persistent.mapping.PersistentMapping\n") || len(packed) >= len(all) {
		t.Errorf("-P output:\n%s", packed)
	}
	// Cross-database references are not followed: database 1 alone works.
	out, errs, code := runRefsTool(t, "multidb", "netspace", "-v", "Data1.fs")
	if code != 0 || errs != "" || !strings.Contains(out, "       2   149      149 xrefs persistent.list.PersistentList\n") {
		t.Errorf("Data1.fs: exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
}

// TestFsrefsStrict: --strict keeps fsrefs.py's report and makes a found bad
// reference exit 1, so scripts can rely on the status; default stays 0.
func TestFsrefsStrict(t *testing.T) {
	dangling := "../testdata/fs/dangling.fs"
	plain, _, exit := run(t, "fsrefs", dangling)
	if exit != 0 || plain == "" {
		t.Fatalf("fsrefs: exit %d, %d bytes", exit, len(plain))
	}
	out, errs, exit := run(t, "fsrefs", "--strict", dangling)
	if exit != 1 || out != plain || errs != "fsrefs: 2 object(s) with bad references\n" {
		t.Errorf("--strict on dangling.fs: exit %d, stderr %q, same report %v", exit, errs, out == plain)
	}
	if out, errs, exit := run(t, "fsrefs", "--strict", "../testdata/fs/basic.fs"); exit != 0 || out != "" || errs != "" {
		t.Errorf("--strict on basic.fs: exit %d %q %q", exit, out, errs)
	}
}
