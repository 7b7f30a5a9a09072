package commands

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/fsindex"
)

// copyFixture copies testdata/fs files into a temp dir (under the same
// names) and returns the dir.
func copyFsFixtures(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("../testdata/fs", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(n)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// jsonObjects decodes JSON Lines output.
func jsonObjects(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		objs = append(objs, m)
	}
	return objs
}

// TestVerifyIndexFixtures: every index ZODB wrote for a fixture is
// consistent with its file.
func TestVerifyIndexFixtures(t *testing.T) {
	matches, _ := filepath.Glob("../testdata/fs/*.fs.index")
	if len(matches) < 5 {
		t.Fatalf("expected the 5 fixture indexes, found %d", len(matches))
	}
	for _, idx := range matches {
		file := strings.TrimSuffix(idx, ".index")
		x, pos, err := fsindex.Read(idx)
		if err != nil {
			t.Fatal(err)
		}
		out, errs, exit := run(t, "verify", "--index", file)
		want := idx + ": consistent with " + file + " (" + itoa(x.Len()) + " objects, data up to " + itoa(int(pos)) + ")\n"
		if exit != 0 || out != want || errs != "" {
			t.Errorf("%s: exit %d, stdout %q (want %q), stderr %q", file, exit, out, want, errs)
		}
		out, _, exit = run(t, "verify", "--index", "--json", file)
		objs := jsonObjects(t, out)
		if exit != 0 || len(objs) != 1 || objs[0]["ok"] != true || objs[0]["differences"] != 0.0 || objs[0]["objects"] != float64(x.Len()) {
			t.Errorf("%s --json: exit %d, %q", file, exit, out)
		}
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestVerifyIndexOtherFile: the index of the packed file used against the
// unpacked one. Its saved position falls inside a transaction of basic.fs,
// and every oid whose position differs is listed with both positions, as
// fsindex.Compare of the two indexes says.
func TestVerifyIndexOtherFile(t *testing.T) {
	dir := copyFsFixtures(t, "basic.fs", "basic.packed-now.fs.index")
	file := filepath.Join(dir, "basic.fs")
	if err := os.Rename(filepath.Join(dir, "basic.packed-now.fs.index"), file+".index"); err != nil {
		t.Fatal(err)
	}
	saved, _, err := fsindex.Read(file + ".index")
	if err != nil {
		t.Fatal(err)
	}
	good, _, err := fsindex.Read("../testdata/fs/basic.fs.index")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	fsindex.Compare(saved, good, func(d fsindex.Difference) bool {
		oid := oidHex(fsformat.Oid(d.Oid))
		switch {
		case !d.Ref:
			want = append(want, "oid "+oid+" at "+itoa(int(d.Pos))+" in the index is not in the file")
		case !d.Has:
			want = append(want, "oid "+oid+" at "+itoa(int(d.Want))+" in the file is missing from the index")
		default:
			want = append(want, "oid "+oid+" at "+itoa(int(d.Pos))+" in the index, at "+itoa(int(d.Want))+" in the file")
		}
		return true
	})
	if len(want) < 100 {
		t.Fatalf("only %d differences between the packed and unpacked indexes", len(want))
	}
	out, errs, exit := run(t, "verify", "--index", file)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if exit != 1 || errs != "" {
		t.Fatalf("exit %d, stderr %q", exit, errs)
	}
	pre := file + ".index: "
	if lines[0] != pre+"saved position 33226 is not the end of a transaction" {
		t.Errorf("first line %q", lines[0])
	}
	got := lines[1 : len(lines)-1]
	for i := range got {
		got[i] = strings.TrimPrefix(got[i], pre)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("differences:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if sum := pre + itoa(len(want)+1) + " differences from " + file + " (127 objects, index up to 33226, data up to 44699); FileStorage would ignore it and rescan"; lines[len(lines)-1] != sum {
		t.Errorf("summary %q, want %q", lines[len(lines)-1], sum)
	}
	// A missing oid in the spot check: oid 0x80 is in basic.fs only.
	if !strings.Contains(out, "oid 0x0000000000000080 at 36540 in the file is missing from the index\n") {
		t.Errorf("oid 0x80 not reported missing")
	}

	out, _, exit = run(t, "verify", "--index", "--json", file)
	objs := jsonObjects(t, out)
	if exit != 1 || len(objs) != len(want)+2 {
		t.Fatalf("--json: exit %d, %d objects, want %d", exit, len(objs), len(want)+2)
	}
	kinds := map[string]int{}
	for _, o := range objs[:len(objs)-1] {
		kinds[o["kind"].(string)]++
		switch o["kind"] {
		case "missing":
			if o["index_pos"] != nil || o["file_pos"] == nil || len(o["oid"].(string)) != 16 {
				t.Errorf("missing: %v", o)
			}
		case "position":
			if o["index_pos"] == o["file_pos"] {
				t.Errorf("position: %v", o)
			}
		}
	}
	if kinds["not_boundary"] != 1 || kinds["missing"] == 0 || kinds["position"] == 0 {
		t.Errorf("kinds %v", kinds)
	}
	if last := objs[len(objs)-1]; last["ok"] != false || last["differences"] != float64(len(want)+1) || last["data_end"] != 44699.0 || last["filestorage_uses"] != false {
		t.Errorf("summary %v", last)
	}
}

// TestVerifyIndexUnreadable: missing, truncated and garbage index files are
// reported as one difference naming the index, never a panic.
func TestVerifyIndexUnreadable(t *testing.T) {
	good, err := os.ReadFile("../testdata/fs/basic.fs.index")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"missing":     nil,
		"empty":       {},
		"garbage":     []byte("not a pickle at all"),
		"truncated":   good[:len(good)/2],
		"no-end":      good[:len(good)-4],
		"bad-bucket":  append(append([]byte{}, good[:6]...), "\x80\x03C\x06\x00\x00\x00\x00\x00\x00C\x03abc\x86.\x80\x03N."...),
		"old-format":  []byte("\x80\x03}q\x00.\x80\x03N."),
		"huge-length": append(append([]byte{}, good[:6]...), "\x80\x03C\x06\x00\x00\x00\x00\x00\x00B\xff\xff\xff\x7f"...),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			dir := copyFsFixtures(t, "basic.fs")
			file := filepath.Join(dir, "basic.fs")
			if content != nil {
				if err := os.WriteFile(file+".index", content, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, errs, exit := run(t, "verify", "--index", file)
			re := regexp.MustCompile(`^` + regexp.QuoteMeta(file+".index: unreadable index: ") + `[^\n]+\n` +
				regexp.QuoteMeta(file+".index: unusable (FileStorage would rebuild it by scanning "+file+")") + "\n$")
			if exit != 1 || errs != "" || !re.MatchString(out) {
				t.Errorf("exit %d, stderr %q, stdout %q", exit, errs, out)
			}
			out, _, exit = run(t, "verify", "--index", "--json", file)
			objs := jsonObjects(t, out)
			if exit != 1 || len(objs) != 2 || objs[0]["kind"] != "unreadable" || objs[0]["error"] == "" || objs[1]["ok"] != false {
				t.Errorf("--json: exit %d, %q", exit, out)
			}
		})
	}
}

// TestVerifyIndexStale: the file grew after the index was saved (a
// transaction appended with fsformat's Appender). That is one "stale"
// difference naming the transaction; the covered prefix is still checked.
func TestVerifyIndexStale(t *testing.T) {
	dir := copyFsFixtures(t, "basic.fs", "basic.fs.index")
	file := filepath.Join(dir, "basic.fs")
	a, err := fsformat.OpenAppender(file, fsformat.MapIndex{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var tids []fsformat.Tid
	var positions []int64
	for i := range 2 {
		positions = append(positions, a.Pos())
		if _, err := a.Begin(fsformat.TxnMeta{User: []byte("test")}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Store(fsformat.Oid(i), []byte("\x80\x03cm\nC\nq\x00.\x80\x03}q\x01.")); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Store(0x1000, []byte("\x80\x03cm\nC\nq\x00.\x80\x03}q\x01.")); err != nil {
			t.Fatal(err)
		}
		tid, err := a.Commit()
		if err != nil {
			t.Fatal(err)
		}
		tids = append(tids, tid)
	}
	end := a.Pos()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	out, errs, exit := run(t, "verify", "--index", file)
	pre := file + ".index: "
	want := pre + "stale: covers data up to 44699 of " + itoa(int(end)) + "; lacks 2 transactions, tid " +
		tids[0].String() + " at 44699 to tid " + tids[1].String() + " at " + itoa(int(positions[1])) + "\n" +
		pre + "1 difference from " + file + " (132 objects, index up to 44699, data up to " + itoa(int(end)) + "); FileStorage would use it\n"
	if exit != 1 || errs != "" || out != want {
		t.Errorf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", exit, errs, out, want)
	}
	out, _, exit = run(t, "verify", "--index", "--json", file)
	objs := jsonObjects(t, out)
	if exit != 1 || len(objs) != 2 || objs[0]["kind"] != "stale" || objs[0]["transactions"] != 2.0 ||
		objs[0]["first_tid"] != tids[0].String() || objs[0]["last_pos"] != float64(positions[1]) || objs[1]["filestorage_uses"] != true {
		t.Errorf("--json: exit %d, %q", exit, out)
	}

	// The covered prefix is still checked: move one oid in the saved index.
	x, pos, err := fsindex.Read(file + ".index")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := x.Get(7)
	x.Set(7, p+1)
	x.Set(0x2000, 1234)
	if err := fsindex.Write(file+".index", x, pos); err != nil {
		t.Fatal(err)
	}
	out, _, exit = run(t, "verify", "--index", file)
	for _, line := range []string{
		pre + "oid 0x0000000000000007 at " + itoa(int(p+1)) + " in the index, at " + itoa(int(p)) + " in the file\n",
		pre + "oid 0x0000000000002000 at 1234 in the index is not in the file\n",
		pre + "3 differences from ",
	} {
		if exit != 1 || !strings.Contains(out, line) {
			t.Errorf("exit %d, output lacks %q:\n%s", exit, line, out)
		}
	}
	// oid 0x1000, written only after the saved position, is not missing.
	if strings.Contains(out, "0x0000000000001000") {
		t.Errorf("an oid of the uncovered transactions is reported:\n%s", out)
	}
}

// TestVerifyIndexSanity: whether FileStorage would use a wrong index. Its
// open checks only the records of the last transaction, so a wrong
// position for an older oid goes unnoticed (and is said so), while a wrong
// one in the last transaction makes it rescan.
func TestVerifyIndexSanity(t *testing.T) {
	x, pos, err := fsindex.Read("../testdata/fs/basic.fs.index")
	if err != nil {
		t.Fatal(err)
	}
	var lastOid, lastPos uint64
	for oid, p := range x.All() {
		if p > lastPos {
			lastOid, lastPos = oid, p
		}
	}
	for _, c := range []struct {
		oid     uint64
		verdict string
	}{
		{7, "FileStorage would use it"},
		{lastOid, "FileStorage would ignore it and rescan"},
	} {
		dir := copyFsFixtures(t, "basic.fs")
		file := filepath.Join(dir, "basic.fs")
		y, _, _ := fsindex.Read("../testdata/fs/basic.fs.index")
		p, _ := y.Get(c.oid)
		y.Set(c.oid, p+3)
		if err := fsindex.Write(file+".index", y, pos); err != nil {
			t.Fatal(err)
		}
		out, _, exit := run(t, "verify", "--index", file)
		want := file + ".index: oid " + oidHex(fsformat.Oid(c.oid)) + " at " + itoa(int(p+3)) + " in the index, at " + itoa(int(p)) + " in the file\n" +
			file + ".index: 1 difference from " + file + " (132 objects, index up to 44699, data up to 44699); " + c.verdict + "\n"
		if exit != 1 || out != want {
			t.Errorf("oid %#x: exit %d, stdout:\n%s\nwant:\n%s", c.oid, exit, out, want)
		}
	}
}

// TestVerifyIndexPastEnd: an index saved for a longer file (the file was
// truncated, or the index belongs to another one).
func TestVerifyIndexPastEnd(t *testing.T) {
	dir := copyFsFixtures(t, "basic.packed-now.fs", "basic.fs.index")
	file := filepath.Join(dir, "basic.packed-now.fs")
	if err := os.Rename(filepath.Join(dir, "basic.fs.index"), file+".index"); err != nil {
		t.Fatal(err)
	}
	out, _, exit := run(t, "verify", "--index", file)
	first, _, _ := strings.Cut(out, "\n")
	if exit != 1 || first != file+".index: saved position 44699 is past the end of the data at 33226 (index of a longer or other file?)" {
		t.Errorf("exit %d, first line %q", exit, first)
	}
	if !strings.Contains(out, " in the index, at ") {
		t.Errorf("positions not compared:\n%s", out)
	}
}

// TestVerifyIndexUsage: --index checks only the index.
func TestVerifyIndexUsage(t *testing.T) {
	for _, args := range [][]string{
		{"verify", "--index", "--deep", "x.fs"},
		{"verify", "--index", "-v", "x.fs"},
		{"verify", "--index"},
	} {
		if _, _, exit := run(t, args...); exit != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, exit, ExitUsage)
		}
	}
	out, errs, exit := run(t, "verify", "--index", filepath.Join(t.TempDir(), "none.fs"))
	if exit != 1 || out != "" || !strings.Contains(errs, "none.fs") || strings.Count(errs, "\n") != 1 {
		t.Errorf("missing file: exit %d, stdout %q, stderr %q", exit, out, errs)
	}
}

// FuzzVerifyIndex runs verify --index (text and --json) on arbitrary index
// bytes beside basic.fs cut to an arbitrary length (so stale, past-the-end
// and mid-transaction positions come up), seeded with the fixture indexes.
// It must never panic; stdout lines all name the index; exit 0 exactly when
// the index decodes to the map and position a scan of the file gives.
//
//	go test ./commands -run XXX -fuzz FuzzVerifyIndex -fuzzminimizetime 100x
func FuzzVerifyIndex(f *testing.F) {
	data, err := os.ReadFile("../testdata/fs/basic.fs")
	if err != nil {
		f.Fatal(err)
	}
	seeds, _ := filepath.Glob("../testdata/fs/*.fs.index")
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, uint32(len(data)))
			f.Add(b, uint32(33226))
		}
	}
	f.Add([]byte("\x80\x03N."), uint32(len(data)))
	dir := f.TempDir()
	path := filepath.Join(dir, "fuzz.fs")
	f.Fuzz(func(t *testing.T, index []byte, cut uint32) {
		size := min(int(cut), len(data))
		if err := os.WriteFile(path, data[:size], 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".index", index, 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		exit := Run([]string{"zodbctl", "verify", "--index", path}, &out, &errb)
		if exit != 0 && exit != 1 {
			t.Fatalf("exit %d, stderr %q", exit, errb.String())
		}
		if errb.Len() > 0 {
			// The file itself cannot be scanned: one line naming it.
			if exit != 1 || out.Len() > 0 || strings.Count(errb.String(), "\n") != 1 || !strings.Contains(errb.String(), path) {
				t.Fatalf("exit %d, stdout %q, stderr %q", exit, out.String(), errb.String())
			}
			return
		}
		for line := range strings.SplitSeq(strings.TrimSuffix(out.String(), "\n"), "\n") {
			if !strings.HasPrefix(line, path+".index: ") {
				t.Fatalf("line does not name the index: %q", line)
			}
		}
		// Exit 0 exactly when the index is what a scan of the file gives.
		consistent := false
		if x, pos, err := fsindex.Load(bytes.NewReader(index)); err == nil {
			ref := &scanIndex{Index: fsindex.New()}
			fh, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			res, err := fsformat.ScanIndex(fh, path, ref, func(string) {})
			fh.Close()
			consistent = err == nil && int64(pos) == res.End && x.Equal(ref.Index)
		}
		if consistent != (exit == 0) {
			t.Fatalf("exit %d, but the index consistent = %v:\n%s", exit, consistent, out.String())
		}

		out.Reset()
		jexit := Run([]string{"zodbctl", "verify", "--index", "--json", path}, &out, &errb)
		objs := jsonObjects(t, out.String())
		if jexit != exit || len(objs) == 0 || objs[len(objs)-1]["ok"] != (exit == 0) ||
			objs[len(objs)-1]["differences"] != float64(len(objs)-1) {
			t.Fatalf("--json: exit %d (text %d):\n%s", jexit, exit, out.String())
		}
	})
}

// TestReindexKilled kills (SIGKILL) a reindex child at a random moment of
// its reindex (ZODBCTL_REINDEX_KILL_ROUNDS times, default 20) over a stale
// index. After each kill verify --index must find either the old index,
// byte for byte (stale, exit 1), or the complete new one (consistent, exit
// 0): never a partial file. A new reindex must then succeed (the flock died
// with the child). Temp files left beside the index are counted.
func TestReindexKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	rounds := 20
	if s := os.Getenv("ZODBCTL_REINDEX_KILL_ROUNDS"); s != "" {
		fmt.Sscan(s, &rounds)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	a, err := fsformat.Create(path, fsformat.MapIndex{})
	if err != nil {
		t.Fatal(err)
	}
	rec := []byte("\x80\x03cm\nC\nq\x00.\x80\x03}q\x01(X\x01\x00\x00\x00aq\x02K\x01u.")
	commit := func(txns, perTxn, base int) {
		for i := range txns {
			if _, err := a.Begin(fsformat.TxnMeta{}); err != nil {
				t.Fatal(err)
			}
			for j := range perTxn {
				if _, err := a.Store(fsformat.Oid(base+i*perTxn+j), rec); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := a.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	commit(100, 1000, 0)
	if _, _, exit := run(t, "reindex", path); exit != 0 {
		t.Fatal("first reindex failed")
	}
	commit(10, 1000, 50000) // the saved index is now stale
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	oldIndex, err := os.ReadFile(path + ".index")
	if err != nil {
		t.Fatal(err)
	}

	child := func() *exec.Cmd { return zodbctlChild("reindex", path) }
	// The child's reindex takes about as long as one here: the kills are
	// spread over that time after it says START.
	if out, err := child().CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if err := os.WriteFile(path+".index", oldIndex, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, _, exit := run(t, "reindex", path); exit != 0 {
		t.Fatal("reindex failed")
	}
	full := time.Since(start)
	newIndex, err := os.ReadFile(path + ".index")
	if err != nil || bytes.Equal(newIndex, oldIndex) {
		t.Fatalf("the child did not rewrite the index (%v)", err)
	}

	var sawOld, sawNew int
	for round := range rounds {
		if err := os.WriteFile(path+".index", oldIndex, 0o644); err != nil {
			t.Fatal(err)
		}
		killWithin(t, child(), time.Duration(int64(full)*5/4))

		got, err := os.ReadFile(path + ".index")
		if err != nil {
			t.Fatalf("round %d: index gone after the kill: %v", round, err)
		}
		out, _, exit := run(t, "verify", "--index", path)
		switch {
		case bytes.Equal(got, oldIndex):
			sawOld++
			if exit != 1 || !strings.Contains(out, "stale: covers data up to") || strings.Count(out, "\n") != 2 {
				t.Fatalf("round %d: old index: exit %d\n%s", round, exit, out)
			}
		case bytes.Equal(got, newIndex):
			sawNew++
			if exit != 0 {
				t.Fatalf("round %d: new index: exit %d\n%s", round, exit, out)
			}
		default:
			t.Fatalf("round %d: the index is neither the old nor the new one (%d bytes): verify --index exit %d\n%s", round, len(got), exit, out)
		}
	}
	if _, _, exit := run(t, "reindex", path); exit != 0 {
		t.Fatal("reindex after the kills failed")
	}
	if out, _, exit := run(t, "verify", "--index", path); exit != 0 {
		t.Fatalf("after a final reindex: exit %d\n%s", exit, out)
	}
	entries, _ := os.ReadDir(dir)
	var stray []string
	for _, e := range entries {
		if n := e.Name(); n != "Data.fs" && n != "Data.fs.index" && n != "Data.fs.lock" {
			stray = append(stray, n)
		}
	}
	if len(stray) > 0 {
		t.Errorf("after the kills and a final reindex, files left beside the index: %v", stray)
	}
	t.Logf("%d kills over a %v reindex: %d left the old index, %d the new one", rounds, full.Round(time.Millisecond), sawOld, sawNew)
}
