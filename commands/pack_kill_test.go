package commands

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/fsformat"
)

// writePackKillFile writes a Data.fs whose pack drops most of it: the root
// references oids 1..5000; oids 1..10000 are stored 10 times each (100
// transactions of 1000 records), so a GC pack keeps the root and the last
// revision of 5000 objects.
func writePackKillFile(t *testing.T, path string) {
	a, err := fsformat.Create(path, fsformat.MapIndex{})
	if err != nil {
		t.Fatal(err)
	}
	root := []byte("\x80\x03cm\nC\nq\x00.\x80\x03](")
	for oid := uint64(1); oid <= 5000; oid++ {
		root = append(root, 'C', 8)
		root = binary.BigEndian.AppendUint64(root, oid)
		root = append(root, "cm\nC\n\x86Q"...)
	}
	root = append(root, "e."...)
	leaf := []byte("\x80\x03cm\nC\nq\x00.\x80\x03}q\x01(X\x01\x00\x00\x00aq\x02K\x01u.")
	for i := range 100 {
		if _, err := a.Begin(fsformat.TxnMeta{}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if _, err := a.Store(0, root); err != nil {
				t.Fatal(err)
			}
		}
		for j := range 1000 {
			if _, err := a.Store(fsformat.Oid(1+(i*1000+j)%10000), leaf); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestPackKilled kills (SIGKILL) a `zodbctl pack` child at a random moment
// of its run (ZODBCTL_PACK_KILL_ROUNDS times, default 10), not only at the
// step boundaries TestKillDuringPack stops at. After each kill Data.fs must
// be the original or the finished packed file byte for byte, verify clean,
// keep the original as Data.fs.old once packed, and have no index or a
// correct one; a new pack must then give the packed file.
func TestPackKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	rounds := 10
	if s := os.Getenv("ZODBCTL_PACK_KILL_ROUNDS"); s != "" {
		fmt.Sscan(s, &rounds)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	writePackKillFile(t, path)
	original, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	reset := func() {
		for _, suffix := range []string{"", ".old", ".index", ".pack", ".lock"} {
			os.Remove(path + suffix)
		}
		if err := os.WriteFile(path, original, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	child := func() *exec.Cmd { return zodbctlChild("pack", path) }
	// One whole pack by a child gives the expected bytes and the time the
	// kills are spread over.
	reset()
	start := time.Now()
	if out, err := child().CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	full := time.Since(start)
	packed, err := os.ReadFile(path)
	if err != nil || bytes.Equal(packed, original) || len(packed) > len(original)/5 {
		t.Fatalf("the child did not pack (%d of %d bytes, %v)", len(packed), len(original), err)
	}

	// check reports whether Data.fs is the packed file. Once packed,
	// Data.fs.old must be the original if keepOld (a pack that found
	// nothing to do removed it, as FileStorage's does).
	check := func(round int, after string, keepOld bool) (wasPacked bool) {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("round %d %s: Data.fs gone: %v", round, after, err)
		}
		switch {
		case bytes.Equal(got, original):
		case bytes.Equal(got, packed):
			wasPacked = true
			old, err := os.ReadFile(path + ".old")
			if keepOld && (err != nil || !bytes.Equal(old, original)) {
				t.Fatalf("round %d %s: packed, but Data.fs.old is not the original (%v)", round, after, err)
			}
			if !keepOld && err == nil {
				t.Fatalf("round %d %s: a pack with nothing to do kept Data.fs.old", round, after)
			}
		default:
			t.Fatalf("round %d %s: Data.fs is neither the original nor the packed file (%d bytes)", round, after, len(got))
		}
		if out, errs, exit := run(t, "verify", path); exit != 0 {
			t.Fatalf("round %d %s: verify exit %d\n%s%s", round, after, exit, out, errs)
		}
		if _, err := os.Stat(path + ".index"); err == nil {
			if out, _, exit := run(t, "verify", "--index", path); exit != 0 {
				t.Fatalf("round %d %s: the index left beside Data.fs is wrong: exit %d\n%s", round, after, exit, out)
			}
		}
		return wasPacked
	}

	var sawOriginal, sawPacked, midWrite int
	for round := range rounds {
		reset()
		killWithin(t, child(), full)
		if _, err := os.Stat(path + ".pack"); err == nil {
			midWrite++ // killed while Data.fs.pack was being written
		}
		packedByKilled := check(round, "after the kill", true)
		if packedByKilled {
			sawPacked++
		} else {
			sawOriginal++
		}
		// The flock died with the child: packing again finishes the job.
		if _, errs, exit := run(t, "pack", path); exit != 0 {
			t.Fatalf("round %d: pack after the kill: exit %d: %s", round, exit, errs)
		}
		if !check(round, "after a new pack", !packedByKilled) {
			t.Fatalf("round %d: a new pack did not give the packed file", round)
		}
	}
	t.Logf("%d kills over a %v pack: %d left the original (%d of them mid-write, Data.fs.pack left), %d the packed file", rounds, full.Round(time.Millisecond), sawOriginal, midWrite, sawPacked)
}
