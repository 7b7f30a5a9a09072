package pack

import (
	"context"
	"errors"
	"fmt"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/fsindex"
	"github.com/zodbctl/zodbctl/fsformat/refs"
)

// Dangling is a strong reference to an object that has no current record at
// the pack time (deleted, creation undone, never stored). ZODB's GC pack
// fails on it with KeyError(target); zodbctl skips the target.
type Dangling struct {
	DB     string       // database of the referring object ("" for a single pack)
	From   fsformat.Oid // the referring object; for the root itself, From == Oid
	Oid    fsformat.Oid
	Cross  bool   // reached through a cross-database reference
	ToDB   string // the target's database
	Source int64  // position of the referring record (0 for the root)
}

// UnknownDB counts cross-database references into a database that was not
// named in the pack (their targets cannot be kept alive by this pack).
type UnknownDB struct {
	Name  string
	Count int
	// First is one referring object (for the message).
	FromDB string
	From   fsformat.Oid
}

// db is the per-file state of phases 1 and 2.
type db struct {
	name  string
	path  string
	sc    scanner
	file  *fsformat.File // random access (backpointer chains, findrefs)
	empty bool           // no data record at all: nothing to do

	packpos   int64
	redundant bool

	cur     *fsindex.Index // oid2curpos (dropped after GC)
	reach   *fsindex.Index // reachable
	reachEx map[fsformat.Oid][]int64
	extra   []int64 // extra roots from the future scan

	recordsAtPack int // data records before packpos
}

// buildPackIndex is pack.md §2.1 (and the no-op conditions of §1).
func (d *db) buildPackIndex(ctx context.Context, stop fsformat.Tid, progress func(int64)) error {
	d.cur = fsindex.New()
	s := &d.sc
	pos := int64(fsformat.FileHeaderLen)
	unpacked := false
	var last fsformat.TxnHeader
	var r record
	n := 0
	for pos < s.end {
		if n++; n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			progress(pos)
		}
		b, err := s.w.at(pos, 8)
		if err == nil && fsformat.TidFromBytes(b) > stop {
			break // the header after the pack time is not validated here
		}
		th, err := s.txn(pos)
		if err == errTail {
			break
		}
		if err != nil {
			return err
		}
		last = th
		if th.Status != fsformat.StatusPacked {
			unpacked = true
		}
		tend := pos + th.Len
		for dpos := pos + th.HeaderLen(); dpos < tend; {
			if err := s.data(pos, &th, dpos, &r); err != nil {
				return err
			}
			d.recordsAtPack++
			if r.DataLen > 0 || r.back != 0 {
				d.cur.Set(uint64(r.Oid), uint64(dpos))
			} else {
				d.cur.Delete(uint64(r.Oid))
			}
			dpos += r.len()
		}
		if err := s.trailer(tend, &th); err != nil {
			return err
		}
		pos = tend + fsformat.TrailerLen
	}
	d.packpos = pos
	if !unpacked && pos > fsformat.FileHeaderLen {
		th2 := last
		if pos < s.end {
			b, err := s.w.at(pos, fsformat.TxnHeaderLen)
			if err != nil {
				return err
			}
			th2 = fsformat.ParseTxnHeader(b)
		}
		if th2.Status == fsformat.StatusPacked {
			d.redundant = true
		}
	}
	return nil
}

// scanFuture is the scan of findReachableFromFuture (pack.md §2.4) over the
// transactions after the pack time. With gc false (zodbctl's extension) the
// targets are kept only when they hold data, and nothing is followed.
func (d *db) scanFuture(ctx context.Context, gc bool, progress func(int64)) (records int, err error) {
	s := &d.sc
	var r record
	n := 0
	for pos := d.packpos; pos < s.end; {
		if n++; n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			progress(pos)
		}
		th, err := s.txn(pos)
		if err == errTail {
			break
		}
		if err != nil {
			return 0, err
		}
		tend := pos + th.Len
		for dpos := pos + th.HeaderLen(); dpos < tend; {
			if err := s.data(pos, &th, dpos, &r); err != nil {
				return 0, err
			}
			records++
			if r.back != 0 && r.back < d.packpos {
				d.futureBack(r.Oid, r.back, gc)
			}
			dpos += r.len()
		}
		if err := s.trailer(tend, &th); err != nil {
			return 0, err
		}
		pos = tend + fsformat.TrailerLen
	}
	return records, nil
}

// scanFutureFrom checks the transactions from pos to the end (the catch-up
// of an online pack) without any bookkeeping.
func (d *db) scanFutureFrom(pos int64) (int, error) {
	s := &d.sc
	var r record
	n := 0
	for pos < s.end {
		th, err := s.txn(pos)
		if err == errTail {
			break
		}
		if err != nil {
			return 0, err
		}
		tend := pos + th.Len
		for dpos := pos + th.HeaderLen(); dpos < tend; dpos += r.len() {
			if err := s.data(pos, &th, dpos, &r); err != nil {
				return 0, err
			}
			n++
		}
		if err := s.trailer(tend, &th); err != nil {
			return 0, err
		}
		pos = tend + fsformat.TrailerLen
	}
	return n, nil
}

func (d *db) futureBack(oid fsformat.Oid, back int64, gc bool) {
	if !gc {
		if _, _, err := d.file.LoadRecord(back); err != nil {
			return // resolves to nothing: copyRest writes a zero backpointer either way
		}
	}
	if _, ok := d.reach.Get(uint64(oid)); ok {
		l := d.reachEx[oid]
		for _, p := range l {
			if p == back {
				return
			}
		}
		d.reachEx[oid] = append(l, back)
		if gc {
			d.extra = append(d.extra, back)
		}
		return
	}
	d.reach.Set(uint64(oid), uint64(back))
}

func (d *db) isReachable(oid fsformat.Oid, pos int64) bool {
	if p, ok := d.reach.Get(uint64(oid)); ok && int64(p) == pos {
		return true
	}
	for _, p := range d.reachEx[oid] {
		if p == pos {
			return true
		}
	}
	return false
}

// marker is the GC of pack.md §2.3 over one or several databases.
type marker struct {
	dbs      []*db
	byName   map[string]int
	multi    bool
	sc       refs.Scanner
	refs     []refs.Ref
	todo     []item
	dangling []Dangling
	unknown  map[string]*UnknownDB
	crossOut int // cross-database references seen (single pack: the warning)
	buf      []byte
}

type item struct {
	db  int32
	oid fsformat.Oid
	// where it was referenced from (for the dangling report)
	fromDB  int32
	from    fsformat.Oid
	fromPos int64
	cross   bool
}

var errScanRefs = errors.New("reading references")

// ErrNoRoot: the root object (oid 0) has no current record at the pack time
// while other objects do. A GC pack would delete everything; refused.
var ErrNoRoot = errors.New("the root object (oid 0x00) has no current record at the pack time (deleted or creation undone): a GC pack would remove every object; use --no-gc")

// push queues a reference target unless it is already marked; a target
// without a current record is dangling.
func (m *marker) push(it item) {
	d := m.dbs[it.db]
	if _, ok := d.reach.Get(uint64(it.oid)); ok {
		return
	}
	if _, ok := d.cur.Get(uint64(it.oid)); !ok {
		if it.oid == 0 && it.fromPos == 0 && d.cur.Len() == 0 {
			return // pack time before the root existed
		}
		m.dangling = append(m.dangling, Dangling{
			DB: m.dbs[it.fromDB].name, From: it.from, Oid: it.oid, Cross: it.cross,
			ToDB: d.name, Source: it.fromPos,
		})
		return
	}
	m.todo = append(m.todo, it)
}

// mark follows strong references from everything queued.
func (m *marker) mark(ctx context.Context) error {
	n := 0
	for len(m.todo) > 0 {
		if n++; n&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		it := m.todo[len(m.todo)-1]
		m.todo = m.todo[:len(m.todo)-1]
		d := m.dbs[it.db]
		if _, ok := d.reach.Get(uint64(it.oid)); ok {
			continue
		}
		pos, _ := d.cur.Get(uint64(it.oid))
		d.reach.Set(uint64(it.oid), pos)
		if err := m.follow(int(it.db), it.oid, int64(pos)); err != nil {
			return err
		}
	}
	return nil
}

// follow queues the references of the record at pos (findrefs).
func (m *marker) follow(di int, oid fsformat.Oid, pos int64) error {
	d := m.dbs[di]
	data, err := m.load(d, pos)
	if errors.Is(err, fsformat.ErrNoData) {
		return nil
	}
	if err != nil {
		return err
	}
	m.refs, err = m.sc.Scan(data, m.refs[:0])
	if err != nil {
		return fmt.Errorf("%s: oid %s, record at %d: %w: %w", d.path, oid, pos, errScanRefs, err)
	}
	for i := range m.refs {
		r := &m.refs[i]
		if r.Kind != refs.Strong {
			continue
		}
		if !r.Cross() {
			if r.CountsForReferencesf() {
				m.push(item{db: int32(di), oid: fsformat.Oid(r.Oid), fromDB: int32(di), from: oid, fromPos: pos})
			}
			continue
		}
		m.crossOut++
		t, ok := m.byName[string(r.DB)]
		if !ok || !m.multi {
			u := m.unknown[string(r.DB)]
			if u == nil {
				u = &UnknownDB{Name: string(r.DB), FromDB: d.name, From: oid}
				m.unknown[u.Name] = u
			}
			u.Count++
			continue
		}
		m.push(item{db: int32(t), oid: fsformat.Oid(r.Oid), fromDB: int32(di), from: oid, fromPos: pos, cross: true})
	}
	return nil
}

// load returns the object state of the record at pos. Records are mostly
// small: one read of a few KiB usually brings the header and the whole
// pickle (LoadRecord needs two), which halves the reads of the GC walk.
func (m *marker) load(d *db, pos int64) ([]byte, error) {
	const guess = 4 << 10
	n := int64(guess)
	if rest := d.sc.w.size - pos; rest < n {
		n = rest
	}
	if n < fsformat.DataHeaderLen {
		return nil, fmt.Errorf("%s: data record at %d runs past the end of the file", d.path, pos)
	}
	if cap(m.buf) < guess {
		m.buf = make([]byte, guess)
	}
	b := m.buf[:n]
	if _, err := d.sc.w.r.ReadAt(b, pos); err != nil {
		return nil, fmt.Errorf("%s: data record at %d: %w", d.path, pos, err)
	}
	h := fsformat.ParseDataHeader(b)
	if h.DataLen > 0 && h.VersionLen == 0 && h.DataLen <= n-fsformat.DataHeaderLen {
		return b[fsformat.DataHeaderLen : fsformat.DataHeaderLen+h.DataLen], nil
	}
	data, _, err := d.file.LoadRecord(pos)
	return data, err
}

// gc marks every database from its root, then from the extra roots of the
// future scan (whose references are marked as of the pack time).
func (m *marker) gc(ctx context.Context) error {
	for i, d := range m.dbs {
		d.reach = fsindex.New()
		d.reachEx = map[fsformat.Oid][]int64{}
		if _, ok := d.cur.Get(0); !ok && d.cur.Len() > 0 {
			// ZODB fails with KeyError(z64). Skipping it as another
			// dangling reference would delete the whole database.
			return fmt.Errorf("%s: %w", d.path, ErrNoRoot)
		}
		m.push(item{db: int32(i), oid: 0, fromDB: int32(i)})
	}
	return m.mark(ctx)
}

func (m *marker) extraRoots(ctx context.Context) error {
	for i, d := range m.dbs {
		for _, pos := range d.extra {
			h, err := d.file.ReadDataHeaderAt(pos)
			if err != nil {
				return err
			}
			if err := m.follow(i, h.Oid, pos); err != nil {
				return err
			}
		}
		d.extra = nil
	}
	return m.mark(ctx)
}
