package commands

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/pack"
	"github.com/zodbctl/zodbctl/mkinstance"
)

func init() {
	register(&cli.Command{
		Name:      "pack",
		Usage:     "pack a Data.fs (or several databases of a multi-database) as FileStorage.pack does",
		ArgsUsage: "FILE | NAME=FILE NAME=FILE...",
		Description: `Removes the revisions that are not needed as of the pack time: the packed
file is byte for byte the one ZODB's FileStorage.pack writes for the same
pack time, FILE.index is saved, the original is kept as FILE.old (and the
blob directory's as DIR.old), blob files of dropped revisions are removed.

The pack time is now by default; --days N packs as of N days ago, --time an
RFC 3339 time, --tid the stop tid itself (transactions with tid <= it are
"before the pack time").

With GC (the default) only objects reachable from the root survive. Several
databases of one multi-database (NAME is the database name used in their
cross-database references) are collected together: an object reachable only
from another database is kept, which packing each file alone would delete.
Packing one file that references other databases warns (--refuse-multi:
refuses).

Unlike ZODB, a dangling reference does not abort a GC pack (the missing
object is reported), and --no-gc copes with an undo that points back to a
revision older than the pack time.

The storage lock FILE.lock is held throughout; a file locked by a running
server is refused. Free disk space is checked first. The packed file is
written to FILE.pack, synced, then renamed over FILE: a crash at any point
leaves a usable FILE. --dry-run reports what would be removed and writes
nothing.

--config reads the databases from a ZODB/Zope configuration (<zodb NAME>
sections with a <filestorage>, as zc.zodbdgc does): their names, paths, blob
directories, and pack-gc / pack-keep-old.

Example:
  zodbctl pack --days 7 var/filestorage/Data.fs
  zodbctl pack main=var/Data.fs catalog=var/Catalog.fs`,
		Flags: []cli.Flag{
			&cli.Float64Flag{Name: "days", Usage: "pack as of `N` days ago (0: now)"},
			&cli.StringFlag{Name: "time", Usage: "pack as of this RFC 3339 `TIME`"},
			&cli.StringFlag{Name: "tid", Usage: "pack with this stop `TID` (16 hex digits)"},
			&cli.BoolFlag{Name: "no-gc", Usage: "keep every object current at the pack time (pack-gc false)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "report what would be removed; write nothing"},
			&cli.StringSliceFlag{Name: "blob-dir", Usage: "the blob `DIR` of FILE; with several databases NAME=DIR (repeat the flag)"},
			&cli.BoolFlag{Name: "refuse-multi", Usage: "refuse when a packed file references a database not packed with it"},
			&cli.BoolFlag{Name: "no-keep-old", Usage: "delete FILE.old after the pack (pack-keep-old false)"},
			&cli.BoolFlag{Name: "json", Usage: "one JSON object per database"},
			&cli.StringFlag{Name: "config", Usage: "pack the file storages of the <zodb NAME> databases in this ZODB/Zope configuration `FILE` together"},
		},
		Action: runPack,
	})
}

func runPack(c *cli.Context) error {
	if c.NArg() == 0 && c.String("config") == "" {
		return usageError("pack: expected FILE or NAME=FILE arguments, or --config")
	}
	if c.NArg() > 0 && c.String("config") != "" {
		return usageError("pack: give either files or --config, not both")
	}
	stop, err := packStop(c)
	if err != nil {
		return err
	}
	var dbs []pack.Database
	gcDefault, keepOldDefault := true, true
	if cf := c.String("config"); cf != "" {
		dbs, gcDefault, keepOldDefault, err = packConfigDatabases(cf)
		if err != nil {
			return exitWith(ExitFailure, "zodbctl pack: %v", err)
		}
	}
	for _, a := range c.Args().Slice() {
		if strings.HasPrefix(a, "-") {
			return usageError("pack: %s: options go before the files", a)
		}
		var d pack.Database
		if name, path, ok := strings.Cut(a, "="); ok && c.NArg() > 1 || ok && !fileExists(a) {
			if name == "" || path == "" {
				return usageError("pack: bad database argument %q (want NAME=FILE)", a)
			}
			d = pack.Database{Name: name, Path: path}
		} else {
			d = pack.Database{Path: a}
		}
		dbs = append(dbs, d)
	}
	if len(dbs) > 1 {
		for _, d := range dbs {
			if d.Name == "" {
				return usageError("pack: with several files, name each one: NAME=FILE")
			}
		}
	}
	for _, b := range c.StringSlice("blob-dir") {
		if len(dbs) == 1 && dbs[0].Name == "" {
			if dbs[0].BlobDir != "" {
				return usageError("pack: --blob-dir given twice")
			}
			dbs[0].BlobDir = b
			continue
		}
		name, dir, ok := strings.Cut(b, "=")
		found := false
		for i := range dbs {
			if ok && dbs[i].Name == name {
				dbs[i].BlobDir, found = dir, true
			}
		}
		if !found {
			if len(dbs) == 1 && !ok {
				dbs[0].BlobDir = b
				continue
			}
			return usageError("pack: --blob-dir %q: want NAME=DIR naming one of the databases", b)
		}
	}
	stderr := c.App.ErrWriter
	dry := c.Bool("dry-run")

	for _, d := range dbs {
		if st, err := os.Stat(d.Path); err != nil {
			return exitWith(ExitFailure, "zodbctl pack: %v", err)
		} else if !st.Mode().IsRegular() {
			return exitWith(ExitFailure, "zodbctl pack: %s: not a regular file", d.Path)
		}
	}
	if !dry {
		for _, d := range dbs {
			unlock, err := lockStorage(d.Path)
			if err != nil {
				return exitWith(ExitFailure, "zodbctl pack: %v", err)
			}
			defer unlock()
		}
	}

	opt := pack.Options{
		Stop: stop, GC: gcDefault && !c.Bool("no-gc"), DryRun: dry, DiscardOld: !keepOldDefault || c.Bool("no-keep-old"),
		RefuseUnknownCross: c.Bool("refuse-multi"),
		Warn:               func(msg string) { fmt.Fprintf(stderr, "zodbctl pack: %s\n", msg) },
	}
	if !dry {
		if err := checkFreeSpace(c.Context, dbs, opt); err != nil {
			return exitWith(ExitFailure, "zodbctl pack: %v", err)
		}
	}
	var bar *progressbar.ProgressBar
	if ef, ok := stderr.(*os.File); ok && term.IsTerminal(int(ef.Fd())) {
		opt.Progress = func(done, total int64) {
			if bar == nil {
				bar = progressbar.NewOptions64(total,
					progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription("pack"),
					progressbar.OptionShowBytes(true),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionClearOnFinish())
			}
			bar.Set64(done)
		}
	}
	ctx := c.Context
	if ctx == nil {
		ctx = context.Background()
	}
	// Ctrl-C before the swap: stop and remove FILE.pack (the original is
	// untouched either way).
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	results, err := pack.PackMulti(ctx, dbs, opt)
	if bar != nil {
		bar.Finish()
	}
	for _, r := range results {
		reportPackWarnings(c, r, len(dbs) > 1)
	}
	if err != nil {
		var ce *pack.CorruptedError
		if errors.As(err, &ce) {
			return exitWith(ExitFailure, "zodbctl pack: %v (nothing was changed)", err)
		}
		return exitWith(ExitFailure, "zodbctl pack: %v", err)
	}
	if c.Bool("json") {
		jl := newJSONLines(c.App.Writer)
		for _, r := range results {
			if err := jl.Write(packJSON(r, dry)); err != nil {
				return exitWith(ExitFailure, "zodbctl pack: %v", err)
			}
		}
		return nil
	}
	for _, r := range results {
		writePackText(c, r, dry)
	}
	return nil
}

// packConfigDatabases reads the databases of a client configuration (the
// <zodb NAME> sections zc.zodbdgc reads): the database name (database-name,
// else the section name), the file storage's path and blob directory (a
// <blobstorage> around it included). GC and keeping .old are on unless a
// storage turns them off (pack-gc, pack-keep-old false).
func packConfigDatabases(path string) (dbs []pack.Database, gc, keepOld bool, err error) {
	cfg, err := mkinstance.LoadClientConfig(path, mkinstance.Options{})
	if err != nil {
		return nil, false, false, err
	}
	gc, keepOld = true, true
	for _, d := range cfg.Databases {
		name := d.DatabaseName
		if name == "" {
			name = d.Name
		}
		st, blobDir := d.Storage, ""
		if st.Blob != nil {
			blobDir, st = st.Blob.BlobDir, st.Blob.Base
		}
		if st.FileStorage == nil {
			return nil, false, false, fmt.Errorf("%s: database %q: a %s storage cannot be packed here (only filestorage)", path, name, st.Kind)
		}
		fs := st.FileStorage
		if blobDir == "" {
			blobDir = fs.BlobDir
		}
		gc = gc && fs.PackGC
		keepOld = keepOld && fs.PackKeepOld
		dbs = append(dbs, pack.Database{Name: name, Path: fs.Path, BlobDir: blobDir})
	}
	if len(dbs) == 0 {
		return nil, false, false, fmt.Errorf("%s: no <zodb> database", path)
	}
	return dbs, gc, keepOld, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// packStop turns --days/--time/--tid into the stop tid as DB.pack does:
// t = now - days*86400, then TimeStamp(gmtime(t)[:5] + (t % 60,)).
func packStop(c *cli.Context) (fsformat.Tid, error) {
	n := 0
	for _, f := range []string{"days", "time", "tid"} {
		if c.IsSet(f) {
			n++
		}
	}
	if n > 1 {
		return 0, usageError("pack: give at most one of --days, --time, --tid")
	}
	switch {
	case c.IsSet("tid"):
		s := strings.TrimPrefix(strings.ToLower(c.String("tid")), "0x")
		v, err := strconv.ParseUint(s, 16, 64)
		if err != nil || len(s) > 16 {
			return 0, usageError("pack: --tid %q: want up to 16 hex digits", c.String("tid"))
		}
		return fsformat.Tid(v), nil
	case c.IsSet("time"):
		t, err := time.Parse(time.RFC3339Nano, c.String("time"))
		if err != nil {
			return 0, usageError("pack: --time: %v", err)
		}
		return fsformat.TidFromUnix(float64(t.Unix()) + float64(t.Nanosecond())/1e9), nil
	default:
		days := c.Float64("days")
		if days < 0 {
			return 0, usageError("pack: --days must not be negative")
		}
		now := float64(time.Now().UnixNano()) / 1e9
		return fsformat.TidFromUnix(now - days*86400), nil
	}
}

// freeSpace is the space available to us in dir (a variable for tests).
var freeSpace = func(dir string) (int64, error) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return 0, err
	}
	return int64(fs.Bavail) * int64(fs.Bsize), nil
}

// checkFreeSpace refuses a pack whose output cannot fit: the packed file is
// at most the size of the input; when less space is free than that, a dry
// run gives the exact size.
func checkFreeSpace(ctx context.Context, dbs []pack.Database, opt pack.Options) error {
	need := map[string]int64{}
	free := map[string]int64{}
	for _, d := range dbs {
		st, err := os.Stat(d.Path)
		if err != nil {
			return err
		}
		dir := filepath.Dir(d.Path)
		n, err := freeSpace(dir)
		if err != nil {
			return nil // cannot tell: let the write fail cleanly if it must
		}
		free[dir] = n
		need[dir] += st.Size() + st.Size()/8 // the file and room for its index
	}
	short := false
	for dir := range need {
		if need[dir] > free[dir] {
			short = true
		}
	}
	if !short {
		return nil
	}
	dry := opt
	dry.DryRun, dry.Progress, dry.Warn = true, nil, nil
	rs, err := pack.PackMulti(ctx, dbs, dry)
	if err != nil {
		return err
	}
	for k := range need {
		need[k] = 0
	}
	files := map[string][]string{} // dir → the files packed into it
	for _, r := range rs {
		if r.Packed {
			dir := filepath.Dir(r.Path)
			need[dir] += r.SizeAfter + r.SizeAfter/8
			files[dir] = append(files[dir], r.Path)
		}
	}
	for dir, n := range need {
		if n > free[dir] {
			return fmt.Errorf("%s: not enough free space in %s to pack: about %d bytes needed, %d available", strings.Join(files[dir], ", "), dir, n, free[dir])
		}
	}
	return nil
}

func dbLabel(r *pack.Result) string {
	if r.Name != "" {
		return r.Name + " (" + r.Path + ")"
	}
	return r.Path
}

func reportPackWarnings(c *cli.Context, r *pack.Result, multi bool) {
	w := c.App.ErrWriter
	if r.TailIgnored != "" {
		fmt.Fprintf(w, "zodbctl pack: warning: %s\n", r.TailIgnored)
	}
	for _, d := range r.Dangling {
		from := "the root"
		if d.Source != 0 {
			from = "oid " + d.From.Repr()
		}
		target := d.Oid.Repr()
		if d.Cross {
			target = fmt.Sprintf("%s in database %q", target, d.ToDB)
		}
		fmt.Fprintf(w, "zodbctl pack: warning: %s: %s references oid %s, which has no current record at the pack time (ZODB's GC pack fails here with KeyError); skipped\n", dbLabel(r), from, target)
	}
	for _, u := range r.UnknownCross {
		fmt.Fprintf(w, "zodbctl pack: warning: %s: %d cross-database reference(s) into database %q (first from oid %s), which is not packed with it: objects there reachable only from here are deleted if %q is packed alone with GC; pack the databases together (NAME=FILE ...)\n",
			dbLabel(r), u.Count, u.Name, u.From.Repr(), u.Name)
	}
}

func writePackText(c *cli.Context, r *pack.Result, dry bool) {
	w := c.App.Writer
	when := fmt.Sprintf("%s (%s)", r.Stop, r.Stop.Time())
	if !r.Packed {
		why := r.NoOp
		if why == "" {
			why = "nothing to pack"
		}
		fmt.Fprintf(w, "%s: not packed to %s: %s\n", dbLabel(r), when, why)
		return
	}
	verb := "packed"
	if dry {
		verb = "would pack"
	}
	fmt.Fprintf(w, "%s: %s to %s: %d -> %d bytes (%d removed)\n", dbLabel(r), verb, when, r.SizeBefore, r.SizeAfter, r.SizeBefore-r.SizeAfter)
	fmt.Fprintf(w, "  %d transactions and %d revisions before the pack time dropped, %d revisions kept\n", r.TxnsDropped, r.RecordsDropped, r.RecordsKept)
	if len(r.Garbage) > 0 {
		const show = 20
		var b strings.Builder
		for i, o := range r.Garbage {
			if i == show {
				fmt.Fprintf(&b, " ... (%d more)", len(r.Garbage)-show)
				break
			}
			b.WriteString(" " + o.Repr())
		}
		fmt.Fprintf(w, "  %d unreachable objects removed:%s\n", len(r.Garbage), b.String())
	}
	if r.UndoKept > 0 {
		fmt.Fprintf(w, "  %d revisions older than the pack time kept because later undo records point at them (ZODB's pack without GC fails here)\n", r.UndoKept)
	}
	if r.BlobFiles+r.BlobDirs > 0 {
		fmt.Fprintf(w, "  blobs: %d revision files and %d object directories removed\n", r.BlobFiles, r.BlobDirs)
	}
}

type packResultJSON struct {
	Name           string         `json:"name,omitempty"`
	Path           string         `json:"path"`
	DryRun         bool           `json:"dry_run"`
	StopTid        string         `json:"stop_tid"`
	StopTime       string         `json:"stop_time"`
	Packed         bool           `json:"packed"`
	NoOp           string         `json:"not_packed_because,omitempty"`
	SizeBefore     int64          `json:"size_before"`
	SizeAfter      int64          `json:"size_after"`
	TxnsDropped    int            `json:"transactions_dropped"`
	RecordsDropped int            `json:"revisions_dropped"`
	RecordsKept    int            `json:"revisions_kept"`
	Garbage        []string       `json:"unreachable_oids"`
	UndoKept       int            `json:"revisions_kept_for_undo,omitempty"`
	BlobFiles      int            `json:"blob_files_removed"`
	BlobDirs       int            `json:"blob_dirs_removed"`
	Dangling       []danglingJSON `json:"dangling,omitempty"`
	UnknownCross   []unknownJSON  `json:"unpacked_cross_references,omitempty"`
	TailIgnored    string         `json:"tail_ignored,omitempty"`
}

type danglingJSON struct {
	From  string `json:"from"`
	Oid   string `json:"oid"`
	Cross bool   `json:"cross_database,omitempty"`
	ToDB  string `json:"db,omitempty"`
}

type unknownJSON struct {
	DB    string `json:"db"`
	Count int    `json:"count"`
	From  string `json:"first_from"`
}

func packJSON(r *pack.Result, dry bool) packResultJSON {
	j := packResultJSON{Name: r.Name, Path: r.Path, DryRun: dry, StopTid: jsonTid(r.Stop), StopTime: r.Stop.Time().String(),
		Packed: r.Packed, NoOp: r.NoOp, SizeBefore: r.SizeBefore, SizeAfter: r.SizeAfter,
		TxnsDropped: r.TxnsDropped, RecordsDropped: r.RecordsDropped, RecordsKept: r.RecordsKept,
		Garbage: []string{}, UndoKept: r.UndoKept, BlobFiles: r.BlobFiles, BlobDirs: r.BlobDirs, TailIgnored: r.TailIgnored}
	if !r.Packed {
		j.SizeAfter = r.SizeBefore
	}
	for _, o := range r.Garbage {
		j.Garbage = append(j.Garbage, jsonOid(o))
	}
	for _, d := range r.Dangling {
		j.Dangling = append(j.Dangling, danglingJSON{From: jsonOid(d.From), Oid: jsonOid(d.Oid), Cross: d.Cross, ToDB: d.ToDB})
	}
	for _, u := range r.UnknownCross {
		j.UnknownCross = append(j.UnknownCross, unknownJSON{DB: u.Name, Count: u.Count, From: jsonOid(u.From)})
	}
	return j
}
