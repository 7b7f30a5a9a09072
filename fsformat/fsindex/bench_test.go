package fsindex

import (
	"bytes"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
)

func BenchmarkLoadFixture(b *testing.B) {
	data, err := os.ReadFile("../../testdata/fs/basic.fs.index")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Load(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSet fills an index with 1M ascending oids (as a scan does) and
// reports the heap bytes per oid.
func BenchmarkSet(b *testing.B) {
	const n = 1 << 20
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		x := New()
		for i := uint64(0); i < n; i++ {
			x.Set(i, i*100)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/oid")
		runtime.KeepAlive(x)
	}
}

// BenchmarkLoadSave: 1M oids saved and loaded.
func BenchmarkLoadSave(b *testing.B) {
	x := New()
	for i := uint64(0); i < 1<<20; i++ {
		x.Set(i, i*100)
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := x.Save(&buf, 1<<40); err != nil {
			b.Fatal(err)
		}
		y, _, err := Load(bytes.NewReader(buf.Bytes()))
		if err != nil || y.Len() != x.Len() {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadMemory reports the heap bytes per oid of an index read from a
// file (1M dense oids).
func BenchmarkLoadMemory(b *testing.B) {
	const n = 1 << 20
	x := New()
	for i := uint64(0); i < n; i++ {
		x.Set(i, i*100)
	}
	var buf bytes.Buffer
	if err := x.Save(&buf, 1<<40); err != nil {
		b.Fatal(err)
	}
	x = nil
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		y, _, err := Load(bytes.NewReader(buf.Bytes()))
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/oid")
		runtime.KeepAlive(y)
	}
}

// BenchmarkRandom: Set then Get of 1M dense oids in random order (a GC
// marking reachable objects, a pack copying them).
func BenchmarkRandom(b *testing.B) {
	const n = 1 << 20
	perm := rand.New(rand.NewPCG(1, 1)).Perm(n)
	b.ResetTimer()
	for b.Loop() {
		x := New()
		for _, o := range perm {
			x.Set(uint64(o), uint64(o)*64)
		}
		for _, o := range perm {
			if p, ok := x.Get(uint64(o)); !ok || p != uint64(o)*64 {
				b.Fatal("lost", o)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(2*n), "ns/access")
}
