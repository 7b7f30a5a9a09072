package pack

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/fsindex"
)

// Options control a pack.
type Options struct {
	// Stop is the pack tid: transactions with tid <= Stop are "before the
	// pack time" (FileStorage derives it from a time with TidFromUnix).
	Stop fsformat.Tid
	// GC follows references from the root (FileStorage's pack_gc, default
	// true); without it every current revision is kept.
	GC bool
	// DryRun computes what would be removed and writes nothing.
	DryRun bool
	// DiscardOld deletes Data.fs.old (and <blob dir>.old) after the swap
	// (FileStorage's pack_keep_old=false). The default keeps them.
	DiscardOld bool
	// RefuseUnknownCross fails, before writing anything, when a reachable
	// object holds a cross-database reference into a database that is not
	// part of this pack.
	RefuseUnknownCross bool
	// Warn receives non-fatal messages (ZODB's logged errors).
	Warn func(string)
	// Progress receives bytes processed out of a total (about twice the
	// input size), for a progress bar.
	Progress func(done, total int64)
	// CommitLock, for a pack of a live storage, takes the storage's commit
	// lock; it is held only while the transactions committed during the
	// pack are copied and the files swapped. Nil: the file is not growing.
	// While it is held no transaction may be in progress in the file (an
	// Appender between Begin and Commit): a trailing 'c' transaction is not
	// copied.
	CommitLock func() (unlock func())
	// Swapped runs right after the swap, under CommitLock, with the result
	// (new size and index), so a server can reopen its file.
	Swapped func(*Result) error
	// Hook, for crash tests, is called at named points: "gc", "copied"
	// (phase 2 done, FILE.pack partly written), "written"
	// (FILE.pack complete and synced), "linked" (Data.fs.old made),
	// "unindexed" (stale Data.fs.index removed), "renamed", "blobs",
	// "indexed".
	Hook func(point string)
}

// Database is one file of a multi-database pack.
type Database struct {
	Name    string // the database name used in cross-database references ("" alone)
	Path    string
	BlobDir string // "" if the database has no blobs
}

// Result says what a pack did (or, with DryRun, would do) to one database.
type Result struct {
	Name, Path string
	Stop       fsformat.Tid
	PackPos    int64 // first transaction after the pack time
	// Packed is true when the file was (or would be) rewritten; NoOp then
	// says why not.
	Packed bool
	NoOp   string

	SizeBefore, SizeAfter int64 // SizeAfter: the packed size (also in a dry run)
	TxnsDropped           int   // transactions before the pack time left out entirely
	RecordsDropped        int   // data records before the pack time left out
	RecordsKept           int
	// Garbage lists the objects current at the pack time that GC found
	// unreachable (their every revision is dropped), in oid order.
	Garbage []fsformat.Oid
	// Dangling lists references to objects without a current record
	// (ZODB's GC pack fails with KeyError on the first one).
	Dangling []Dangling
	// UnknownCross lists cross-database references into databases not
	// packed together with this one; CrossRefs counts every cross-database
	// reference followed from reachable objects.
	UnknownCross []UnknownDB
	CrossRefs    int
	// UndoKept counts, in a no-GC pack, the revisions older than the pack
	// time kept because a later backpointer (undo) needs them; ZODB's no-GC
	// pack fails on them (AssertionError in copyRest).
	UndoKept int
	// Blob files and whole oid directories removed from the blob directory.
	BlobFiles, BlobDirs int
	// TailIgnored describes an incomplete tail left out of the copy.
	TailIgnored string

	// Index is the packed file's index (nil in a dry run or a no-op).
	Index *fsindex.Index
}

// ErrInvalidPackTime is FileStorageError('Invalid pack time').
var ErrInvalidPackTime = errors.New("Invalid pack time")

// Pack packs one Data.fs.
func Pack(ctx context.Context, path string, blobDir string, opt Options) (*Result, error) {
	rs, err := PackMulti(ctx, []Database{{Path: path, BlobDir: blobDir}}, opt)
	if len(rs) == 0 {
		return nil, err
	}
	return rs[0], err
}

// PackMulti packs the databases of one multi-database together: GC marks
// across cross-database references, then each file is copied and swapped.
// Results are in the order of dbs; on error the results of databases
// already packed are returned too.
func PackMulti(ctx context.Context, dbs []Database, opt Options) ([]*Result, error) {
	if opt.Stop == 0 {
		return nil, ErrInvalidPackTime
	}
	warn := opt.Warn
	if warn == nil {
		warn = func(string) {}
	}
	var total int64
	ds := make([]*db, len(dbs))
	res := make([]*Result, len(dbs))
	byName := map[string]int{}
	for i, spec := range dbs {
		if spec.Name != "" {
			if _, dup := byName[spec.Name]; dup {
				return nil, fmt.Errorf("database name %q given twice", spec.Name)
			}
			byName[spec.Name] = i
		}
		f, err := os.Open(spec.Path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		file, err := fsformat.NewFile(f, st.Size(), spec.Path)
		if err != nil {
			return nil, err
		}
		if file.Magic != fsformat.MagicFS30 {
			return nil, fmt.Errorf("%s: cannot pack a %q file (FileStorage on Python 3 accepts only FS30)", spec.Path, file.Magic[:])
		}
		if st.Size() >= fsindex.MaxPos {
			return nil, fmt.Errorf("%s: file of %d bytes: positions ≥ 2^48 cannot be indexed", spec.Path, st.Size())
		}
		d := &db{name: spec.Name, path: spec.Path, file: file,
			sc: scanner{name: spec.Path, w: newWindow(f, st.Size()), end: st.Size()}}
		ds[i] = d
		res[i] = &Result{Name: spec.Name, Path: spec.Path, Stop: opt.Stop, SizeBefore: st.Size()}
		total += 2 * st.Size()
	}
	// Progress: the scans of every file, then their copies, each file's
	// bytes in its own stretch of [0, total).
	var base int64
	progress := func(p int64) {
		if opt.Progress != nil {
			opt.Progress(base+p, total)
		}
	}
	start := func(i int, copying bool) {
		base = 0
		if copying {
			base = total / 2
		}
		for _, d := range ds[:i] {
			base += d.sc.w.size
		}
	}

	// Phase 1: what is current at the pack time.
	for i, d := range ds {
		start(i, false)
		if err := d.buildPackIndex(ctx, opt.Stop, progress); err != nil {
			return nil, err
		}
	}
	m := &marker{dbs: ds, byName: byName, multi: true, unknown: map[string]*UnknownDB{}}
	if opt.GC {
		if err := m.gc(ctx); err != nil {
			return nil, err
		}
	} else {
		for _, d := range ds {
			d.allCur = true
		}
	}
	for i, d := range ds {
		start(i, false)
		n, err := d.scanFuture(ctx, opt.GC, progress)
		if err != nil {
			return nil, err
		}
		d.empty = d.recordsAtPack+n == 0
		res[i].PackPos = d.packpos
		res[i].UndoKept = d.undoKept
		res[i].TailIgnored = d.sc.tail
	}
	if opt.GC {
		if err := m.extraRoots(ctx); err != nil {
			return nil, err
		}
		for i, d := range ds {
			for oid := range d.cur.All() {
				if !d.marked(oid) {
					res[i].Garbage = append(res[i].Garbage, oid)
				}
			}
			slices.Sort(res[i].Garbage)
		}
		for _, dg := range m.dangling {
			for i, d := range ds {
				if d.name == dg.DB {
					res[i].Dangling = append(res[i].Dangling, dg)
					break
				}
			}
		}
		for i := range ds {
			res[i].CrossRefs = m.crossOut // counted over all databases
		}
		names := slices.Sorted(maps.Keys(m.unknown))
		for _, name := range names {
			u := m.unknown[name]
			for i, d := range ds {
				if d.name == u.FromDB {
					res[i].UnknownCross = append(res[i].UnknownCross, *u)
					break
				}
			}
		}
		if opt.RefuseUnknownCross && len(names) > 0 {
			u := m.unknown[names[0]]
			return res, fmt.Errorf("%d cross-database reference(s) into database %q, which is not part of this pack (e.g. from oid %s); pack all the databases together (NAME=FILE ...)", u.Count, u.Name, u.From.Repr())
		}
	}
	// The GC queue and the refs scanner are garbage now; hand their memory
	// back before the copy builds the output index, so that the peak is
	// the larger of the two phases, not their sum.
	m = nil
	debug.FreeOSMemory()
	if opt.Hook != nil {
		opt.Hook("gc")
	}

	// Phases 2 and 3, and the swap, one database at a time.
	for i, d := range ds {
		r := res[i]
		switch {
		case d.empty:
			r.NoOp = "empty storage"
			continue
		case d.redundant:
			r.NoOp = "The database has already been packed to a later time or no changes have been made since the last pack"
			if !opt.DryRun {
				if err := removeOld(d.path, dbs[i].BlobDir); err != nil {
					return res, err
				}
			}
			continue
		}
		start(i, true)
		if err := packOne(ctx, d, dbs[i], r, opt, warn, progress); err != nil {
			return res, err
		}
	}
	if opt.Progress != nil {
		opt.Progress(total, total)
	}
	return res, nil
}

func removeOld(path, blobDir string) error {
	if err := os.Remove(path + ".old"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if blobDir != "" {
		if err := os.RemoveAll(filepath.Clean(blobDir) + ".old"); err != nil {
			return err
		}
	}
	return nil
}

func packOne(ctx context.Context, d *db, spec Database, r *Result, opt Options, warn func(string), progress func(int64)) (err error) {
	c := &copier{d: d, w: newWindow(d.sc.w.r, d.sc.w.size), idx: fsindex.New(), blobs: spec.BlobDir != "", warn: warn}
	if opt.DryRun {
		c.out = newOutput(nil, fsformat.FileHeaderLen)
		if err := c.toPacktime(progress); err != nil {
			return err
		}
		fill(r, c)
		if c.out.pos() == d.packpos {
			r.NoOp = "nothing to pack"
			r.SizeAfter = r.SizeBefore
			return nil
		}
		r.Packed = true
		r.SizeAfter = c.out.pos() + d.sc.end - d.packpos
		return nil
	}
	if err := removeOld(d.path, spec.BlobDir); err != nil {
		return err
	}
	packPath := d.path + ".pack"
	pf, err := os.OpenFile(packPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			pf.Close()
			os.Remove(packPath)
		}
	}()
	if _, err := pf.Write(fsformat.MagicFS30[:]); err != nil {
		return fmt.Errorf("%s: %w", packPath, err)
	}
	c.out = newOutput(pf, fsformat.FileHeaderLen)
	if err := c.toPacktime(progress); err != nil {
		return wrapOut(packPath, err)
	}
	fill(r, c)
	if c.out.pos() == d.packpos {
		r.NoOp = "nothing to pack"
		r.SizeAfter = r.SizeBefore
		return nil
	}
	hook(opt, "copied")
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.rest(d.packpos, d.sc.end, progress); err != nil {
		return wrapOut(packPath, err)
	}
	if opt.CommitLock != nil {
		unlock := opt.CommitLock()
		defer unlock()
		if err := catchUp(d, c, progress); err != nil {
			return wrapOut(packPath, err)
		}
	}
	if err := c.out.flush(); err != nil {
		return wrapOut(packPath, err)
	}
	if err := pf.Truncate(c.out.pos()); err != nil {
		return wrapOut(packPath, err)
	}
	if err := pf.Sync(); err != nil {
		return wrapOut(packPath, err)
	}
	if err := pf.Close(); err != nil {
		return wrapOut(packPath, err)
	}
	hook(opt, "written")
	r.Packed = true
	r.SizeAfter = c.out.pos()
	r.TailIgnored = d.sc.tail

	// The swap: at every moment Data.fs is either the original or the
	// packed file.
	renamedAway := false
	if !opt.DiscardOld {
		if err := os.Link(d.path, d.path+".old"); err != nil {
			// No hard links here: FileStorage's own sequence, which leaves
			// a moment without Data.fs.
			if err := os.Rename(d.path, d.path+".old"); err != nil {
				return fmt.Errorf("keeping %s.old: %w", d.path, err)
			}
			renamedAway = true
		}
		hook(opt, "linked")
	}
	if err := os.Remove(d.path + ".index"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	hook(opt, "unindexed")
	if err := os.Rename(packPath, d.path); err != nil {
		if renamedAway {
			os.Rename(d.path+".old", d.path)
		}
		return err
	}
	done = true
	if err := syncDir(filepath.Dir(d.path)); err != nil {
		return err
	}
	hook(opt, "renamed")
	r.Index = c.idx
	if spec.BlobDir != "" {
		if err := removeBlobs(spec.BlobDir, c.removals, !opt.DiscardOld); err != nil {
			return fmt.Errorf("%s: %w", spec.BlobDir, err)
		}
		hook(opt, "blobs")
	}
	if err := fsindex.Write(d.path+".index", c.idx, uint64(r.SizeAfter)); err != nil {
		return err
	}
	hook(opt, "indexed")
	if opt.Swapped != nil {
		if err := opt.Swapped(r); err != nil {
			return err
		}
	}
	return nil
}

func hook(opt Options, point string) {
	if opt.Hook != nil {
		opt.Hook(point)
	}
}

func fill(r *Result, c *copier) {
	r.TxnsDropped = c.txnsDropped
	r.RecordsDropped = c.recordsDropped
	r.RecordsKept = c.recordsKept
	for _, b := range c.removals {
		if b.whole {
			r.BlobDirs++
		} else {
			r.BlobFiles++
		}
	}
}

func wrapOut(path string, err error) error {
	var ce *CorruptedError
	if errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrBackpointerTxn) {
		return err
	}
	return fmt.Errorf("writing %s: %w", path, err)
}

// catchUp copies the transactions committed while the pack ran (the file
// grew): the new tail is checked like the future scan, then copied.
func catchUp(d *db, c *copier, progress func(int64)) error {
	st, err := os.Stat(d.path)
	if err != nil {
		return err
	}
	if st.Size() <= d.sc.end {
		return nil
	}
	from := d.sc.end
	f, err := os.Open(d.path)
	if err != nil {
		return err
	}
	defer f.Close()
	file, err := fsformat.NewFile(f, st.Size(), d.path)
	if err != nil {
		return err
	}
	d.file = file
	d.sc.w = newWindow(f, st.Size())
	d.sc.end, d.sc.tail = st.Size(), ""
	if _, err := d.scanFutureFrom(from); err != nil {
		return err
	}
	c.w = newWindow(f, st.Size())
	return c.rest(from, d.sc.end, progress)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
