package pack

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/zodbctl/zodbctl/fsformat"
)

const fixtures = "../../testdata/fs"

type packFact struct {
	Error   *string `json:"error"`
	GC      bool    `json:"gc"`
	StopTid string  `json:"stop_tid"`
}

// packFacts reads every pack of facts.json: packed file (relative to
// testdata/fs) → facts.
func packFacts(t testing.TB) map[string]packFact {
	b, err := os.ReadFile(filepath.Join(fixtures, "facts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]struct {
		Packs map[string]packFact `json:"packs"`
	}
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	out := map[string]packFact{}
	for _, v := range all {
		for k, p := range v.Packs {
			out[k] = p
		}
	}
	return out
}

func parseTid(t testing.TB, s string) fsformat.Tid {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return fsformat.Tid(v)
}

func copyFile(t testing.TB, src, dst string) {
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyTree(t testing.TB, src, dst string) {
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		copyFile(t, p, filepath.Join(dst, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// sourceOf maps a packed fixture to the file it was packed from.
func sourceOf(packed string) string {
	switch {
	case packed == "blobs-packed/Data.fs":
		return "blobs/Data.fs"
	case strings.HasPrefix(packed, "multidb/gc/"):
		return strings.Replace(packed, ".packed.fs", ".fs", 1)
	default:
		i := strings.Index(packed, ".packed-")
		return packed[:i] + ".fs"
	}
}

func listTree(t testing.TB, dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		b, _ := os.ReadFile(p)
		out = append(out, rel+" "+strconv.Itoa(len(b))+" "+string(b[:min(len(b), 64)]))
		return nil
	})
	sort.Strings(out)
	return out
}

// TestPackFixtures packs each source fixture at the stop tid of every pack
// ZODB made of it and compares the bytes of Data.fs, the .index (where ZODB's
// is shipped), Data.fs.old and the blob directory.
func TestPackFixtures(t *testing.T) {
	for packed, fact := range packFacts(t) {
		t.Run(packed, func(t *testing.T) {
			src := sourceOf(packed)
			dir := t.TempDir()
			path := filepath.Join(dir, "Data.fs")
			copyFile(t, filepath.Join(fixtures, src), path)
			blobDir := ""
			if strings.HasPrefix(src, "blobs/") {
				blobDir = filepath.Join(dir, "blobs")
				copyTree(t, filepath.Join(fixtures, "blobs/blobs"), blobDir)
			}
			input, _ := os.ReadFile(path)
			var warnings []string
			res, err := Pack(context.Background(), path, blobDir, Options{
				Stop: parseTid(t, fact.StopTid), GC: fact.GC,
				Warn: func(s string) { warnings = append(warnings, s) },
			})
			if err != nil {
				t.Fatal(err)
			}
			if fact.Error != nil {
				// ZODB failed (dangling reference); zodbctl packs and reports.
				if len(res.Dangling) == 0 {
					t.Errorf("ZODB failed with %s; no dangling reference reported", *fact.Error)
				}
				return
			}
			got, _ := os.ReadFile(path)
			want, err := os.ReadFile(filepath.Join(fixtures, packed))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("packed file differs: got %d bytes, want %d (result %+v)", len(got), len(want), res)
			}
			if !res.Packed {
				// A no-op (redundant pack): nothing else may change.
				if res.NoOp == "" {
					t.Error("not packed and no reason given")
				}
				if _, err := os.Stat(path + ".index"); err == nil {
					t.Error("index written by a no-op pack")
				}
				return
			}
			old, err := os.ReadFile(path + ".old")
			if err != nil || !bytes.Equal(old, input) {
				t.Errorf("Data.fs.old is not the input (%v)", err)
			}
			if wantIdx, err := os.ReadFile(filepath.Join(fixtures, packed+".index")); err == nil {
				gotIdx, err := os.ReadFile(path + ".index")
				if err != nil || !bytes.Equal(gotIdx, wantIdx) {
					t.Errorf("index differs from ZODB's (%v)", err)
				}
			}
			if blobDir != "" {
				g, w := listTree(t, blobDir), listTree(t, filepath.Join(fixtures, "blobs-packed/blobs"))
				if strings.Join(g, "\n") != strings.Join(w, "\n") {
					t.Errorf("blob directory:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
				}
				g, w = listTree(t, blobDir+".old"), listTree(t, filepath.Join(fixtures, "blobs/blobs"))
				if strings.Join(g, "\n") != strings.Join(w, "\n") {
					t.Errorf("blob .old directory:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
				}
			}
		})
	}
}

// A transaction committed while the pack runs (here: right after phase 2)
// is carried over under CommitLock: the result is what packing the grown
// file gives.
func TestPackCarriesOverConcurrentCommits(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	copyFile(t, filepath.Join(fixtures, "basic.fs"), path)
	stop := parseTid(t, "03f6fee19ccccccc") // mid: later transactions exist
	commit := func(p string) {
		a, err := fsformat.OpenAppender(p, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if _, err := a.Begin(fsformat.TxnMeta{Description: []byte("during pack")}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Store(1, []byte("\x80\x03cmymod\nThing\nq\x00.\x80\x03}q\x01.")); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := a.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	locked, swapped := false, false
	res, err := Pack(context.Background(), path, "", Options{Stop: stop, GC: true,
		Hook: func(p string) {
			if p == "copied" {
				commit(path)
			}
		},
		CommitLock: func() func() { locked = true; return func() { locked = false } },
		Swapped: func(r *Result) error {
			if !locked {
				t.Error("Swapped called without the commit lock")
			}
			swapped = true
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !swapped || locked {
		t.Errorf("swapped %v, still locked %v", swapped, locked)
	}
	// The same input packed offline.
	ref := filepath.Join(dir, "ref.fs")
	copyFile(t, path+".old", ref)
	if _, err := Pack(context.Background(), ref, "", Options{Stop: stop, GC: true}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want, _ := os.ReadFile(ref)
	if !bytes.Equal(got, want) || res.SizeAfter != int64(len(want)) {
		t.Fatalf("online pack: %d bytes, offline pack of the grown file: %d", len(got), len(want))
	}
	gi, _ := os.ReadFile(path + ".index")
	wi, _ := os.ReadFile(ref + ".index")
	if !bytes.Equal(gi, wi) {
		t.Error("index differs")
	}
	if !bytes.Contains(got, []byte("during pack")) {
		t.Error("the concurrent transaction is missing")
	}
}

// With DiscardOld (pack-keep-old false) neither Data.fs.old nor the blob
// directory's .old remains; the blob directory is the same.
func TestPackBlobsDiscardOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	copyFile(t, filepath.Join(fixtures, "blobs/Data.fs"), path)
	blobDir := filepath.Join(dir, "blobs")
	copyTree(t, filepath.Join(fixtures, "blobs/blobs"), blobDir)
	// A stale .old from an earlier pack is removed first.
	os.MkdirAll(blobDir+".old/junk", 0o755)
	res, err := Pack(context.Background(), path, blobDir, Options{Stop: parseTid(t, "0x03f88148c3333333"), GC: true, DiscardOld: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.BlobFiles != 2 || res.BlobDirs != 1 {
		t.Errorf("removed %d blob files and %d directories, want 2 and 1", res.BlobFiles, res.BlobDirs)
	}
	for _, p := range []string{path + ".old", blobDir + ".old"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s kept", p)
		}
	}
	g, w := listTree(t, blobDir), listTree(t, filepath.Join(fixtures, "blobs-packed/blobs"))
	if strings.Join(g, "\n") != strings.Join(w, "\n") {
		t.Errorf("blob directory:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

// Progress never goes backwards across the files of a multi-database pack
// and ends at its total.
func TestPackProgress(t *testing.T) {
	dir := t.TempDir()
	var dbs []Database
	for _, n := range []string{"1", "2"} {
		p := filepath.Join(dir, "Data"+n+".fs")
		copyFile(t, filepath.Join(fixtures, "multidb/Data"+n+".fs"), p)
		dbs = append(dbs, Database{Name: n, Path: p})
	}
	var last, total int64
	_, err := PackMulti(context.Background(), dbs, Options{Stop: parseTid(t, "03f7a7d42ddddddd"), GC: true,
		Progress: func(done, tot int64) {
			if done < last {
				t.Errorf("progress went back from %d to %d", last, done)
			}
			last, total = done, tot
		}})
	if err != nil {
		t.Fatal(err)
	}
	if last != total || total == 0 {
		t.Errorf("progress ended at %d of %d", last, total)
	}
}
