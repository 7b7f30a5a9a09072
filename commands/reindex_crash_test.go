package commands

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/fsformat"
)

// TestReindexCrash kills (SIGKILL) `zodbctl reindex` children at spread
// moments and at the moment its index is being written aside, on a file
// with no index, on a file with a stale index, and on a file with a damaged
// tail (which FileStorage would truncate). After every kill: the Data.fs
// is byte for byte untouched, and FILE.index is absent (if there was none),
// the old index or the complete new one, never a torn file. A reindex
// afterwards succeeds (the lock died with the child). TestReindexKilled
// (verify_test.go) checks the stale case with verify --index; this one adds
// the other starting points, the targeted kills and the Data.fs check.
// ZODBCTL_REINDEX_CRASH_ROUNDS sets the kills per case (default 8).
func TestReindexCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	rounds := 8
	if s := os.Getenv("ZODBCTL_REINDEX_CRASH_ROUNDS"); s != "" {
		fmt.Sscan(s, &rounds)
	}
	base := t.TempDir()
	half, full := makeReindexFiles(t, base)
	cases := []struct {
		name     string
		data     []byte
		oldIndex func(t *testing.T) []byte // nil: no index before
	}{
		{"no index", full, nil},
		{"stale index", full, func(t *testing.T) []byte { return indexOf(t, base, half) }},
		// A torn last transaction: FileStorage would truncate it; reindex
		// must index up to it and leave the bytes alone.
		{"damaged tail", append(slices.Clone(full), 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var old []byte
			if tc.oldIndex != nil {
				old = tc.oldIndex(t)
			}
			newIndex := indexOf(t, base, tc.data)
			if bytes.Equal(newIndex, old) {
				t.Fatal("the old and the new index are the same: the test would prove nothing")
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "Data.fs")
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			child := func() *exec.Cmd { return zodbctlChild("reindex", path) }
			start := time.Now()
			if out, err := child().CombinedOutput(); err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			took := time.Since(start)
			if got, _ := os.ReadFile(path + ".index"); !bytes.Equal(got, newIndex) {
				t.Fatal("a complete child run did not write the expected index")
			}

			var sawNone, sawOld, sawNew, duringWrite int
			for round := range 2 * rounds {
				os.Remove(path + ".index")
				if old != nil {
					if err := os.WriteFile(path+".index", old, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				cmd := child()
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				if round%2 == 0 {
					// Spread over (and a little past) a whole run.
					time.Sleep(time.Duration(rand.Int64N(int64(took) * 5 / 4)))
				} else if waitForTempFile(dir, took*20) {
					// The index is being written aside right now.
					duringWrite++
				}
				cmd.Process.Signal(syscall.SIGKILL)
				cmd.Wait()

				if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, tc.data) {
					t.Fatalf("round %d: Data.fs changed by a killed reindex (%v)", round, err)
				}
				got, err := os.ReadFile(path + ".index")
				switch {
				case os.IsNotExist(err) && old == nil:
					sawNone++
				case err != nil:
					t.Fatalf("round %d: %v", round, err)
				case old != nil && bytes.Equal(got, old):
					sawOld++
				case bytes.Equal(got, newIndex):
					sawNew++
				default:
					t.Fatalf("round %d: FILE.index is neither absent, the old one nor the new one (%d bytes)", round, len(got))
				}
			}
			if _, stderr, exit := run(t, "reindex", path); exit != 0 {
				t.Fatalf("reindex after the kills: exit %d: %s", exit, stderr)
			}
			if got, _ := os.ReadFile(path + ".index"); !bytes.Equal(got, newIndex) {
				t.Fatal("reindex after the kills wrote another index")
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, tc.data) {
				t.Fatal("Data.fs changed")
			}
			if duringWrite == 0 {
				t.Log("no kill landed while the index was written aside (machine too slow or too fast to see the temp file)")
			}
			t.Logf("%d kills over a %v run: %d no index, %d old, %d new; %d while the index was written aside",
				2*rounds, took.Round(time.Millisecond), sawNone, sawOld, sawNew, duringWrite)
		})
	}
}

// waitForTempFile polls dir until a file other than Data.fs, its index and
// lock appears (renameio's temporary index), for at most d.
func waitForTempFile(dir string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	known := map[string]bool{"Data.fs": true, "Data.fs.index": true, "Data.fs.lock": true}
	seen := map[string]bool{}
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			seen[e.Name()] = true // temp files of earlier kills
		}
	}
	for time.Now().Before(deadline) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return false
		}
		for _, e := range entries {
			if n := e.Name(); !known[n] && !seen[n] {
				return true
			}
		}
	}
	return false
}

// makeReindexFiles builds a Data.fs of 110,000 small objects in 110
// transactions and returns its first 100 transactions and the whole file.
func makeReindexFiles(t *testing.T, dir string) (half, full []byte) {
	t.Helper()
	path := filepath.Join(dir, "gen.fs")
	a, err := fsformat.Create(path, fsformat.MapIndex{})
	if err != nil {
		t.Fatal(err)
	}
	rec := []byte("\x80\x03cm\nC\nq\x00.\x80\x03}q\x01(X\x01\x00\x00\x00aq\x02K\x01u.")
	commit := func(txns, perTxn, base int) {
		for i := range txns {
			if _, err := a.Begin(fsformat.TxnMeta{Description: []byte(fmt.Sprintf("txn %d", base+i))}); err != nil {
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
	if half, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	commit(10, 1000, 100000)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if full, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	return half, full
}

// indexOf reindexes a copy of data in process and returns the index bytes.
func indexOf(t *testing.T, dir string, data []byte) []byte {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("ref-%d.fs", len(data)))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, exit := run(t, "reindex", path); exit != 0 {
		t.Fatalf("reindex: exit %d: %s", exit, stderr)
	}
	b, err := os.ReadFile(path + ".index")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
