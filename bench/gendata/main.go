// Command gendata writes a realistic Data.fs of about a given size through
// fsformat's Appender, for benchmarks: mixed object sizes from 100 B to
// 64 KiB (mostly small BTree-bucket-like records), about half of the
// records superseding an earlier revision, some undo transactions
// (backpointer records) and a few undone creations (zero backpointers).
// The output depends only on -seed: the clock is simulated.
//
//	go run ./bench/gendata -size 500MB -o /tmp/bench.fs
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/zodbctl/zodbctl/fsformat"
)

func main() {
	sizeFlag := flag.String("size", "500MB", "approximate file size (B, KB, MB, GB; powers of 1000, KiB/MiB/GiB powers of 1024)")
	out := flag.String("o", "", "output file (written aside, then renamed)")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "gendata: -o FILE is required")
		os.Exit(2)
	}
	target, err := parseSize(*sizeFlag)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gendata: -size: %v\n", err)
		os.Exit(2)
	}
	st, err := generate(*out, target, *seed)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gendata: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%s: %d bytes, %d transactions, %d records (%d updates, %d backpointers, %d undone creations), %d oids\n",
		*out, st.bytes, st.txns, st.records, st.updates, st.backs, st.deletes, st.oids)
}

func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			n, err := strconv.ParseFloat(strings.TrimSuffix(s, u.suffix), 64)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("bad size %q", s)
			}
			return int64(n * float64(u.mult)), nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n, nil
}

type stats struct {
	bytes                                        int64
	txns, records, updates, backs, deletes, oids int
}

var classes = []string{
	"BTrees.OOBTree\nOOBucket", "BTrees.IOBTree\nIOBucket", "BTrees.OOBTree\nOOBTree",
	"fixturemodel\nDocument", "fixturemodel\nPerson", "persistent.mapping\nPersistentMapping",
}

// object keeps the positions of the last two revisions of an oid.
type object struct {
	cur, prev int64
	class     uint8
	gone      bool // creation undone
}

func generate(path string, target int64, seed uint64) (stats, error) {
	var st stats
	tmp := path + ".tmp"
	os.Remove(tmp)
	a, err := fsformat.Create(tmp, nil)
	if err != nil {
		return st, err
	}
	defer os.Remove(tmp)
	defer a.Close()
	clock := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	a.Now = func() time.Time { clock = clock.Add(1250 * time.Millisecond); return clock }
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var objs []object
	payload := make([]byte, 64<<10)
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	var buf []byte
	type change struct {
		oid  fsformat.Oid
		back int64 // the revision before this transaction's
	}
	var lastTxn []change
	for a.Pos() < target {
		if len(lastTxn) > 0 && r.IntN(40) == 0 {
			// undo the previous transaction: each record points back to the
			// revision before it (0 for a creation: an undone creation).
			if _, err := a.Begin(fsformat.TxnMeta{User: []byte(" bench"), Description: []byte("undo")}); err != nil {
				return st, err
			}
			for _, c := range lastTxn {
				pos, err := a.StoreBackpointer(c.oid, c.back)
				if err != nil {
					return st, err
				}
				o := &objs[c.oid]
				o.prev, o.cur = o.cur, pos
				st.records++
				o.gone = c.back == 0
				if c.back == 0 {
					st.deletes++
				} else {
					st.backs++
				}
			}
			if _, err := a.Commit(); err != nil {
				return st, err
			}
			st.txns++
			lastTxn = lastTxn[:0]
			continue
		}
		desc := "txn " + strconv.Itoa(st.txns)
		if _, err := a.Begin(fsformat.TxnMeta{User: []byte(" bench"), Description: []byte(desc)}); err != nil {
			return st, err
		}
		lastTxn = lastTxn[:0]
		inTxn := map[fsformat.Oid]bool{}
		n := 1 + r.IntN(12)
		for k := 0; k < n; k++ {
			var oid fsformat.Oid
			if len(objs) > 0 && r.IntN(2) == 0 {
				oid = fsformat.Oid(r.IntN(len(objs)))
				if objs[oid].cur == 0 || objs[oid].gone || inTxn[oid] {
					continue
				}
				st.updates++
			} else {
				oid = fsformat.Oid(len(objs))
				objs = append(objs, object{class: uint8(r.IntN(len(classes)))})
			}
			var size int
			switch x := r.IntN(100); {
			case x < 80:
				size = 100 + r.IntN(300)
			case x < 99:
				size = 400 + r.IntN(3700)
			default:
				size = 4096 + r.IntN(60<<10)
			}
			var ref fsformat.Oid
			if len(objs) > 1 {
				ref = fsformat.Oid(r.IntN(len(objs)))
			}
			buf = makePickle(buf[:0], classes[objs[oid].class], payload[:size], ref)
			inTxn[oid] = true
			o := &objs[oid]
			lastTxn = append(lastTxn, change{oid, o.cur})
			pos, err := a.Store(oid, buf)
			if err != nil {
				return st, err
			}
			o.prev, o.cur = o.cur, pos
			st.records++
		}
		if _, err := a.Commit(); err != nil {
			return st, err
		}
		st.txns++
	}
	if err := a.Sync(); err != nil {
		return st, err
	}
	st.bytes, st.oids = a.Pos(), len(objs)
	if err := a.Close(); err != nil {
		return st, err
	}
	return st, os.Rename(tmp, path)
}

// makePickle builds a ZODB record: the class pickle, then a state dict
// {'data': <bytes>, 'ref': <persistent reference to ref>} sharing its memo.
func makePickle(dst []byte, class string, data []byte, ref fsformat.Oid) []byte {
	dst = append(dst, 0x80, 3, 'c')
	dst = append(dst, class...)
	dst = append(dst, '\n', 'q', 0, '.')
	dst = append(dst, 0x80, 3, '}', 'q', 1, '(')
	dst = append(dst, 'X', 4, 0, 0, 0)
	dst = append(dst, "data"...)
	dst = append(dst, 'q', 2, 'B')
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(data)))
	dst = append(dst, data...)
	dst = append(dst, 'X', 3, 0, 0, 0)
	dst = append(dst, "ref"...)
	dst = append(dst, 'q', 3, 'C', 8)
	dst = binary.BigEndian.AppendUint64(dst, uint64(ref))
	dst = append(dst, 'q', 4, 'h', 0, 0x86, 'q', 5, 'Q', 'u', '.')
	return dst
}
