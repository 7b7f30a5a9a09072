package zeowire_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/memstore"
)

// benchServer serves a memstore with n objects of ~100 bytes.
func benchServer(b *testing.B, msgpack bool, n int) (string, func()) {
	st := memstore.New("bench")
	bg := context.Background()
	tx, _ := st.Begin(bg, zeowire.TxnMeta{Tid: 1})
	data := make([]byte, 100)
	for i := range n {
		tx.Restore(zeowire.Oid(i), 1, data, 0)
	}
	if err := tx.Vote(); err != nil {
		b.Fatal(err)
	}
	if err := tx.Finish(); err != nil {
		b.Fatal(err)
	}
	srv := &zeowire.Server{Storages: map[string]zeowire.Storage{"1": st}, Msgpack: msgpack, Logger: slog.New(slog.DiscardHandler)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Shutdown(bg) }
}

func benchDial(b *testing.B, addr string) *zeowire.ClientConn {
	c, err := zeowire.Dial(context.Background(), addr, zeowire.ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Register(context.Background(), "1", false); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkLoadBefore measures a loadBefore round trip over loopback with
// 1 and 8 concurrent clients (server and client in this process).
func BenchmarkLoadBefore(b *testing.B) {
	for _, enc := range []string{"pickle", "msgpack"} {
		for _, clients := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/clients=%d", enc, clients), func(b *testing.B) {
				addr, stop := benchServer(b, enc == "msgpack", 10000)
				defer stop()
				conns := make([]*zeowire.ClientConn, clients)
				for i := range conns {
					conns[i] = benchDial(b, addr)
					defer conns[i].Close()
				}
				var next atomic.Int64
				b.ReportAllocs()
				b.ResetTimer()
				runClients(b, clients, func(i, n int) {
					c := conns[i]
					ctx := context.Background()
					tid := zeowire.MaxTid.Bytes()
					for range n {
						oid := binary.BigEndian.AppendUint64(nil, uint64(next.Add(1)%10000))
						if _, err := c.CallID(ctx, zeowire.Tuple{oid, tid}, "loadBefore", oid, tid); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkCommit measures small transactions (one 100-byte store) with 1
// and 4 clients writing distinct objects.
func BenchmarkCommit(b *testing.B) {
	for _, clients := range []int{1, 4} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			addr, stop := benchServer(b, false, 100)
			defer stop()
			conns := make([]*zeowire.ClientConn, clients)
			for i := range conns {
				conns[i] = benchDial(b, addr)
				defer conns[i].Close()
			}
			b.ReportAllocs()
			b.ResetTimer()
			runClients(b, clients, func(i, n int) {
				commitLoop(b, conns[i], uint64(1000+i), int64(i)<<32, n)
			})
		})
	}
}

// runClients runs b.N operations split over the given number of goroutines
// (one per client connection: a ZEO connection has one transaction at a
// time) and reports operations per second.
func runClients(b *testing.B, clients int, work func(i, n int)) {
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		n := b.N / clients
		if i < b.N%clients {
			n++
		}
		wg.Add(1)
		go func() { defer wg.Done(); work(i, n) }()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// commitLoop commits n small transactions, each storing 100 bytes to oid
// through the raw protocol (tpc_begin, storea, vote, tpc_finish), with
// transaction ids counting up from txnBase.
func commitLoop(b *testing.B, c *zeowire.ClientConn, oid uint64, txnBase int64, n int) {
	ctx := context.Background()
	oidb := binary.BigEndian.AppendUint64(nil, oid)
	serial := make([]byte, 8)
	data := make([]byte, 100)
	txn := txnBase
	for range n {
		txn++
		c.Async("tpc_begin", txn, []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
		c.Async("storea", oidb, serial, data, txn)
		if _, err := c.Call(ctx, "vote", txn); err != nil {
			b.Error(err)
			return
		}
		r, err := c.Call(ctx, "tpc_finish", txn)
		if err != nil {
			b.Error(err)
			return
		}
		serial = r.([]byte)
	}
}
