// Command load100 holds a ZEO server under many concurrent clients for a
// fixed time, mixing loads and small commits that conflict, and reports
// operations, errors (expected ConflictErrors counted apart), p50/p99 per
// kind and, with -pid, the server's peak RSS (VmHWM) and CPU time.
//
//	go run ./bench/load100 -addr 127.0.0.1:8100 -pid $(cat var/ZEO.pid)
//
// Each client loops until the deadline: with probability -commit-ratio it
// reads one of -hot shared objects and its own object, then commits both
// with the serials it read (another client may have committed the hot
// object meanwhile: a ConflictError, counted, then the client goes on);
// otherwise it loads a random object of -objects. Any other failure is an
// error and makes the exit status 1.
//
// Why not an extension of bench/serve-load: that program measures one
// kind of operation per phase with conflict-free commits, for the CPU per
// operation figure; this one needs a single mixed phase with conflicts and
// error accounting, and extending it would mean editing another engineer's
// file. Both use the same zeowire client core.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zodbctl/zodbctl/bench/internal/zeoload"
	"github.com/zodbctl/zodbctl/zeowire"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8100", "server address")
	storage := flag.String("storage", "1", "storage name")
	clients := flag.Int("clients", 100, "concurrent clients")
	dur := flag.Duration("duration", 60*time.Second, "how long the load runs")
	objects := flag.Int("objects", 10000, "objects to create and load")
	hot := flag.Int("hot", 100, "shared objects the commits fight over")
	size := flag.Int("size", 100, "object size in bytes")
	ratio := flag.Float64("commit-ratio", 0.1, "fraction of operations that are commits")
	pid := flag.Int("pid", 0, "server pid, for its peak RSS and CPU time")
	flag.Parse()
	// Bounded whatever happens: the run, plus time to connect and set up.
	ctx, cancel := context.WithTimeout(context.Background(), *dur+2*time.Minute)
	defer cancel()
	bad, err := run(ctx, *addr, *storage, *clients, *dur, *objects, *hot, *size, *ratio, *pid)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load100:", err)
		os.Exit(1)
	}
	if bad {
		os.Exit(1)
	}
}

// stats are one client's counts and latencies.
type stats struct {
	loads, commits, conflicts, errors int
	loadLat, commitLat                []time.Duration
	firstErr                          error
}

func run(ctx context.Context, addr, storage string, clients int, dur time.Duration, objects, hot, size int, ratio float64, pid int) (bad bool, err error) {
	setup, err := zeoload.Dial(ctx, addr, storage, true)
	if err != nil {
		return false, err
	}
	defer setup.Close()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	// objects shared ones, then one own object per client.
	oids, err := zeoload.NewOids(ctx, setup, objects+clients)
	if err != nil {
		return false, err
	}
	for i := 0; i < len(oids); i += 1000 {
		batch := oids[i:min(i+1000, len(oids))]
		if _, err := zeoload.Commit(ctx, setup, "load100", batch, make([]zeowire.Tid, len(batch)), data); err != nil {
			return false, fmt.Errorf("creating objects: %w", err)
		}
	}
	shared, own := oids[:objects], oids[objects:]
	hot = min(max(hot, 1), objects)

	conns := make([]*zeowire.ClientConn, clients)
	for i := range conns {
		if conns[i], err = zeoload.Dial(ctx, addr, storage, true); err != nil {
			return false, fmt.Errorf("client %d: %w", i, err)
		}
		defer conns[i].Close()
	}
	cpu0, _ := zeoload.CPUTicks(pid)
	fmt.Printf("%d clients, %d objects of %d bytes (%d hot), commit ratio %.2f, for %v against %s\n",
		clients, objects, size, hot, ratio, dur, addr)

	all := make([]stats, clients)
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s := &all[i]
			c := conns[i]
			rng := rand.New(rand.NewPCG(uint64(i), 100))
			fail := func(err error) {
				s.errors++
				if s.firstErr == nil {
					s.firstErr = err
				}
			}
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if rng.Float64() >= ratio {
					if _, _, err := c.LoadBefore(ctx, shared[rng.IntN(len(shared))], zeowire.MaxTid); err != nil {
						fail(fmt.Errorf("loadBefore: %w", err))
						continue
					}
					s.loads++
					s.loadLat = append(s.loadLat, time.Since(t0))
					continue
				}
				// Read, then write with the serials read: a small
				// transaction of an application.
				txnOids := []zeowire.Oid{shared[rng.IntN(hot)], own[i]}
				serials := make([]zeowire.Tid, 2)
				var err error
				for k, oid := range txnOids {
					var rev zeowire.Revision
					if rev, _, err = c.LoadBefore(ctx, oid, zeowire.MaxTid); err != nil {
						break
					}
					serials[k] = rev.Start
				}
				if err != nil {
					fail(fmt.Errorf("loadBefore before a commit: %w", err))
					continue
				}
				_, err = zeoload.Commit(ctx, c, "load100", txnOids, serials, data)
				var ce *zeowire.ConflictError
				switch {
				case errors.As(err, &ce):
					s.conflicts++
				case err != nil:
					fail(fmt.Errorf("commit: %w", err))
				default:
					s.commits++
					s.commitLat = append(s.commitLat, time.Since(t0))
				}
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)

	var total stats
	var errs []string
	for _, s := range all {
		total.loads += s.loads
		total.commits += s.commits
		total.conflicts += s.conflicts
		total.errors += s.errors
		total.loadLat = append(total.loadLat, s.loadLat...)
		total.commitLat = append(total.commitLat, s.commitLat...)
		if s.firstErr != nil && len(errs) < 5 {
			errs = append(errs, s.firstErr.Error())
		}
	}
	fmt.Printf("ops %d in %.1f s (%.0f ops/s): loads %d, commits %d, conflicts %d (expected), errors %d\n",
		total.loads+total.commits+total.conflicts, elapsed.Seconds(),
		float64(total.loads+total.commits+total.conflicts)/elapsed.Seconds(),
		total.loads, total.commits, total.conflicts, total.errors)
	fmt.Printf("load   p50 %s  p99 %s\n", pct(total.loadLat, 50), pct(total.loadLat, 99))
	fmt.Printf("commit p50 %s  p99 %s (read + commit)\n", pct(total.commitLat, 50), pct(total.commitLat, 99))
	for _, e := range errs {
		fmt.Printf("error: %s\n", e)
	}
	if pid > 0 {
		cpu1, _ := zeoload.CPUTicks(pid)
		hwm, rss := procStatus(pid, "VmHWM"), procStatus(pid, "VmRSS")
		fmt.Printf("server pid %d: peak RSS (VmHWM) %s, RSS now %s, CPU %.1f s (%.0f%% of one core)\n",
			pid, hwm, rss, float64(cpu1-cpu0)/zeoload.ClockTicks, float64(cpu1-cpu0)/zeoload.ClockTicks/elapsed.Seconds()*100)
	}
	// The server answers a fresh client after all that.
	last, err := setup.LastTransaction(ctx)
	if err != nil {
		return true, fmt.Errorf("server after the load: %w", err)
	}
	fmt.Printf("last transaction %s\n", last)
	return total.errors > 0 || total.loads == 0 || total.commits == 0, nil
}

func pct(l []time.Duration, p int) string {
	if len(l) == 0 {
		return "-"
	}
	slices.Sort(l)
	return l[min(len(l)*p/100, len(l)-1)].Round(time.Microsecond).String()
}

// procStatus returns a field of /proc/PID/status ("123456 kB"), or "?".
func procStatus(pid int, key string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
