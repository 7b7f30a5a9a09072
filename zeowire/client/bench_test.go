package client

import (
	"context"
	"testing"

	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/memstore"
	"github.com/zodbctl/zodbctl/zeowire/zeotest"
)

// BenchmarkTransactions iterates 200 transactions of 10 records (200 bytes
// each) over loopback: one round trip per transaction and per record, as
// the protocol (and the Python client) does it.
func BenchmarkTransactions(b *testing.B) {
	for _, msgpack := range []bool{false, true} {
		name := "Z5"
		if msgpack {
			name = "M5"
		}
		b.Run(name, func(b *testing.B) {
			st := memstore.New("bench")
			s := zeotest.Start(b, msgpack, st)
			ctx := context.Background()
			c, err := Connect(ctx, Options{Addrs: []string{s.Addr}})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			data := make([]byte, 200)
			for i := range 200 {
				stores := make([]Store, 10)
				for j := range stores {
					stores[j] = Store{Oid: zeowire.Oid(i*10 + j), Data: data}
				}
				if _, err := c.Commit(ctx, nil, nil, nil, stores); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				n := 0
				for txn, err := range c.Transactions(ctx, 0, 0) {
					if err != nil {
						b.Fatal(err)
					}
					n += len(txn.Records)
				}
				if n != 2000 {
					b.Fatal(n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2200, "ns/call")
		})
	}
}
