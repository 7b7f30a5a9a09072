package zeowire_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/fsstore"
)

const crashServerEnv = "ZEOWIRE_CRASH_SERVER"

// runCrashServerProcess serves dir/Data.fs until killed.
func runCrashServerProcess(dir string) {
	st, err := fsstore.Open(filepath.Join(dir, "Data.fs"), fsstore.Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	srv := &zeowire.Server{Storages: map[string]zeowire.Storage{"1": st}, Logger: slog.New(slog.DiscardHandler)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	srv.Serve(ln)
}

// A server killed with SIGKILL in the middle of a stream of commits loses
// nothing it acknowledged: after a restart every transaction whose
// tpc_finish reply reached the client is there with its data, and the file
// verifies clean.
func TestCrashDuringCommits(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns and kills server processes")
	}
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	type acked struct {
		oid  zeowire.Oid
		tid  zeowire.Tid
		data string
	}
	var all []acked
	for round := range 4 {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), crashServerEnv+"="+dir)
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || strings.HasPrefix(line, "error") {
			cmd.Process.Kill()
			t.Fatalf("round %d: server did not start: %q %v", round, line, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := zeowire.Dial(ctx, strings.TrimSpace(line), zeowire.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Register(ctx, "1", false); err != nil {
			t.Fatal(err)
		}
		// The hot object 0 is rewritten by every commit; fresh objects
		// are added too.
		var serial zeowire.Tid
		if rev, ok, err := c.LoadBefore(ctx, 0, zeowire.MaxTid); err == nil && ok {
			serial = rev.Start
		}
		var (
			mu     sync.Mutex
			roundN int
			done   = make(chan struct{})
		)
		go func() {
			defer close(done)
			for n := 0; ; n++ {
				txn := int64(round*1000000 + n)
				data := fmt.Sprintf("round %d commit %d", round, n)
				fresh := zeowire.Oid(uint64(round+1)<<32 | uint64(n+1))
				c.Async("tpc_begin", txn, []byte("crash"), []byte(data), zeowire.Dict{}, nil, " ")
				c.Async("storea", zeowire.Oid(0).Bytes(), serial.Bytes(), []byte(data), txn)
				c.Async("storea", fresh.Bytes(), zeowire.Z64.Bytes(), []byte(data), txn)
				if _, err := c.Call(ctx, "vote", txn); err != nil {
					return
				}
				r, err := c.Call(ctx, "tpc_finish", txn)
				if err != nil {
					return
				}
				tid, _ := zeowire.AsTid(r)
				serial = tid
				mu.Lock()
				all = append(all, acked{0, tid, data}, acked{fresh, tid, data})
				roundN++
				mu.Unlock()
			}
		}()
		time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
		cmd.Process.Kill() // SIGKILL: no chance to clean up
		cmd.Wait()
		<-done
		c.Close()
		cancel()
		t.Logf("round %d: %d commits acknowledged before the kill", round, roundN)
	}
	// Reopen (which cuts an interrupted transaction off) and check.
	st, err := fsstore.Open(filepath.Join(dir, "Data.fs"), fsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	for _, a := range all {
		got, err := st.LoadSerial(bg, a.oid, a.tid)
		if err != nil || string(got) != a.data {
			t.Errorf("acknowledged commit %s of oid %s: %q %v", a.tid, a.oid, got, err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsformat.Verify(filepath.Join(dir, "Data.fs"), fsformat.VerifyOptions{Deep: true}); err != nil {
		t.Errorf("verify after the crashes: %v", err)
	}
	if len(all) == 0 {
		t.Fatal("no commit was acknowledged")
	}
	// Interrupted transactions are cut off into Data.fs.trN on open.
	cut, _ := filepath.Glob(filepath.Join(dir, "Data.fs.tr*"))
	t.Logf("%d acknowledged commits survived; %d interrupted transactions were cut off", len(all)/2, len(cut))
}
