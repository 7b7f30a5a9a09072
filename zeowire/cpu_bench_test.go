package zeowire_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/fsstore"
	"github.com/zodbctl/zodbctl/zeowire/memstore"
)

// The server-CPU benchmarks run the server in a child process (this test
// binary re-executed) and divide the child's CPU time by the operations
// done: the figure the issue compares with the Python server, and one that
// stays stable on a shared machine.

const benchServerEnv = "ZEOWIRE_BENCH_SERVER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashServerEnv); dir != "" {
		runCrashServerProcess(dir)
		return
	}
	if v := os.Getenv(benchServerEnv); v != "" {
		enc, store, _ := strings.Cut(v, "/")
		runBenchServerProcess(enc == "msgpack", store == "fs")
		return
	}
	os.Exit(m.Run())
}

func runBenchServerProcess(msgpack, fileStorage bool) {
	var st zeowire.Storage = memstore.New("bench")
	if fileStorage {
		dir, err := os.MkdirTemp("", "zeowire-bench-")
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
		fs, err := fsstore.Open(filepath.Join(dir, "Data.fs"), fsstore.Options{})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		defer fs.Close()
		st = fs
	}
	bg := context.Background()
	tx, err := st.Begin(bg, zeowire.TxnMeta{Tid: zeowire.TidFromTime(time.Now()), Status: ' '})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	data := make([]byte, 100)
	for i := range 10000 {
		tx.Store(zeowire.Oid(i), 0, data)
	}
	if err := tx.Vote(); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if err := tx.Finish(); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	srv := &zeowire.Server{Storages: map[string]zeowire.Storage{"1": st}, Msgpack: msgpack, Logger: slog.New(slog.DiscardHandler)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	go func() {
		// Exit when the parent closes our stdin.
		bufio.NewReader(os.Stdin).ReadString('\n')
		os.Exit(0)
	}()
	srv.Serve(ln)
}

// processCPU returns the CPU time (user+system) of every thread of pid, in
// nanoseconds, from /proc/PID/task/*/schedstat.
func processCPU(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no schedstat for %d: %v", pid, err)
	}
	var total int64
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // thread exited
		}
		f := strings.Fields(string(b))
		n, _ := strconv.ParseInt(f[0], 10, 64)
		total += n
	}
	return time.Duration(total), nil
}

func startServerProcess(b *testing.B, msgpack bool, store string) (addr string, pid int, stop func()) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	enc := "pickle"
	if msgpack {
		enc = "msgpack"
	}
	cmd.Env = append(os.Environ(), benchServerEnv+"="+enc+"/"+store)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.HasPrefix(line, "error") {
		b.Fatal(line, err)
	}
	return strings.TrimSpace(line), cmd.Process.Pid, func() {
		stdin.Close()
		cmd.Wait()
	}
}

// BenchmarkServerCPU: loads of 100-byte objects (10,000 of them) and
// small commits (one 100-byte store), on the in-memory storage ("mem") and
// on a FileStorage with an fsync per commit ("fs").
func BenchmarkServerCPU(b *testing.B) {
	for _, store := range []string{"mem", "fs"} {
		benchServerCPU(b, store)
	}
}

func benchServerCPU(b *testing.B, store string) {
	for _, enc := range []string{"pickle", "msgpack"} {
		for _, op := range []string{"load", "commit"} {
			for _, clients := range []int{1, 8} {
				if op == "commit" && clients == 8 {
					clients = 4
				}
				b.Run(fmt.Sprintf("%s/%s/%s/clients=%d", store, enc, op, clients), func(b *testing.B) {
					addr, pid, stop := startServerProcess(b, enc == "msgpack", store)
					defer stop()
					conns := make([]*zeowire.ClientConn, clients)
					for i := range conns {
						conns[i] = benchDial(b, addr)
						defer conns[i].Close()
					}
					cpu0, err := processCPU(pid)
					if err != nil {
						b.Skip(err)
					}
					b.ResetTimer()
					var next atomic.Int64
					runClients(b, clients, func(i, n int) {
						c := conns[i]
						ctx := context.Background()
						if op == "load" {
							tid := zeowire.MaxTid.Bytes()
							for range n {
								oid := binary.BigEndian.AppendUint64(nil, uint64(next.Add(1)%10000))
								if _, err := c.CallID(ctx, zeowire.Tuple{oid, tid}, "loadBefore", oid, tid); err != nil {
									b.Error(err)
									return
								}
							}
							return
						}
						commitLoop(b, c, uint64(20000+i), int64(i)<<32, n)
					})
					b.StopTimer()
					cpu1, _ := processCPU(pid)
					b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "server-µs/op")
				})
			}
		}
	}
}
