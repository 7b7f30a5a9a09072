// Command serve-load is a load generator for `zodbctl serve` (or any ZEO 5
// server) built on the zeowire client core: loads/s of small objects with 1
// and 8 clients, commits/s of small transactions with 1 and 4 clients, p50
// and p99 latency, and, with -pid, the server's CPU time per operation
// (user+system from /proc/PID/stat divided by the deltas of the server's own
// loads/commits counters in server_status: the figure that stays stable on
// a shared machine).
//
//	go run ./bench/serve-load -addr 127.0.0.1:8100 -pid $(cat var/ZEO.pid)
//
// Loads are raw loadBefore calls of random objects among -objects objects
// of -size bytes (created first, in transactions of 1000); each committing
// client updates its own object, so commits never conflict.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zodbctl/zodbctl/bench/internal/zeoload"
	"github.com/zodbctl/zodbctl/zeowire"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8100", "server address")
	storage := flag.String("storage", "1", "storage name")
	objects := flag.Int("objects", 10000, "objects to create and load")
	size := flag.Int("size", 100, "object size in bytes")
	loadClients := flag.String("load-clients", "1,8", "client counts for the load phases")
	commitClients := flag.String("commit-clients", "1,4", "client counts for the commit phases")
	dur := flag.Duration("duration", 5*time.Second, "length of each phase")
	pid := flag.Int("pid", 0, "server pid, to report its CPU time per operation")
	flag.Parse()
	if err := run(*addr, *storage, *objects, *size, counts(*loadClients), counts(*commitClients), *dur, *pid); err != nil {
		fmt.Fprintln(os.Stderr, "serve-load:", err)
		os.Exit(1)
	}
}

func counts(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

func statusCounter(ctx context.Context, c *zeowire.ClientConn, key string) (int64, error) {
	d, err := c.ServerStatus(ctx)
	if err != nil {
		return 0, err
	}
	v, _ := d.Get(key)
	n, ok := zeowire.AsInt(v)
	if !ok {
		return 0, fmt.Errorf("server_status has no %s", key)
	}
	return n, nil
}

type phase struct {
	name    string
	clients int
	counter string // server_status key
	op      func(ctx context.Context, client int, c *zeowire.ClientConn, rng *rand.Rand) error
}

func runPhase(ctx context.Context, addr, storage string, monitor *zeowire.ClientConn, p phase, dur time.Duration, pid int) error {
	conns := make([]*zeowire.ClientConn, p.clients)
	for i := range conns {
		c, err := zeoload.Dial(ctx, addr, storage, false)
		if err != nil {
			return err
		}
		defer c.Close()
		conns[i] = c
	}
	before, err := statusCounter(ctx, monitor, p.counter)
	if err != nil {
		return err
	}
	var cpu0 int64
	if pid > 0 {
		if cpu0, err = zeoload.CPUTicks(pid); err != nil {
			return err
		}
	}
	lat := make([][]time.Duration, p.clients)
	errs := make(chan error, p.clients)
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if err := p.op(ctx, i, conns[i], rng); err != nil {
					errs <- err
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	var cpu1 int64
	if pid > 0 {
		if cpu1, err = zeoload.CPUTicks(pid); err != nil {
			return err
		}
	}
	after, err := statusCounter(ctx, monitor, p.counter)
	if err != nil {
		return err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	n := len(all)
	if n == 0 {
		return fmt.Errorf("%s: no operation completed", p.name)
	}
	line := fmt.Sprintf("%-8s clients=%d  %8.0f ops/s  p50 %7.1f µs  p99 %7.1f µs",
		p.name, p.clients, float64(n)/elapsed.Seconds(),
		float64(all[n/2].Nanoseconds())/1e3, float64(all[n*99/100].Nanoseconds())/1e3)
	if pid > 0 {
		ops := after - before
		if ops > 0 {
			us := float64(cpu1-cpu0) * 1e6 / zeoload.ClockTicks / float64(ops)
			line += fmt.Sprintf("  server CPU %6.1f µs/op (%d ops counted by the server)", us, ops)
		}
	}
	fmt.Println(line)
	return nil
}

func run(addr, storage string, objects, size int, loadClients, commitClients []int, dur time.Duration, pid int) error {
	ctx := context.Background()
	monitor, err := zeoload.Dial(ctx, addr, storage, false)
	if err != nil {
		return err
	}
	defer monitor.Close()

	// Create the objects.
	data := make([]byte, size)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	oids, err := zeoload.NewOids(ctx, monitor, objects)
	if err != nil {
		return err
	}
	for i := 0; i < len(oids); i += 1000 {
		batch := oids[i:min(i+1000, len(oids))]
		if _, err := zeoload.Commit(ctx, monitor, "serve-load", batch, make([]zeowire.Tid, len(batch)), data); err != nil {
			return fmt.Errorf("creating objects: %w", err)
		}
	}
	fmt.Printf("%d objects of %d bytes in storage %s at %s\n", objects, size, storage, addr)

	maxTid := zeowire.Tid(1<<63 - 1)
	for _, n := range loadClients {
		p := phase{name: "load", clients: n, counter: "loads",
			op: func(ctx context.Context, _ int, c *zeowire.ClientConn, rng *rand.Rand) error {
				_, _, err := c.LoadBefore(ctx, oids[rng.IntN(len(oids))], maxTid)
				return err
			}}
		if err := runPhase(ctx, addr, storage, monitor, p, dur, pid); err != nil {
			return err
		}
	}
	for _, n := range commitClients {
		// Each client owns one object: no conflicts.
		own, err := zeoload.NewOids(ctx, monitor, n)
		if err != nil {
			return err
		}
		serials := make([]zeowire.Tid, n)
		p := phase{name: "commit", clients: n, counter: "commits",
			op: func(ctx context.Context, i int, c *zeowire.ClientConn, _ *rand.Rand) error {
				tid, err := zeoload.Commit(ctx, c, "serve-load", own[i:i+1], serials[i:i+1], data)
				serials[i] = tid
				return err
			}}
		if err := runPhase(ctx, addr, storage, monitor, p, dur, pid); err != nil {
			return err
		}
	}
	return nil
}
