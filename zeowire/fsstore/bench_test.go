package fsstore

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/zodbctl/zodbctl/zeowire"
)

// BenchmarkLoadBefore measures the storage's share of a load: a random
// current object of 100 bytes among 10,000 (the page cache holds the file).
func BenchmarkLoadBefore(b *testing.B) {
	path := filepath.Join(b.TempDir(), "Data.fs")
	st, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	data := make([]byte, 100)
	const n = 10000
	last := zeowire.Tid(0x03f0000000000000)
	for i := 0; i < n; i += 1000 {
		last++
		tx, err := st.Begin(ctx, zeowire.TxnMeta{Tid: last})
		if err != nil {
			b.Fatal(err)
		}
		for j := i; j < i+1000; j++ {
			if err := tx.Store(zeowire.Oid(j), 0, data); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Vote(); err != nil {
			b.Fatal(err)
		}
		if err := tx.Finish(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rev, ok, err := st.LoadBefore(ctx, zeowire.Oid(i*7919%n), zeowire.Tid(1<<62))
		if err != nil || !ok || len(rev.Data) != 100 {
			b.Fatal(rev, ok, err)
		}
	}
}

// BenchmarkCommit measures the storage's share of a small commit (one
// 100-byte object; two fsyncs, as every commit).
func BenchmarkCommit(b *testing.B) {
	st, err := Open(filepath.Join(b.TempDir(), "Data.fs"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	data := make([]byte, 100)
	tid := zeowire.Tid(0x03f0000000000000)
	var serial zeowire.Tid
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		tid++
		tx, err := st.Begin(ctx, zeowire.TxnMeta{Tid: tid, User: []byte("bench")})
		if err != nil {
			b.Fatal(err)
		}
		if err := tx.Store(1, serial, data); err != nil {
			b.Fatal(err)
		}
		if err := tx.Vote(); err != nil {
			b.Fatal(err)
		}
		if err := tx.Finish(); err != nil {
			b.Fatal(err)
		}
		serial = tid
	}
}
