package commands

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/fsindex"
)

func copyFixture(t *testing.T, src string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func runReindexCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(append([]string{"zodbctl", "reindex"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// reindex reproduces, byte for byte, the index FileStorage wrote for every
// fixture that has one.
func TestReindexFixtures(t *testing.T) {
	indexes, _ := filepath.Glob("../testdata/fs/*.fs.index")
	if len(indexes) < 5 {
		t.Fatalf("fixtures: %v", indexes)
	}
	for _, idxPath := range indexes {
		fs := copyFixture(t, strings.TrimSuffix(idxPath, ".index"))
		code, out, errs := runReindexCmd(fs)
		// Warnings FileStorage logs while scanning (e.g. "incorrect previous
		// pointer" in packed files) go to stderr.
		if code != 0 {
			t.Fatalf("%s: exit %d, stderr %q", fs, code, errs)
		}
		if strings.Contains(idxPath, "packed-mid") != (errs != "") {
			t.Errorf("%s: stderr %q", fs, errs)
		}
		if errs != "" && errs != "zodbctl reindex: "+fs+" incorrect previous pointer at 32970\n" {
			t.Errorf("%s: warning %q", fs, errs)
		}
		want, _ := os.ReadFile(idxPath)
		got, err := os.ReadFile(fs + ".index")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: index differs from FileStorage's (%d vs %d bytes)", filepath.Base(fs), len(got), len(want))
		}
		if !strings.HasSuffix(out, "objects, data up to "+strconv.Itoa(int(fileSize(t, fs)))+"\n") {
			t.Errorf("%s: summary %q", fs, out)
		}
	}
}

func fileSize(t testing.TB, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

var (
	reOpenOK   = regexp.MustCompile(`(?m)^open: ok$`)
	reOids     = regexp.MustCompile(`(?m)^oids in index: (\d+)$`)
	reEnd      = regexp.MustCompile(`(?m)^end of data \(_pos\): (\d+)$`)
	reHighest  = regexp.MustCompile(`(?m)^highest oid: 0x([0-9a-f]+)$`)
	reIndexNew = regexp.MustCompile(`(?m)^  \S+\.index (\d+) bytes \(new\)$`)
)

// For every open report of a writable FileStorage open (damaged files
// included), reindex finds the same number of oids, end of data and highest
// oid, and writes an index of the size FileStorage wrote on close; where
// FileStorage refused to open, reindex fails.
func TestReindexMatchesOpenReports(t *testing.T) {
	reports, _ := filepath.Glob("../testdata/fs/*/*.open-rw.txt")
	more, _ := filepath.Glob("../testdata/fs/*.open-rw.txt")
	reports = append(reports, more...)
	if len(reports) < 10 {
		t.Fatalf("reports: %v", reports)
	}
	for _, rep := range reports {
		text, _ := os.ReadFile(rep)
		fs := copyFixture(t, strings.TrimSuffix(rep, ".open-rw.txt"))
		code, _, errs := runReindexCmd(fs)
		name := filepath.Base(fs)
		if !reOpenOK.Match(text) {
			if code == 0 {
				t.Errorf("%s: FileStorage refused to open, reindex succeeded", name)
			} else if !strings.HasPrefix(errs, "zodbctl reindex: ") || strings.Count(errs, "\n") != 1 {
				t.Errorf("%s: error output %q", name, errs)
			}
			continue
		}
		if code != 0 {
			t.Errorf("%s: exit %d: %s", name, code, errs)
			continue
		}
		x, pos, err := fsindex.Read(fs + ".index")
		if err != nil {
			t.Fatal(err)
		}
		if m := reOids.FindSubmatch(text); m == nil || string(m[1]) != strconv.Itoa(x.Len()) {
			t.Errorf("%s: %d oids, report says %s", name, x.Len(), m)
		}
		if m := reEnd.FindSubmatch(text); m == nil || string(m[1]) != strconv.FormatUint(pos, 10) {
			t.Errorf("%s: pos %d, report says %s", name, pos, m)
		}
		if m := reHighest.FindSubmatch(text); m != nil {
			max, _ := x.MaxOid()
			if want, _ := strconv.ParseUint(string(m[1]), 16, 64); want != max {
				t.Errorf("%s: highest oid %x, report says %x", name, max, want)
			}
		}
		if m := reIndexNew.FindSubmatch(text); m != nil {
			if sz := fileSize(t, fs+".index"); strconv.FormatInt(sz, 10) != string(m[1]) {
				t.Errorf("%s: index of %d bytes, FileStorage wrote %s", name, sz, m[1])
			}
		}
	}
}

func TestReindexJSON(t *testing.T) {
	fs := copyFixture(t, "../testdata/fs/basic.fs")
	code, out, errs := runReindexCmd("--json", fs)
	want := `{"index":"` + fs + `.index","objects":132,"pos":44699}` + "\n"
	if code != 0 || out != want || errs != "" {
		t.Errorf("got %d %q %q, want %q", code, out, errs, want)
	}
}

func TestReindexErrors(t *testing.T) {
	if code, _, errs := runReindexCmd(); code != ExitUsage || !strings.Contains(errs, "expected one FILE") {
		t.Errorf("no args: %d %q", code, errs)
	}
	missing := filepath.Join(t.TempDir(), "nope.fs")
	if code, _, errs := runReindexCmd(missing); code != ExitFailure || !strings.Contains(errs, "nope.fs") {
		t.Errorf("missing: %d %q", code, errs)
	}
	if _, err := os.Stat(missing + ".lock"); !os.IsNotExist(err) {
		t.Errorf("missing file: a lock file was left: %v", err)
	}
	// A storage locked by another process (a running server) is refused.
	fs := copyFixture(t, "../testdata/fs/basic.fs")
	lf, err := os.OpenFile(fs+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runReindexCmd(fs)
	if code != ExitFailure || !strings.Contains(errs, fs+".lock is locked by another process") {
		t.Errorf("locked: %d %q", code, errs)
	}
	if _, err := os.Stat(fs + ".index"); !os.IsNotExist(err) {
		t.Errorf("index written while locked")
	}
	syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	if code, _, errs := runReindexCmd(fs); code != 0 {
		t.Errorf("after unlock: %d %q", code, errs)
	}
	// Not a FileStorage.
	bad := filepath.Join(t.TempDir(), "bad.fs")
	os.WriteFile(bad, []byte("XXXX not a storage"), 0o644)
	if code, _, errs := runReindexCmd(bad); code != ExitFailure || !strings.Contains(errs, "bad.fs") {
		t.Errorf("bad file: %d %q", code, errs)
	}
}

// BenchmarkReindex rebuilds the index of a generated file of 1M small
// objects in 10,000 transactions (~110 MB), and reports the throughput next
// to a plain read of the file (what `cat` does).
//
//	go test -run XXX -bench Reindex -benchtime 3x ./commands/
func BenchmarkReindex(b *testing.B) {
	dir := b.TempDir()
	fs := filepath.Join(dir, "Data.fs")
	a, err := fsformat.Create(fs, nil)
	if err != nil {
		b.Fatal(err)
	}
	rec := bytes.Repeat([]byte("x"), 60)
	for t := 0; t < 10000; t++ {
		if _, err := a.Begin(fsformat.TxnMeta{}); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			if _, err := a.Store(fsformat.Oid(t*100+i), rec); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := a.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		b.Fatal(err)
	}
	size := fileSize(b, fs)
	var read time.Duration
	for range 3 {
		start := time.Now()
		f, _ := os.Open(fs)
		io.Copy(io.Discard, bufio.NewReaderSize(f, 1<<20))
		f.Close()
		if d := time.Since(start); read == 0 || d < read {
			read = d
		}
	}
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		if code, _, errs := runReindexCmd(fs); code != 0 {
			b.Fatal(errs)
		}
	}
	b.ReportMetric(float64(read.Nanoseconds()), "read-ns")
}
