package pack

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/fsformat"
)

// writeGraphFile writes, through fsformat.Appender, a Data.fs of about size
// bytes whose objects form a tree under the root (oid 0): each new object is
// linked from its parent (oid (k-1)/2) in the same transaction, other
// transactions rewrite random objects, and a few unlink a child (its subtree
// becomes garbage). bench/gendata's files have random references and an
// undone root, on which a GC pack (Python's too) cannot run.
func writeGraphFile(t testing.TB, path string, size int64, seed uint64, tiny bool) (txns, records int) {
	a, err := fsformat.Create(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	a.Now = func() time.Time { clock = clock.Add(1250 * time.Millisecond); return clock }
	r := rand.New(rand.NewPCG(seed, 7))
	type object struct{ kids [2]bool }
	var objs []object
	payload := make([]byte, 70<<10)
	for i := range payload {
		payload[i] = byte(r.IntN(256))
	}
	var buf []byte
	store := func(oid int) {
		var n int
		switch x := r.IntN(100); {
		case tiny:
			n = 10 + r.IntN(40)
		case x < 80:
			n = 100 + r.IntN(300)
		case x < 99:
			n = 400 + r.IntN(3700)
		default:
			n = 4096 + r.IntN(60<<10)
		}
		buf = graphPickle(buf[:0], payload[:n], oid, objs[oid].kids)
		if _, err := a.Store(fsformat.Oid(oid), buf); err != nil {
			t.Fatal(err)
		}
		records++
	}
	for a.Pos() < size {
		if _, err := a.Begin(fsformat.TxnMeta{User: []byte("bench"), Description: []byte("txn " + strconv.Itoa(txns))}); err != nil {
			t.Fatal(err)
		}
		touched := map[int]bool{}
		for k, n := 0, 1+r.IntN(12); k < n; k++ {
			switch x := r.IntN(100); {
			case x < 50 || len(objs) == 0: // a new object, linked from its parent
				k := len(objs)
				objs = append(objs, object{})
				store(k)
				touched[k] = true
				if k > 0 {
					p := (k - 1) / 2
					objs[p].kids[(k-1)%2] = true
					if !touched[p] {
						store(p)
						touched[p] = true
					}
				}
			case x < 99: // a new revision of some object
				o := r.IntN(len(objs))
				if !touched[o] {
					store(o)
					touched[o] = true
				}
			default: // unlink a (small, deep) subtree
				o := len(objs)/2 + r.IntN((len(objs)+1)/2)
				if !touched[o] && objs[o].kids[0] {
					objs[o].kids[0] = false
					store(o)
					touched[o] = true
				}
			}
		}
		if _, err := a.Commit(); err != nil {
			t.Fatal(err)
		}
		txns++
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	return txns, records
}

// graphPickle is a protocol-3 record of class fixturemodel.Node whose state
// is {'data': bytes, 'c0': ref, 'c1': ref} (refs as (oid, class) pairs).
func graphPickle(dst, data []byte, oid int, kids [2]bool) []byte {
	dst = append(dst, 0x80, 3, 'c')
	dst = append(dst, "fixturemodel\nNode\n"...)
	dst = append(dst, 'q', 0, '.')
	dst = append(dst, 0x80, 3, '}', 'q', 1, '(')
	dst = append(dst, 'X', 4, 0, 0, 0)
	dst = append(dst, "data"...)
	dst = append(dst, 'B')
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(data)))
	dst = append(dst, data...)
	for i, on := range kids {
		if !on {
			continue
		}
		dst = append(dst, 'X', 2, 0, 0, 0, 'c', byte('0'+i), 'C', 8)
		dst = binary.BigEndian.AppendUint64(dst, uint64(2*oid+1+i))
		dst = append(dst, 'h', 0, 0x86, 'Q')
	}
	return append(dst, 'u', '.')
}

// TestWriteBenchFile writes a graph file for bench/pack.sh when
// ZODBCTL_PACK_BENCH_OUT names the output (ZODBCTL_PACK_BENCH_SIZE: bytes,
// default 500 MB; ZODBCTL_PACK_BENCH_TINY=1: 10–50 byte payloads, many
// objects, to measure memory per object).
func TestWriteBenchFile(t *testing.T) {
	out := os.Getenv("ZODBCTL_PACK_BENCH_OUT")
	if out == "" {
		t.Skip("ZODBCTL_PACK_BENCH_OUT not set")
	}
	size := int64(500e6)
	if s := os.Getenv("ZODBCTL_PACK_BENCH_SIZE"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		size = v
	}
	os.Remove(out)
	txns, recs := writeGraphFile(t, out, size, 1, os.Getenv("ZODBCTL_PACK_BENCH_TINY") != "")
	t.Logf("%s: %d transactions, %d records", out, txns, recs)
}

// BenchmarkPack packs (GC, as of now) a 20 MB graph file, or a copy of
// $ZODBCTL_PACK_BENCH_FILE.
func BenchmarkPack(b *testing.B) {
	dir := b.TempDir()
	src := os.Getenv("ZODBCTL_PACK_BENCH_FILE") // a real file instead
	if src == "" {
		src = filepath.Join(dir, "src.fs")
		writeGraphFile(b, src, 20e6, 1, false)
	}
	input, _ := os.ReadFile(src)
	path := filepath.Join(dir, "Data.fs")
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		os.WriteFile(path, input, 0o644)
		os.Remove(path + ".old")
		b.StartTimer()
		res, err := Pack(context.Background(), path, "", Options{Stop: fsformat.MaxTid, GC: true})
		if err != nil || !res.Packed {
			b.Fatal(err, res.NoOp)
		}
	}
}
