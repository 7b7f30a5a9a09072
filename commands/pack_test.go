package commands

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/zodbctl/zodbctl/fsformat"
)

func runPackCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(append([]string{"zodbctl", "pack"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// The command reproduces ZODB's packed file and index (the library test
// covers every fixture; this one checks the wiring of --tid and --no-gc).
func TestPackCommandFixtures(t *testing.T) {
	for _, tc := range []struct{ packed, tid, gc string }{
		{"basic.packed-mid.fs", "03f6fee19ccccccc", ""},
		{"basic.packed-now-nogc.fs", "0x03f70d3450000000", "--no-gc"},
	} {
		fs := copyFixture(t, "../testdata/fs/basic.fs")
		args := []string{"--tid", tc.tid}
		if tc.gc != "" {
			args = append(args, tc.gc)
		}
		code, out, errs := runPackCmd(append(args, fs)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.packed, code, errs)
		}
		if !strings.Contains(out, "basic.fs: packed to "+strings.TrimPrefix(tc.tid, "0x")) {
			t.Errorf("%s: output %q", tc.packed, out)
		}
		for _, suffix := range []string{"", ".index"} {
			got, _ := os.ReadFile(fs + suffix)
			want, _ := os.ReadFile("../testdata/fs/" + tc.packed + suffix)
			if !bytes.Equal(got, want) {
				t.Errorf("%s%s differs from ZODB's", tc.packed, suffix)
			}
		}
	}
}

func TestPackDryRunWritesNothing(t *testing.T) {
	fs := copyFixture(t, "../testdata/fs/basic.fs")
	before, _ := os.ReadFile(fs)
	code, out, errs := runPackCmd("--dry-run", "--json", "--tid", "03f70d3450000000", fs)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		Packed    bool     `json:"packed"`
		SizeAfter int64    `json:"size_after"`
		Garbage   []string `json:"unreachable_oids"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile("../testdata/fs/basic.packed-now.fs")
	if !r.Packed || r.SizeAfter != int64(len(want)) || len(r.Garbage) == 0 {
		t.Errorf("dry run report %s", out)
	}
	after, _ := os.ReadFile(fs)
	if !bytes.Equal(before, after) {
		t.Error("dry run changed the file")
	}
	ents, _ := os.ReadDir(filepath.Dir(fs))
	if len(ents) != 1 {
		t.Errorf("dry run left files: %v", ents)
	}
}

func TestPackRefusesLockedStorage(t *testing.T) {
	fs := copyFixture(t, "../testdata/fs/basic.fs")
	lf, err := os.OpenFile(fs+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runPackCmd(fs)
	if code != ExitFailure || !strings.Contains(errs, "locked by another process") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if _, err := os.Stat(fs + ".pack"); err == nil {
		t.Error("FILE.pack written while locked")
	}
}

// Packing multidb's Data2.fs alone with GC deletes the objects reachable
// only from database 1 (the trap); packing both together keeps them.
func TestPackMultiDatabaseKeepsCrossReferenced(t *testing.T) {
	d1 := copyFixture(t, "../testdata/fs/multidb/Data1.fs")
	d2 := copyFixture(t, "../testdata/fs/multidb/Data2.fs")
	alone := copyFixture(t, "../testdata/fs/multidb/Data2.fs")
	const tid = "03f7a7d42ddddddd" // the "now" pack of the fixtures
	if code, _, errs := runPackCmd("--tid", tid, alone); code != 0 {
		t.Fatal(errs)
	}
	code, out, errs := runPackCmd("--tid", tid, "1="+d1, "2="+d2)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "1 unreachable objects removed: 0x05\n") {
		t.Errorf("output %q", out)
	}
	oids := func(path string) map[fsformat.Oid]bool {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		idx := fsformat.MapIndex{}
		if _, err := fsformat.ScanIndex(f, path, idx, nil); err != nil {
			t.Fatal(err)
		}
		m := map[fsformat.Oid]bool{}
		for o := range idx {
			m[o] = true
		}
		return m
	}
	a, m := oids(alone), oids(d2)
	for _, o := range []fsformat.Oid{2, 8} { // d2_only_from_1, orphan_only_from_1
		if a[o] {
			t.Errorf("single pack kept oid %d (the fixture no longer shows the trap)", o)
		}
		if !m[o] {
			t.Errorf("multi-database pack dropped oid %d, referenced from database 1", o)
		}
	}
	if m[5] {
		t.Error("multi-database pack kept the garbage oid 5")
	}
	// Same objects as zc.zodbdgc followed by a no-GC pack.
	z := oids("../testdata/fs/multidb/gc/Data2.packed.fs")
	for o := range z {
		if !m[o] {
			t.Errorf("zodbdgc+pack keeps oid %d, we do not", o)
		}
	}
	for o := range m {
		if !z[o] {
			t.Errorf("we keep oid %d, zodbdgc+pack does not", o)
		}
	}
	// The database 1 file was packed too, like its single GC pack.
	got, _ := os.ReadFile(d1)
	want, _ := os.ReadFile("../testdata/fs/multidb/Data1.packed-now.fs")
	if !bytes.Equal(got, want) {
		t.Error("database 1 differs from its own GC pack")
	}
}

func TestPackWarnsOrRefusesUnnamedCrossReferences(t *testing.T) {
	d1 := copyFixture(t, "../testdata/fs/multidb/Data1.fs")
	before, _ := os.ReadFile(d1)
	code, _, errs := runPackCmd("--refuse-multi", "--tid", "03f7a7d42ddddddd", d1)
	if code != ExitFailure || !strings.Contains(errs, `into database "2", which is not part of this pack`) {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if after, _ := os.ReadFile(d1); !bytes.Equal(before, after) {
		t.Fatal("refused pack changed the file")
	}
	code, _, errs = runPackCmd("--tid", "03f7a7d42ddddddd", d1)
	if code != 0 || !strings.Contains(errs, `cross-database reference(s) into database "2"`) {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

func TestPackDanglingSucceeds(t *testing.T) {
	fs := copyFixture(t, "../testdata/fs/dangling.fs")
	code, out, errs := runPackCmd("--tid", "03f757bd02222222", fs)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "oid 0x03 references oid 0x05, which has no current record") {
		t.Errorf("stderr %q", errs)
	}
	if !strings.Contains(out, "packed to 03f757bd02222222") {
		t.Errorf("stdout %q", out)
	}
	if err := fsformat.Verify(fs, fsformat.VerifyOptions{}); err != nil {
		t.Error(err)
	}
}

func TestPackUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--days", "1", "--tid", "03f757bd02222222", "x.fs"},
		{"--tid", "zz", "x.fs"},
		{"a.fs", "b.fs"},
		{"x.fs", "--dry-run"},
	} {
		if code, _, _ := runPackCmd(args...); code != ExitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, ExitUsage)
		}
	}
	missing := filepath.Join(t.TempDir(), "missing.fs")
	if code, _, errs := runPackCmd(missing); code != ExitFailure || !strings.Contains(errs, "no such file") {
		t.Errorf("missing file: exit %d %q", code, errs)
	}
	if _, err := os.Stat(missing + ".lock"); err == nil {
		t.Error("a lock file was created for a missing Data.fs")
	}
	fs := copyFixture(t, "../testdata/fs/basic.fs")
	if code, _, errs := runPackCmd("--tid", "0", fs); code != ExitFailure || !strings.Contains(errs, "Invalid pack time") {
		t.Errorf("tid 0: exit %d %q", code, errs)
	}
}

func TestPackBlobDir(t *testing.T) {
	dir := t.TempDir()
	fs := filepath.Join(dir, "Data.fs")
	data, _ := os.ReadFile("../testdata/fs/blobs/Data.fs")
	os.WriteFile(fs, data, 0o644)
	// the blob tree, copied
	src := "../testdata/fs/blobs/blobs"
	filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dir, "blobs", rel), 0o755)
		}
		b, _ := os.ReadFile(p)
		return os.WriteFile(filepath.Join(dir, "blobs", rel), b, 0o644)
	})
	code, out, errs := runPackCmd("--tid", "03f88148c3333333", "--blob-dir", "main="+filepath.Join(dir, "blobs"), "main="+fs)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "blobs: 2 revision files and 1 object directories removed") {
		t.Errorf("output %q", out)
	}
	want, _ := os.ReadFile("../testdata/fs/blobs-packed/Data.fs")
	if got, _ := os.ReadFile(fs); !bytes.Equal(got, want) {
		t.Error("packed file differs from ZODB's")
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs/0x00/0x00/0x00/0x00/0x00/0x00/0x00/0x02")); err == nil {
		t.Error("the blob directory of the unreachable oid 2 is still there")
	}
	if code, _, _ := runPackCmd("--blob-dir", "other=x", "main="+fs); code != ExitUsage {
		t.Errorf("unknown database in --blob-dir: exit %d", code)
	}
}

// --config takes the databases (names, paths, pack-gc) from a ZODB
// configuration, as zc.zodbdgc does.
func TestPackConfig(t *testing.T) {
	d1 := copyFixture(t, "../testdata/fs/multidb/Data1.fs")
	d2 := copyFixture(t, "../testdata/fs/multidb/Data2.fs")
	conf := filepath.Join(t.TempDir(), "multi.conf")
	os.WriteFile(conf, []byte("<zodb 1>\n  <filestorage>\n    path "+d1+"\n  </filestorage>\n</zodb>\n"+
		"<zodb two>\n  database-name 2\n  <filestorage>\n    path "+d2+"\n  </filestorage>\n</zodb>\n"), 0o644)
	code, out, errs := runPackCmd("--config", conf, "--tid", "03f7a7d42ddddddd")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "2 ("+d2+"): packed") || !strings.Contains(out, "1 unreachable objects removed: 0x05\n") {
		t.Errorf("output %q", out)
	}
	// pack-gc false in the configuration: no GC (the gc fixture's packs).
	g1 := copyFixture(t, "../testdata/fs/multidb/gc/Data2.fs")
	os.WriteFile(conf, []byte("<zodb 2>\n  <filestorage>\n    path "+g1+"\n    pack-gc false\n  </filestorage>\n</zodb>\n"), 0o644)
	if code, _, errs := runPackCmd("--config", conf, "--tid", "03f7a2e82ccccccc"); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want, _ := os.ReadFile("../testdata/fs/multidb/gc/Data2.packed.fs")
	if got, _ := os.ReadFile(g1); !bytes.Equal(got, want) {
		t.Error("pack-gc false pack differs from ZODB's")
	}
	if code, _, _ := runPackCmd("--config", conf, g1); code != ExitUsage {
		t.Errorf("--config with files: exit %d", code)
	}
}

// The free-space pre-flight: enough for the input size passes at once; less
// than that asks a dry run for the packed size; less than that refuses
// before writing anything.
func TestPackFreeSpace(t *testing.T) {
	saved := freeSpace
	defer func() { freeSpace = saved }()
	packed, _ := os.ReadFile("../testdata/fs/basic.packed-now.fs") // 33226 bytes
	for _, tc := range []struct {
		free int64
		ok   bool
	}{{1 << 30, true}, {40000, true}, {int64(len(packed)) / 2, false}} { // 40000: less than the input (44699 + 1/8), more than the packed size
		freeSpace = func(string) (int64, error) { return tc.free, nil }
		fs := copyFixture(t, "../testdata/fs/basic.fs")
		before, _ := os.ReadFile(fs)
		code, _, errs := runPackCmd("--tid", "03f70d3450000000", fs)
		if tc.ok {
			if code != 0 {
				t.Errorf("free %d: exit %d: %s", tc.free, code, errs)
			}
			continue
		}
		if code != ExitFailure || !strings.Contains(errs, "basic.fs: not enough free space in ") {
			t.Errorf("free %d: exit %d, stderr %q", tc.free, code, errs)
		}
		if after, _ := os.ReadFile(fs); !bytes.Equal(after, before) {
			t.Errorf("free %d: the refused pack changed the file", tc.free)
		}
	}
}
