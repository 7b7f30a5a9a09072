package analysis

import (
	"encoding/binary"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/fsformat"
)

// genFile writes a synthetic Data.fs of about size bytes: transactions of
// 100 records, fixturemodel.Person-like pickles of 200–500 bytes each with
// 3 references, 30% of the records new revisions of existing objects.
// ZODBCTL_BENCH_FILE names an existing file to use instead.
func genFile(b *testing.B, size int64) string {
	if p := os.Getenv("ZODBCTL_BENCH_FILE"); p != "" {
		return p
	}
	path := filepath.Join(b.TempDir(), "bench.fs")
	a, err := fsformat.Create(path, fsformat.MapIndex{})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	clock := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	a.Now = func() time.Time { clock = clock.Add(time.Second); return clock }
	filler := make([]byte, 400)
	for i := range filler {
		filler[i] = 'a' + byte(i%26)
	}
	record := func(oid, maxOid uint64) []byte {
		p := []byte("\x80\x03cfixturemodel\nPerson\nq\x00.\x80\x03}q\x01(X\x04\x00\x00\x00nameq\x02X")
		name := "person-" + strconv.FormatUint(oid, 10)
		p = binary.LittleEndian.AppendUint32(p, uint32(len(name)))
		p = append(p, name...)
		p = append(p, "q\x03X\x03\x00\x00\x00bioq\x04X"...)
		n := 100 + rng.Intn(300)
		p = binary.LittleEndian.AppendUint32(p, uint32(n))
		p = append(p, filler[:n]...)
		p = append(p, "q\x05X\x07\x00\x00\x00friendsq\x06]q\x07("...)
		for i := 0; i < 3 && maxOid > 1; i++ {
			p = binary.BigEndian.AppendUint64(append(p, 'C', 8), 1+uint64(rng.Int63n(int64(maxOid-1))))
			p = append(p, 'h', 0, 0x86, 'Q')
		}
		return append(p, "eu."...)
	}
	next := uint64(1)
	for first := true; a.Pos() < size; first = false {
		if _, err := a.Begin(fsformat.TxnMeta{User: []byte("bench")}); err != nil {
			b.Fatal(err)
		}
		if first {
			a.Store(0, record(0, 0))
		}
		for range 100 {
			oid := next
			if next > 1000 && rng.Intn(10) < 3 {
				oid = 1 + uint64(rng.Int63n(int64(next-1)))
			} else {
				next++
			}
			if _, err := a.Store(fsformat.Oid(oid), record(oid, next)); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := a.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// reportPerObject reports the heap allocated per object of the index.
func reportPerObject(b *testing.B, c *Current, before runtime.MemStats) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/float64(c.Index.Len()), "B/object")
}

func BenchmarkCheckRefs(b *testing.B) {
	path := genFile(b, 64<<20)
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var c *Current
	for b.Loop() {
		var err error
		if c, err = OpenCurrent(path, nil); err != nil {
			b.Fatal(err)
		}
		if err := CheckRefs(c, nil, func(*BrokenObject) error { return nil }); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	reportPerObject(b, c, before)
}

func BenchmarkAnalyze(b *testing.B) {
	path := genFile(b, 64<<20)
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	for b.Loop() {
		f, err := fsformat.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Analyze(f, nil); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

func BenchmarkFsstats(b *testing.B) {
	path := genFile(b, 64<<20)
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	for b.Loop() {
		f, err := fsformat.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := FsstatsFile(f, nil); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// benchPositions are 230k positions of a 500 MB file in oid order: mostly
// ascending, 30% moved to a later place (rewritten objects), as an index
// yields them.
func benchPositions() []int64 {
	rng := rand.New(rand.NewSource(1))
	p := make([]int64, 230000)
	for i := range p {
		p[i] = int64(i) * 2000
		if rng.Intn(10) < 3 {
			p[i] = rng.Int63n(500 << 20)
		}
	}
	return p
}

func BenchmarkSortPositionsRadix(b *testing.B) {
	src := benchPositions()
	p := make([]int64, len(src))
	for b.Loop() {
		copy(p, src)
		sortPositions(p)
	}
}

func BenchmarkSortPositionsPdq(b *testing.B) {
	src := benchPositions()
	p := make([]int64, len(src))
	for b.Loop() {
		copy(p, src)
		slices.Sort(p)
	}
}
