package fsformat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// boundaries lists the end of every transaction of the file (the positions
// an index can be saved at).
func boundaries(t *testing.T, path string) []int64 {
	t.Helper()
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []int64
	for txn, err := range f.Transactions(IterOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, txn.Next())
	}
	return out
}

// scanPrefix is the index (and last tid) a full scan of the file's first n
// bytes builds: what a saved index at n holds.
func scanPrefix(t *testing.T, data []byte, n int64) (MapIndex, ScanResult) {
	t.Helper()
	idx := MapIndex{}
	res, err := ScanIndexReader(bytes.NewReader(data[:n]), n, "Data.fs", idx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return idx, res
}

type logs []string

func (l *logs) warn(m string) { *l = append(*l, m) }

// TestScanIndexFromEveryBoundary: for every fixture (good and damaged) and
// every transaction boundary an index could have been saved at, the check
// passes wherever FileStorage's would (a non-empty, non-undone transaction
// before it), and check + scan from there give the full scan's index, end,
// last tid, truncation decision and messages.
func TestScanIndexFromEveryBoundary(t *testing.T) {
	var files []string
	for _, fx := range goodFixtures {
		files = append(files, filepath.Join(fixtures, fx.path))
	}
	damaged, _ := filepath.Glob(filepath.Join(fixtures, "damaged", "*.fs"))
	files = append(files, damaged...)
	checked := 0
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		full := MapIndex{}
		var fullLogs logs
		want, wantErr := ScanIndexReader(bytes.NewReader(data), int64(len(data)), "Data.fs", full, fullLogs.warn)
		// Candidate boundaries by following the lengths, kept where a scan
		// of the prefix ends cleanly: where a clean close could have
		// saved an index.
		var ends []int64
		for pos := int64(FileHeaderLen); pos+TxnHeaderLen <= int64(len(data)); {
			h := ParseTxnHeader(data[pos:])
			if h.Len < TxnHeaderLen || pos+h.Len+TrailerLen > int64(len(data)) {
				break
			}
			pos += h.Len + TrailerLen
			if pos < 100 {
				continue
			}
			r, err := ScanIndexReader(bytes.NewReader(data[:pos]), pos, "x", MapIndex{}, nil)
			if err == nil && r.Truncate < 0 && r.End == pos {
				ends = append(ends, pos)
			}
		}
		for _, pos := range ends {
			prefix, pres := scanPrefix(t, data, pos)
			var gotLogs logs
			ltid, err := CheckSavedIndex(bytes.NewReader(data), int64(len(data)), "Data.fs", prefix, pos)
			if err != nil {
				if !errors.Is(err, ErrIndexUnusable) {
					t.Fatalf("%s at %d: %v", path, pos, err)
				}
				// FileStorage refuses a good index only when the
				// transactions back to the start are all empty or undone,
				// or the last one has a status other than ' ', 'p', 'u'.
				if len(prefix) != 0 && !strings.Contains(err.Error(), "transaction status") {
					t.Errorf("%s at %d: index of %d oids refused: %v", path, pos, len(prefix), err)
				}
				continue
			}
			if ltid != pres.LastTid {
				t.Errorf("%s at %d: check's last tid %s, prefix scan's %s", path, pos, ltid, pres.LastTid)
			}
			// The prefix scan's own messages come first in the full scan.
			var prefixLogs logs
			ScanIndexReader(bytes.NewReader(data[:pos]), pos, "Data.fs", MapIndex{}, prefixLogs.warn)
			gotLogs = append(gotLogs, prefixLogs...)
			got, err := ScanIndexFrom(bytes.NewReader(data), int64(len(data)), "Data.fs", prefix, pos, ltid, gotLogs.warn)
			if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
				t.Errorf("%s at %d: error %v, full scan %v", path, pos, err, wantErr)
				continue
			}
			checked++
			if err != nil {
				continue
			}
			if got.End != want.End || got.LastTid != want.LastTid || got.Truncate != want.Truncate ||
				got.CopyTail != want.CopyTail || got.TailWarning != want.TailWarning || got.Magic != want.Magic {
				t.Errorf("%s at %d: got %+v, full scan %+v", path, pos, got, want)
			}
			if !maps.Equal(prefix, full) {
				t.Errorf("%s at %d: index differs from the full scan's", path, pos)
			}
			if !slices.Equal(gotLogs, fullLogs) {
				t.Errorf("%s at %d: messages\n%q\nfull scan\n%q", path, pos, gotLogs, fullLogs)
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d positions checked", checked)
	}
}

// TestCheckSavedIndexRefuses: positions and indexes FileStorage would not
// trust are refused with ErrIndexUnusable, whatever the bytes there.
func TestCheckSavedIndexRefuses(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(fixtures, "basic.fs"))
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(data))
	full, _ := scanPrefix(t, data, size)
	other, err := os.ReadFile(filepath.Join(fixtures, "multidb/Data1.fs"))
	if err != nil {
		t.Fatal(err)
	}
	otherIdx, _ := scanPrefix(t, other, int64(len(other)))
	ends := boundaries(t, filepath.Join(fixtures, "basic.fs"))
	isEnd := map[int64]bool{}
	for _, e := range ends {
		isEnd[e] = true
	}
	check := func(idx Index, pos int64) error {
		_, err := CheckSavedIndex(bytes.NewReader(data), size, "Data.fs", idx, pos)
		return err
	}
	if err := check(full, size); err != nil {
		t.Fatalf("the file's own index: %v", err)
	}
	for _, c := range []struct {
		name string
		idx  Index
		pos  int64
	}{
		{"past EOF", full, size + 8},
		{"far past EOF", full, 1 << 40},
		{"below 100", full, 99},
		{"negative", full, -5},
		{"other file's index", otherIdx, size},
		{"empty index", MapIndex{}, size},
	} {
		if err := check(c.idx, c.pos); !errors.Is(err, ErrIndexUnusable) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// Every position that is not a transaction boundary.
	for pos := int64(100); pos <= size; pos++ {
		if isEnd[pos] {
			continue
		}
		if err := check(full, pos); !errors.Is(err, ErrIndexUnusable) {
			t.Errorf("position %d (not a boundary): %v", pos, err)
		}
	}
	// A stale index (of an earlier state) at the current end: the last
	// transaction's records are not where it says.
	last := ends[len(ends)-1]
	stale, _ := scanPrefix(t, data, ends[len(ends)-2])
	if err := check(stale, last); !errors.Is(err, ErrIndexUnusable) {
		t.Errorf("stale index at the end: %v", err)
	}
}

// TestOpenAppenderAtAfterCrash: an index saved at a clean close, then more
// commits, then a kill in the middle of one: OpenAppenderAt gives what
// OpenAppender gives (same index, end, last tid, same .tr0 and truncation),
// and appending goes on.
func TestOpenAppenderAtAfterCrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	a, err := Create(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	commit := func(a *Appender, oids ...Oid) {
		t.Helper()
		if _, err := a.Begin(TxnMeta{User: []byte("u"), Description: []byte("d")}); err != nil {
			t.Fatal(err)
		}
		for _, o := range oids {
			if _, err := a.Store(o, []byte("state of "+o.String())); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		commit(a, Oid(i), Oid(i+1), Oid(i+2))
	}
	savedPos := a.Pos()
	saved := maps.Clone(a.idx.(MapIndex))
	for i := range 5 {
		commit(a, Oid(3*i), Oid(20+i))
	}
	// Interrupted commit: header and records out, no status.
	if _, err := a.Begin(TxnMeta{}); err != nil {
		t.Fatal(err)
	}
	a.Store(1, []byte("never committed"))
	a.w.Flush()
	a.f.Close() // kill -9: no Abort

	data, _ := os.ReadFile(path)
	ref := filepath.Join(t.TempDir(), "Data.fs")
	os.WriteFile(ref, data, 0o644)

	var wantLogs, gotLogs logs
	want, err := OpenAppender(ref, nil, wantLogs.warn)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	got, err := OpenAppenderAt(path, saved, savedPos, gotLogs.warn)
	if err != nil {
		t.Fatal(err)
	}
	if got.Pos() != want.Pos() || got.LastTid() != want.LastTid() || got.LastTxnPos() != want.LastTxnPos() {
		t.Errorf("pos %d last %s at %d; full scan: %d %s %d", got.Pos(), got.LastTid(), got.LastTxnPos(),
			want.Pos(), want.LastTid(), want.LastTxnPos())
	}
	if !maps.Equal(saved, want.idx.(MapIndex)) {
		t.Error("index differs from the full scan's")
	}
	norm := func(l logs, d string) string { return strings.ReplaceAll(strings.Join(l, "\n"), d, "") }
	if norm(gotLogs, dir) != norm(wantLogs, filepath.Dir(ref)) || len(gotLogs) != 2 {
		t.Errorf("messages %q, full scan %q", gotLogs, wantLogs)
	}
	tr0, _ := os.ReadFile(path + ".tr0")
	wtr0, _ := os.ReadFile(ref + ".tr0")
	if len(tr0) == 0 || !bytes.Equal(tr0, wtr0) {
		t.Errorf(".tr0: %d bytes, full scan's %d", len(tr0), len(wtr0))
	}
	commit(got, 1)
	commit(want, 1)
	got.Close()
	a1, _ := os.ReadFile(path)
	a2, _ := os.ReadFile(ref)
	if len(a1) != len(a2) {
		t.Errorf("after one more commit: %d bytes, full-scan appender %d", len(a1), len(a2))
	}
}

// TestOpenAppenderAtRefusesUntouched: a refused index leaves the file and
// the index as they were.
func TestOpenAppenderAtRefusesUntouched(t *testing.T) {
	src, _ := os.ReadFile(filepath.Join(fixtures, "damaged", "basic-checkpoint.fs"))
	path := filepath.Join(t.TempDir(), "Data.fs")
	os.WriteFile(path, src, 0o644)
	idx := MapIndex{1: 12345}
	for _, pos := range []int64{-1, 50, 101, int64(len(src)) + 1, int64(len(src))} {
		_, err := OpenAppenderAt(path, idx, pos, nil)
		if !errors.Is(err, ErrIndexUnusable) {
			t.Errorf("pos %d: %v", pos, err)
		}
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(after, src) || len(idx) != 1 || idx[1] != 12345 {
		t.Error("a refused open changed the file or the index")
	}
	if _, err := os.Stat(path + ".tr0"); err == nil {
		t.Error("a refused open wrote .tr0")
	}
}

// TestSkipViewReads: the synthetic header and trailer show through reads of
// any alignment, and nothing else changes.
func TestSkipViewReads(t *testing.T) {
	data := make([]byte, 300)
	for i := range data {
		data[i] = byte(i)
	}
	v := &skipView{f: bytes.NewReader(data), start: 200}
	h := TxnHeader{Tid: 7, Len: 200 - 12, Status: StatusUndone}
	h.AppendTo(v.head[:0])
	binary.BigEndian.PutUint64(v.trailer[:], uint64(h.Len))
	want := slices.Clone(data)
	copy(want[4:], v.head[:])
	copy(want[192:], v.trailer[:])
	for off := 0; off < 300; off += 3 {
		for _, n := range []int{1, 5, 30, 200, 400} {
			p := make([]byte, n)
			m, err := v.ReadAt(p, int64(off))
			if err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if !bytes.Equal(p[:m], want[off:off+m]) {
				t.Fatalf("read %d at %d differs", n, off)
			}
		}
	}
}

// FuzzScanIndexFrom: for any bytes and any position, the check and the scan
// from a saved index neither panic nor disagree with a full scan: when the
// file's first pos bytes scan cleanly to pos (an index a clean close could
// have saved there) and the check passes, the index, end, last tid and
// truncation decision are the full scan's.
func FuzzScanIndexFrom(f *testing.F) {
	for _, name := range []string{"basic.fs", "damaged/basic-checkpoint.fs", "damaged/basic-badstatus.fs"} {
		data, err := os.ReadFile(filepath.Join(fixtures, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[:min(len(data), 6000)], int64(2000))
	}
	f.Fuzz(func(t *testing.T, data []byte, pos int64) {
		size := int64(len(data))
		prefix := MapIndex{}
		clean := false
		if pos >= 0 && pos <= size {
			r, err := ScanIndexReader(bytes.NewReader(data[:pos]), pos, "x", prefix, nil)
			clean = err == nil && r.Truncate < 0 && r.End == pos
		}
		if !clean {
			// Garbage index: any map at any position must not panic.
			prefix = MapIndex{0: pos, 1: 27}
		}
		ltid, err := CheckSavedIndex(bytes.NewReader(data), size, "x", prefix, pos)
		if err != nil {
			if !errors.Is(err, ErrIndexUnusable) {
				t.Fatalf("check: %v", err)
			}
			return
		}
		got, gerr := ScanIndexFrom(bytes.NewReader(data), size, "x", prefix, pos, ltid, nil)
		if !clean {
			return
		}
		full := MapIndex{}
		want, werr := ScanIndexReader(bytes.NewReader(data), size, "x", full, nil)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("error %v, full scan %v", gerr, werr)
		}
		if gerr != nil {
			return
		}
		if got.End != want.End || got.LastTid != want.LastTid || got.Truncate != want.Truncate || !maps.Equal(prefix, full) {
			t.Fatalf("got %+v, full scan %+v", got, want)
		}
	})
}
