package pack

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/fsindex"
)

const crashStop = fsformat.Tid(0x03f70d3450000000) // basic.packed-now.fs

// TestCrashChild is the child process of TestKillDuringPack: it packs
// $ZODBCTL_PACK_CRASH_FILE and, at the hook point $ZODBCTL_PACK_CRASH_POINT,
// says so on stdout and waits to be killed.
func TestCrashChild(t *testing.T) {
	path, point := os.Getenv("ZODBCTL_PACK_CRASH_FILE"), os.Getenv("ZODBCTL_PACK_CRASH_POINT")
	if path == "" {
		t.Skip("child process of TestKillDuringPack")
	}
	_, err := Pack(context.Background(), path, "", Options{Stop: crashStop, GC: true,
		Hook: func(p string) {
			if p == point {
				fmt.Printf("AT %s\n", p)
				os.Stdout.Sync()
				time.Sleep(time.Minute)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("DONE")
}

// TestKillDuringPack kills (SIGKILL) a pack at each hook point and checks
// that Data.fs is then the original or the packed file, verifies, loads
// every object, that an index present matches the file, and that packing
// again gives ZODB's result.
func TestKillDuringPack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	input, err := os.ReadFile(filepath.Join(fixtures, "basic.fs"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(fixtures, "basic.packed-now.fs"))
	wantIdx, _ := os.ReadFile(filepath.Join(fixtures, "basic.packed-now.fs.index"))
	for _, point := range []string{"gc", "copied", "written", "linked", "unindexed", "renamed", "indexed"} {
		t.Run(point, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "Data.fs")
			if err := os.WriteFile(path, input, 0o644); err != nil {
				t.Fatal(err)
			}
			// A stale index and .pack from an earlier run must not matter.
			copyFile(t, filepath.Join(fixtures, "basic.fs.index"), path+".index")
			os.WriteFile(path+".pack", []byte("junk"), 0o644)

			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "ZODBCTL_PACK_CRASH_FILE="+path, "ZODBCTL_PACK_CRASH_POINT="+point)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(out)
			reached := false
			for sc.Scan() {
				if sc.Text() == "AT "+point {
					reached = true
					break
				}
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			if !reached {
				t.Fatalf("the child never reached %q", point)
			}

			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("Data.fs after kill at %s: %v", point, err)
			}
			if !bytes.Equal(got, input) && !bytes.Equal(got, want) {
				t.Fatalf("Data.fs after kill at %s is neither the original nor the packed file", point)
			}
			checkUsable(t, path)

			res, err := Pack(context.Background(), path, "", Options{Stop: crashStop, GC: true})
			if err != nil {
				t.Fatal(err)
			}
			final, _ := os.ReadFile(path)
			if !bytes.Equal(final, want) {
				t.Fatalf("pack after the crash: %d bytes, want ZODB's %d (%+v)", len(final), len(want), res)
			}
			if res.Packed {
				idx, _ := os.ReadFile(path + ".index")
				if !bytes.Equal(idx, wantIdx) {
					t.Error("index after re-pack differs from ZODB's")
				}
			}
		})
	}
}

// checkUsable verifies the file, loads every current object and checks that
// an index file, if there is one, is exactly the index of the file.
func checkUsable(t *testing.T, path string) {
	t.Helper()
	if err := fsformat.Verify(path, fsformat.VerifyOptions{}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	idx := fsformat.MapIndex{}
	res, err := fsformat.ScanIndex(f, path, idx, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	file, err := fsformat.NewFile(f, st.Size(), path)
	if err != nil {
		t.Fatal(err)
	}
	for oid, pos := range idx {
		if _, _, err := file.LoadRecord(pos); err != nil && !errors.Is(err, fsformat.ErrNoData) {
			t.Errorf("load oid %s: %v", oid, err)
		}
	}
	saved, savedPos, err := fsindex.Read(path + ".index")
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if int64(savedPos) != res.End || saved.Len() != len(idx) {
		t.Fatalf("index file (pos %d, %d oids) does not match the file (end %d, %d oids)", savedPos, saved.Len(), res.End, len(idx))
	}
	for oid, pos := range idx {
		if p, ok := saved.Get(uint64(oid)); !ok || int64(p) != pos {
			t.Fatalf("index file: oid %s at %d, file has it at %d", oid, p, pos)
		}
	}
}
