package zeowire_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/fsstore"
)

// Many clients increment counters in a few shared objects. Every conflict
// must have exactly one winner (no increment is lost or doubled), every
// client must receive every other client's commit as an invalidation, in
// tid order.
func TestConcurrentCommits(t *testing.T) {
	for _, fileStorage := range []bool{false, true} {
		for _, msgpack := range []bool{false, true} {
			for _, clientRes := range []bool{false, true} {
				if fileStorage && msgpack {
					continue // the encoding does not matter to the storage
				}
				t.Run(fmt.Sprintf("filestorage=%v/msgpack=%v/client-resolution=%v", fileStorage, msgpack, clientRes), func(t *testing.T) {
					testConcurrentCommits(t, fileStorage, msgpack, clientRes)
				})
			}
		}
	}
}

func testConcurrentCommits(t *testing.T, fileStorage, msgpack, clientRes bool) {
	const (
		clients = 8
		commits = 40 // successful commits per client
		objects = 3
	)
	ts := startServer(t, func(s *zeowire.Server) {
		s.Msgpack = msgpack
		s.ClientConflictResolution = clientRes
		if fileStorage {
			st, err := fsstore.Open(filepath.Join(t.TempDir(), "Data.fs"), fsstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			s.Storages = map[string]zeowire.Storage{"1": st}
		}
	})
	cx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Create the counters.
	setup := dial(t, ts.addr, "1")
	var stores [][3][]byte
	for i := range objects {
		stores = append(stores, [3][]byte{oidb(uint64(i + 1)), z64, binary.BigEndian.AppendUint64(nil, 0)})
	}
	if _, err := commit(t, setup, 1, stores...); err != nil {
		t.Fatal(err)
	}
	type seen struct {
		mu   sync.Mutex
		tids []zeowire.Tid
	}
	var (
		wg        sync.WaitGroup
		conflicts [clients]int
		// conflicts returned for client-side resolution
		resolvedConflicts [clients]int
		own               [clients][]zeowire.Tid
		invals            [clients]*seen
		errs              = make(chan error, clients)
	)
	conns := make([]*zeowire.ClientConn, clients)
	for i := range clients {
		s := &seen{}
		invals[i] = s
		c, err := zeowire.Dial(cx, ts.addr, zeowire.ClientOptions{Async: func(m zeowire.Message) {
			if m.Name == "invalidateTransaction" {
				tid, _ := zeowire.AsTid(m.Args.(zeowire.Tuple)[0])
				s.mu.Lock()
				s.tids = append(s.tids, tid)
				s.mu.Unlock()
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Register(cx, "1", false); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := conns[i]
			for n := 0; n < commits; {
				oid := oidb(uint64((i+n)%objects + 1))
				r, err := c.Call(cx, "loadBefore", oid, zeowire.MaxTid.Bytes())
				if err != nil {
					errs <- err
					return
				}
				rev := r.(zeowire.Tuple)
				value := binary.BigEndian.Uint64(rev[0].([]byte))
				txn := int64(i*100000 + n*100 + conflicts[i])
				c.Async("tpc_begin", txn, []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
				c.Async("storea", oid, rev[1], binary.BigEndian.AppendUint64(nil, value+1), txn)
				r, err = c.Call(cx, "vote", txn)
				if err != nil {
					var ce *zeowire.ConflictError
					if !errors.As(err, &ce) {
						errs <- err
						return
					}
					conflicts[i]++
					c.Call(cx, "tpc_abort", txn)
					continue
				}
				// Client-side resolution: add our increment to the
				// committed value and vote again, as BTrees.Length does.
				for len(asSeq(r)) > 0 {
					resolvedConflicts[i]++
					for _, e := range asSeq(r) {
						d := e.(zeowire.Dict)
						serials, _ := d.Get("serials")
						committed := asSeq(serials)[0]
						data, err := c.Call(cx, "loadSerial", oid, committed)
						if err != nil {
							errs <- err
							return
						}
						v := binary.BigEndian.Uint64(data.([]byte))
						c.Async("storea", oid, committed, binary.BigEndian.AppendUint64(nil, v+1), txn)
					}
					if r, err = c.Call(cx, "vote", txn); err != nil {
						errs <- err
						return
					}
				}
				r, err = c.Call(cx, "tpc_finish", txn)
				if err != nil {
					errs <- err
					return
				}
				tid, _ := zeowire.AsTid(r)
				own[i] = append(own[i], tid)
				n++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The counters add up: no lost or doubled increment.
	var total uint64
	for i := range objects {
		r, err := setup.Call(cx, "loadBefore", oidb(uint64(i+1)), zeowire.MaxTid.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		total += binary.BigEndian.Uint64(r.(zeowire.Tuple)[0].([]byte))
	}
	if total != clients*commits {
		t.Errorf("counters sum to %d, want %d", total, clients*commits)
	}
	allConflicts := 0
	for i := range clients {
		allConflicts += conflicts[i]
	}
	st, _ := setup.Call(cx, "server_status")
	if v, _ := st.(zeowire.Dict).Get("conflicts"); !zeowire.Equal(v, int64(allConflicts)) {
		t.Errorf("server counted %s conflicts, clients saw %d", zeowire.Repr(v), allConflicts)
	}
	resolved := 0
	for i := range clients {
		resolved += resolvedConflicts[i]
	}
	if clientRes && (allConflicts != 0 || resolved == 0) {
		t.Errorf("client resolution: %d ConflictErrors, %d resolutions", allConflicts, resolved)
	}
	t.Logf("%d commits, %d conflicts, %d resolved by the clients", clients*commits, allConflicts, resolved)
	// Every client hears of every other client's commits, in order.
	deadline := time.Now().Add(5 * time.Second)
	for i := range clients {
		want := map[zeowire.Tid]bool{}
		for j := range clients {
			if j != i {
				for _, tid := range own[j] {
					want[tid] = true
				}
			}
		}
		for {
			invals[i].mu.Lock()
			got := append([]zeowire.Tid(nil), invals[i].tids...)
			invals[i].mu.Unlock()
			if len(got) >= len(want) || time.Now().After(deadline) {
				for k := 1; k < len(got); k++ {
					if got[k] <= got[k-1] {
						t.Errorf("client %d: invalidation %s after %s", i, got[k], got[k-1])
					}
				}
				for _, tid := range got {
					delete(want, tid)
				}
				if len(want) > 0 {
					t.Errorf("client %d missed %d invalidations", i, len(want))
				}
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
