package pack

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/oidmap"
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

	// reachable (fspack's GC.reachable) is stored as: cur (oid2curpos), a
	// mark per oid (every oid of cur without GC), and moved for the
	// reachable positions that are not the current one (future scan).
	cur     *oidmap.Positions
	marks   oidmap.Set
	allCur  bool
	moved   map[fsformat.Oid]int64
	reachEx map[fsformat.Oid][]int64
	extra   []int64 // extra roots from the future scan

	recordsAtPack int // data records before packpos
	undoKept      int // no-GC: revisions kept for later backpointers (ZODB fails)
}

func (d *db) marked(oid fsformat.Oid) bool {
	return d.allCur && d.cur.Has(oid) || d.marks.Has(oid)
}

func (d *db) mark(oid fsformat.Oid) { d.marks.Add(oid, d.cur.DenseRange()) }

// reachPos is reachable[oid].
func (d *db) reachPos(oid fsformat.Oid) (int64, bool) {
	if !d.marked(oid) {
		return 0, false
	}
	if p, ok := d.moved[oid]; ok {
		return p, true
	}
	return d.cur.Get(oid)
}

// buildPackIndex is pack.md §2.1 (and the no-op conditions of §1).
func (d *db) buildPackIndex(ctx context.Context, stop fsformat.Tid, progress func(int64)) error {
	d.cur = &oidmap.Positions{}
	d.moved = map[fsformat.Oid]int64{}
	d.reachEx = map[fsformat.Oid][]int64{}
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
				d.cur.Set(r.Oid, dpos)
			} else {
				d.cur.Delete(r.Oid)
			}
			dpos += r.len()
		}
		if err := s.trailer(tend, &th); err != nil {
			return err
		}
		pos = tend + fsformat.TrailerLen
	}
	d.packpos = pos
	if !unpacked {
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
	if d.marked(oid) {
		l := d.reachEx[oid]
		for _, p := range l {
			if p == back {
				return
			}
		}
		d.reachEx[oid] = append(l, back)
		if gc {
			d.extra = append(d.extra, back)
		} else if p, _ := d.reachPos(oid); p != back {
			d.undoKept++
		}
		return
	}
	d.mark(oid)
	d.moved[oid] = back
	if !gc {
		d.undoKept++
	}
}

func (d *db) isReachable(oid fsformat.Oid, pos int64) bool {
	if p, ok := d.reachPos(oid); ok && p == pos {
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
//
// An oid is marked when it is queued (fspack marks it when it pops it; the
// closure is the same). The queue is worked through in rounds, each sorted
// by file position, so the records are read in file order through a window
// that covers many of them per read instead of one read per object.
type marker struct {
	dbs      []*db
	byName   map[string]int
	multi    bool
	sc       refs.Scanner
	refs     []refs.Ref
	todo     []uint64 // database index << 48 | position of the current record
	next     []uint64
	dangling []Dangling
	unknown  map[string]*UnknownDB
	crossOut int // cross-database references seen (single pack: the warning)

	buf   []byte // read window of the marking rounds
	bufDB int
	bufAt int64
}

const posBits = 48

// ErrNoRoot: the root object (oid 0) has no current record at the pack time
// while other objects do. A GC pack would delete everything; refused.
var ErrNoRoot = errors.New("the root object (oid 0x00) has no current record at the pack time (deleted or creation undone): a GC pack would remove every object; use --no-gc")

// push marks and queues a reference target unless it is already marked; a
// target without a current record is dangling.
func (m *marker) push(di int, oid fsformat.Oid, fromDB int, from fsformat.Oid, fromPos int64, cross bool) {
	d := m.dbs[di]
	if d.marks.Has(oid) {
		return
	}
	pos, ok := d.cur.Get(oid)
	if !ok {
		if oid == 0 && fromPos == 0 && d.cur.Len() == 0 {
			return // pack time before the root existed
		}
		m.dangling = append(m.dangling, Dangling{
			DB: m.dbs[fromDB].name, From: from, Oid: oid, Cross: cross,
			ToDB: d.name, Source: fromPos,
		})
		return
	}
	d.mark(oid)
	m.todo = append(m.todo, uint64(di)<<posBits|uint64(pos))
}

// mark follows strong references from everything queued.
func (m *marker) markAll(ctx context.Context) error {
	for len(m.todo) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		round := m.todo
		m.todo = m.next[:0]
		slices.Sort(round)
		for i, it := range round {
			di, pos := int(it>>posBits), int64(it&(1<<posBits-1))
			data, oid, err := m.loadAhead(di, pos, round[i+1:])
			if err != nil {
				if errors.Is(err, fsformat.ErrNoData) {
					continue
				}
				return err
			}
			if err := m.scan(di, oid, pos, data); err != nil {
				return err
			}
		}
		m.next = round[:0]
	}
	m.buf, m.next = nil, nil
	return nil
}

// loadAhead returns the state of the record at pos, reading through the
// window; a refill reaches as far as the next queued positions within
// 1 MiB.
func (m *marker) loadAhead(di int, pos int64, ahead []uint64) ([]byte, fsformat.Oid, error) {
	d := m.dbs[di]
	if m.bufDB != di || pos < m.bufAt || pos+fsformat.DataHeaderLen > m.bufAt+int64(len(m.buf)) {
		end := pos + 4<<10
		for _, it := range ahead {
			p := int64(it & (1<<posBits - 1))
			if int(it>>posBits) != di || p > pos+1<<20 {
				break
			}
			end = p + 4<<10
		}
		if end > d.sc.w.size {
			end = d.sc.w.size
		}
		if end-pos < fsformat.DataHeaderLen {
			return nil, 0, fmt.Errorf("%s: data record at %d runs past the end of the file", d.path, pos)
		}
		n := int(end - pos)
		if cap(m.buf) < n {
			m.buf = make([]byte, n, max(n, 1<<20+4<<10))
		}
		m.buf = m.buf[:n]
		if _, err := d.sc.w.r.ReadAt(m.buf, pos); err != nil {
			m.buf = m.buf[:0]
			return nil, 0, fmt.Errorf("%s: data record at %d: %w", d.path, pos, err)
		}
		m.bufDB, m.bufAt = di, pos
	}
	b := m.buf[pos-m.bufAt:]
	h := fsformat.ParseDataHeader(b)
	if h.DataLen > 0 && h.VersionLen == 0 && h.DataLen <= int64(len(b))-fsformat.DataHeaderLen {
		return b[fsformat.DataHeaderLen : fsformat.DataHeaderLen+h.DataLen], h.Oid, nil
	}
	data, _, err := d.file.LoadRecord(pos)
	return data, h.Oid, err
}

// scan queues the references of the record of oid at pos (findrefs).
func (m *marker) scan(di int, oid fsformat.Oid, pos int64, data []byte) error {
	d := m.dbs[di]
	var err error
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
				m.push(di, fsformat.Oid(r.Oid), di, oid, pos, false)
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
		m.push(t, fsformat.Oid(r.Oid), di, oid, pos, true)
	}
	return nil
}

var errScanRefs = errors.New("reading references")

// gc marks every database from its root.
func (m *marker) gc(ctx context.Context) error {
	for i, d := range m.dbs {
		if _, ok := d.cur.Get(0); !ok && d.cur.Len() > 0 {
			// ZODB fails with KeyError(z64). Skipping it as another
			// dangling reference would delete the whole database.
			return fmt.Errorf("%s: %w", d.path, ErrNoRoot)
		}
		m.push(i, 0, i, 0, 0, false)
	}
	return m.markAll(ctx)
}

// extraRoots marks, as of the pack time, what the revisions kept for the
// future scan's backpointers reference (their own oids are already marked).
func (m *marker) extraRoots(ctx context.Context) error {
	for i, d := range m.dbs {
		for _, pos := range d.extra {
			data, h, err := d.file.LoadRecord(pos)
			if errors.Is(err, fsformat.ErrNoData) {
				continue
			}
			if err != nil {
				return err
			}
			if err := m.scan(i, h.Oid, pos, data); err != nil {
				return err
			}
		}
		d.extra = nil
	}
	return m.markAll(ctx)
}
